"""The optimiser spec: the learning rate and its friends, carried as one typed value from YAML to AdamW.

A run's learning rate comes from its method entry (`lr`, or a grid point or trial that chose one);
weight decay, the schedule, warm-up and gradient clipping come from `train:`. The planners put
them together once, as the run's `OptimizerSpec` (`TrainConfig.optimizer(lr)`), the run spec
carries it, and the runtime turns it into the optimiser and its schedule in one call
(peftlab/runtime/train.py: `make_optimizer`), as torchtune's recipes do with their optimiser
config. A method with an optimiser of its own (LoRA+, LoRA-FA) is handed the same spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]


@dataclass(frozen=True)
class OptimizerSpec:
    """AdamW and its learning-rate schedule for one run."""

    lr: float
    weight_decay: float = 0.0
    # AdamW's own defaults, named so that the optimiser built is fully written down here; not YAML
    # keys (LoRA-FA's optimiser fixes its betas), so they are not part of a run's identity either
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    scheduler: Scheduler = "linear"
    warmup_ratio: float = 0.06  # of the run's optimiser steps, spent warming the rate up from 0
    max_grad_norm: float | None = 1.0  # gradients clipped to this norm; None or 0: not clipped

    def warmup_steps(self, steps: int) -> int:
        return int(self.warmup_ratio * steps)
