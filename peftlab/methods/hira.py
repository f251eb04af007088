"""HiRA: a high-rank update as the Hadamard product of W with a low-rank product (Huang et al., 2025).

ΔW = W ⊙ (B·A): LoRA's parameter count at rank r, but the update's rank is not bounded by r;
a top scorer on peft's method comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.adapters import adapter_config, wrap
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


@dataclass
class HiraParams:
    r: int = 8  # LoRA's default budget, so the zoo compares at equal trainable parameters
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    dropout: float = 0.0

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")


def _prepare(model: Any, params: HiraParams, ctx: ModelContext) -> Any:
    config = adapter_config(
        "HiraConfig",
        "hira",
        {"target_modules": params.target_modules},
        ctx,
        model,
        r=params.r,
        hira_dropout=params.dropout,
    )
    return wrap(model, config)


register(
    Method(
        name="hira",
        summary="high-rank update W ⊙ (B·A) at LoRA's parameter count (Huang et al., 2025)",
        params=HiraParams,
        default_lr=1e-3,
        prepare=_prepare,
        check_model=targets_check("hira"),
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32, 64]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
