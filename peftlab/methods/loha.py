"""LoHa: the weight update as the Hadamard product of two low-rank products (Hyeon-Woo et al., 2022).

From the LyCORIS family: rank r·r expressiveness for 2× LoRA's parameters at rank r.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.adapters import adapter_config, targets_check_linear_only, wrap
from peftlab.methods.registry import Method, ModelContext, register


@dataclass
class LohaParams:
    r: int = 8
    alpha: float = 8
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    rank_dropout: float = 0.0
    module_dropout: float = 0.0

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(self.alpha > 0, "alpha", f"got {self.alpha}, must be positive")


def _prepare(model: Any, params: LohaParams, ctx: ModelContext) -> Any:
    config = adapter_config(
        "LoHaConfig",
        "loha",
        {"target_modules": params.target_modules},
        ctx,
        model,
        r=params.r,
        alpha=params.alpha,
        rank_dropout=params.rank_dropout,
        module_dropout=params.module_dropout,
    )
    return wrap(model, config)


register(
    Method(
        name="loha",
        summary="Hadamard product of two low-rank updates (LyCORIS; Hyeon-Woo et al., 2022)",
        params=LohaParams,
        default_lr=1e-3,
        prepare=_prepare,
        check_model=targets_check_linear_only("loha", "has no peft layer for transformers' Conv1D"),
        search_space={
            "r": {"type": "categorical", "choices": [2, 4, 8, 16, 32]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
