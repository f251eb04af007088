"""MiSS (formerly Bone): one shared trainable shard per weight, expanded over its blocks (Kang & Yin, 2025).

A matrix-shard-sharing update: about LoRA's parameter count at rank r with a cheaper forward.
peft's default rank is 64; here r = 16, which fits small encoders (r must not exceed a target's
output width) and keeps the zoo's budgets near LoRA's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.adapters import adapter_config, targets_check_linear_only, wrap
from peftlab.methods.registry import Method, ModelContext, register


@dataclass
class MissParams:
    r: int = 16
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    mini_r: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(self.mini_r >= 1, "mini_r", f"got {self.mini_r}, must be at least 1")


def _prepare(model: Any, params: MissParams, ctx: ModelContext) -> Any:
    config = adapter_config(
        "MissConfig",
        "miss",
        {"target_modules": params.target_modules},
        ctx,
        model,
        r=params.r,
        mini_r=params.mini_r,
        miss_dropout=params.dropout,
    )
    return wrap(model, config)


register(
    Method(
        name="miss",
        summary="one trainable matrix shard shared across each weight's blocks (MiSS/Bone; Kang & Yin, 2025)",
        params=MissParams,
        default_lr=1e-3,
        prepare=_prepare,
        check_model=targets_check_linear_only("miss", "has no peft layer for transformers' Conv1D"),
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32, 64]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
