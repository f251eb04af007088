"""HiRA: a high-rank update as the Hadamard product of W with a low-rank product (Huang et al., 2025).

ΔW = W ⊙ (B·A): LoRA's parameter count at rank r, but the update's rank is not bounded by r;
a top scorer on peft's method comparison.
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.hira import SPEC, HiraParams
from peftlab.methods.adapters import adapter_config, wrap
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


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


register(Method(SPEC, prepare=_prepare, check_model=targets_check("hira")))
