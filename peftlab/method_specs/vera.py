"""VeRA: frozen random projections shared by all layers, per-layer scaling vectors trained (Kopiczko et al., 2024).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/vera.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


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


SPEC = register_method_spec(
    MethodSpec(
        name="vera",
        summary="shared frozen random projections, per-layer trained scaling vectors (Kopiczko et al., 2024)",
        params=VeraParams,
        default_lr=1e-2,
        runtime="peftlab.methods.vera",
        search_space={
            "r": {"type": "categorical", "choices": [64, 128, 256, 512, 1024]},
            "lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
        },
    )
)
