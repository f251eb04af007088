"""LoHa: the weight update as the Hadamard product of two low-rank products (Hyeon-Woo et al., 2022).

From the LyCORIS family: rank r·r expressiveness for 2× LoRA's parameters at rank r.
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.loha import SPEC, LohaParams
from peftlab.methods.adapters import adapter_config, targets_check_linear_only, wrap
from peftlab.methods.registry import Method, ModelContext, register


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
        SPEC,
        prepare=_prepare,
        check_model=targets_check_linear_only("loha", "has no peft layer for transformers' Conv1D"),
    )
)
