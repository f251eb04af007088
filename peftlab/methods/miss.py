"""MiSS (formerly Bone): one shared trainable shard per weight, expanded over its blocks (Kang & Yin, 2025).

A matrix-shard-sharing update: about LoRA's parameter count at rank r with a cheaper forward.
peft's default rank is 64; here r = 16, which fits small encoders (r must not exceed a target's
output width) and keeps the zoo's budgets near LoRA's.
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.miss import SPEC, MissParams
from peftlab.methods.adapters import adapter_config, targets_check_linear_only, wrap
from peftlab.methods.registry import Method, ModelContext, register


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
        SPEC,
        prepare=_prepare,
        check_model=targets_check_linear_only("miss", "has no peft layer for transformers' Conv1D"),
    )
)
