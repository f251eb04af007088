"""VeRA: frozen random projections shared by all layers, per-layer scaling vectors trained (Kopiczko et al., 2024).

Two orders of magnitude fewer trainable parameters than LoRA at the same rank, which is why its
rank is large by default; the shared projections are saved with the adapter (`save_projection`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from peftlab.method_specs.vera import SPEC, VeraParams
from peftlab.methods.adapters import adapter_config, wrap
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


def _prepare(model: Any, params: VeraParams, ctx: ModelContext) -> Any:
    fields = dataclasses.asdict(params)
    config = adapter_config(
        "VeraConfig",
        "vera",
        fields,
        ctx,
        model,
        r=params.r,
        vera_dropout=params.dropout,
        d_initial=params.d_initial,
        projection_prng_key=params.projection_prng_key,
    )
    return wrap(model, config)


register(Method(SPEC, prepare=_prepare, check_model=targets_check("vera")))
