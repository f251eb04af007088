"""GraLoRA: LoRA split into k×k independent sub-blocks, each with its own low-rank pair (Jung et al., 2025).

Same parameter count as LoRA at rank r, but each block's gradient is local, which fixes LoRA's
gradient entanglement at high rank; a top scorer on peft's method comparison. `k` must divide
r and the target layers' widths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.adapters import adapter_config, wrap
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


@dataclass
class GraloraParams:
    r: int = 8  # LoRA's default budget, so the zoo compares at equal trainable parameters
    alpha: float = 16
    k: int = 2  # sub-blocks per side
    hybrid_r: int = 0  # rank of an extra plain LoRA part beside the blocks
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    dropout: float = 0.0

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(self.k >= 1 and self.r % self.k == 0, "k", f"got {self.k}, must divide r ({self.r})")


def _prepare(model: Any, params: GraloraParams, ctx: ModelContext) -> Any:
    config = adapter_config(
        "GraloraConfig",
        "gralora",
        {"target_modules": params.target_modules},
        ctx,
        model,
        r=params.r,
        alpha=params.alpha,
        gralora_k=params.k,
        hybrid_r=params.hybrid_r,
        gralora_dropout=params.dropout,
    )
    return wrap(model, config)


register(
    Method(
        name="gralora",
        summary="LoRA as k×k independent low-rank sub-blocks (Jung et al., 2025)",
        params=GraloraParams,
        default_lr=1e-3,
        prepare=_prepare,
        check_model=targets_check("gralora"),
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32, 64]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
