"""The two parts of an experiment that its search and protocol sections read: training and method entries.

A module of their own so that `config/search.py` and `config/protocol.py` can name them without
importing `config/experiment.py`, which imports them (the config package stays acyclic).
`config/experiment.py` re-exports both.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from peftlab.config.identity import ADDED_LATER
from peftlab.config.optim import OptimizerSpec, Scheduler
from peftlab.config.schema import check

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Distributed = Literal["ddp", "fsdp"]


@dataclass
class TrainConfig:
    steps: int = 200
    batch_size: int = 32
    grad_accum: int = 1
    eval_batch_size: int = 128
    warmup_ratio: float = 0.06
    scheduler: Scheduler = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    eval_every: int = 50
    precision: Precision = "auto"
    device: str = "auto"
    length_grouping: bool = True
    timing_warmup_steps: int = 3
    gradient_checkpointing: bool = False
    compile: bool = False
    threads: int | None = None
    # one run on many processes (docs/distributed.md): null = one process; ddp | fsdp under a launcher
    distributed: Distributed | None = field(default=None, metadata=ADDED_LATER)

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "grad_accum", "eval_batch_size", "eval_every"):
            check(getattr(self, key) >= 1, key, f"got {getattr(self, key)}, must be at least 1")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", f"got {self.warmup_ratio}, must be in [0, 1)")
        check(self.timing_warmup_steps >= 0, "timing_warmup_steps", "must be at least 0")
        check(
            re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device) is not None,
            "device",
            f"got {self.device!r}, allowed: auto, cpu, cuda, cuda:N, mps",
        )

    def optimizer(self, lr: float) -> OptimizerSpec:
        """The optimiser spec of a run at learning rate `lr`: this section's decay, schedule and clipping."""
        return OptimizerSpec(
            lr=lr,
            weight_decay=self.weight_decay,
            scheduler=self.scheduler,
            warmup_ratio=self.warmup_ratio,
            max_grad_norm=self.max_grad_norm,
        )


@dataclass
class MethodEntry:
    """One line of the comparison: a registered method, its learning rate and hyperparameters.

    `grid` expands into one variant per combination (e.g. `grid: {r: [4, 8, 16]}`).
    """

    method: str
    label: str
    lr: float
    params: Any  # the method's own params dataclass
    grid: dict[str, list[Any]] = field(default_factory=dict)
    # alpha = alpha_ratio × r, for methods with both: alpha and rank are confounded through the
    # alpha/r scaling, so a rank ablation holds the ratio (the effective scale) fixed instead of alpha
    alpha_ratio: float | None = None

    def choose(self, choices: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
        """The learning rate and method params of one run of this entry, a grid point's or a trial's choices applied.

        A choice names a method hyperparameter, `alpha_ratio` (turned into alpha = ratio × r, the value
        peft sees, so hashes stay comparable) or `lr`, the one optimiser field a grid or search varies.
        """
        params = dataclasses.asdict(self.params)
        lr, ratio = self.lr, self.alpha_ratio
        for key, value in choices.items():
            if key == "lr":
                lr = value
            elif key == "alpha_ratio":
                ratio = value
            else:
                params[key] = value
        return lr, (params if ratio is None else {**params, "alpha": float(ratio * params["r"])})

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "label": self.label,
            "lr": self.lr,
            "params": dataclasses.asdict(self.params),
            "grid": self.grid,
            "alpha_ratio": self.alpha_ratio,
        }
