"""LoKr: the weight update as a Kronecker product of a small and a low-rank factor (LyCORIS; Edalati et al., 2022)."""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.lokr import SPEC, LokrParams
from peftlab.methods.adapters import adapter_config, targets_check_linear_only, wrap
from peftlab.methods.registry import Method, ModelContext, register


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
        SPEC,
        prepare=_prepare,
        check_model=targets_check_linear_only("lokr", "has no peft layer for transformers' Conv1D"),
    )
)
