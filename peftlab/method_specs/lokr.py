"""LoKr: the weight update as a Kronecker product of a small and a low-rank factor (LyCORIS; Edalati et al., 2022).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/lokr.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


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


SPEC = register_method_spec(
    MethodSpec(
        name="lokr",
        summary="Kronecker product of a small and a low-rank factor (LyCORIS; Edalati et al., 2022)",
        params=LokrParams,
        default_lr=1e-3,
        runtime="peftlab.methods.lokr",
        search_space={
            "r": {"type": "categorical", "choices": [2, 4, 8, 16, 32]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
