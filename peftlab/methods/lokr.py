"""LoKr: the weight update as a Kronecker product of a small and a low-rank factor (LyCORIS; Edalati et al., 2022)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.adapters import adapter_config, targets_check_linear_only, wrap
from peftlab.methods.registry import Method, ModelContext, register


@dataclass
class LokrParams:
    r: int = 8
    alpha: float = 8
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    decompose_both: bool = False  # also factor the small Kronecker factor
    decompose_factor: int = -1  # -1: the factor closest to the square root of the width
    rank_dropout: float = 0.0
    module_dropout: float = 0.0

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(self.alpha > 0, "alpha", f"got {self.alpha}, must be positive")


def _prepare(model: Any, params: LokrParams, ctx: ModelContext) -> Any:
    config = adapter_config(
        "LoKrConfig",
        "lokr",
        {"target_modules": params.target_modules},
        ctx,
        model,
        r=params.r,
        alpha=params.alpha,
        decompose_both=params.decompose_both,
        decompose_factor=params.decompose_factor,
        rank_dropout=params.rank_dropout,
        module_dropout=params.module_dropout,
    )
    return wrap(model, config)


register(
    Method(
        name="lokr",
        summary="Kronecker product of a small and a low-rank factor (LyCORIS; Edalati et al., 2022)",
        params=LokrParams,
        default_lr=1e-3,
        prepare=_prepare,
        check_model=targets_check_linear_only("lokr", "has no peft layer for transformers' Conv1D"),
        search_space={
            "r": {"type": "categorical", "choices": [2, 4, 8, 16, 32]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
