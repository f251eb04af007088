"""VeRA: frozen random projections shared by all layers, per-layer scaling vectors trained (Kopiczko et al., 2024).

Two orders of magnitude fewer trainable parameters than LoRA at the same rank, which is why its
rank is large by default; the shared projections are saved with the adapter (`save_projection`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from peftlab.methods.adapters import adapter_config, wrap
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


@dataclass
class VeraParams:
    r: int = 256
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    dropout: float = 0.0
    d_initial: float = 0.1  # initial value of the trained scaling vector d
    projection_prng_key: int = 0  # seed of the shared random projections

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(0 <= self.dropout < 1, "dropout", f"got {self.dropout}, must be in [0, 1)")


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


register(
    Method(
        name="vera",
        summary="shared frozen random projections, per-layer trained scaling vectors (Kopiczko et al., 2024)",
        params=VeraParams,
        default_lr=1e-2,
        prepare=_prepare,
        check_model=targets_check("vera"),
        search_space={
            "r": {"type": "categorical", "choices": [64, 128, 256, 512, 1024]},
            "lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
        },
    )
)
