"""GraLoRA: LoRA split into k×k independent sub-blocks, each with its own low-rank pair (Jung et al., 2025).

Same parameter count as LoRA at rank r, but each block's gradient is local, which fixes LoRA's
gradient entanglement at high rank; a top scorer on peft's method comparison. `k` must divide
r and the target layers' widths.
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.gralora import SPEC, GraloraParams
from peftlab.methods.adapters import adapter_config, wrap
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


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


register(Method(SPEC, prepare=_prepare, check_model=targets_check("gralora")))
