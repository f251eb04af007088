"""LoHa: the weight update as the Hadamard product of two low-rank products (Hyeon-Woo et al., 2022).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/loha.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class LohaParams:
    r: int = 8
    alpha: float = 8
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    rank_dropout: float = 0.0
    module_dropout: float = 0.0

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(self.alpha > 0, "alpha", f"got {self.alpha}, must be positive")


SPEC = register_method_spec(
    MethodSpec(
        name="loha",
        summary="Hadamard product of two low-rank updates (LyCORIS; Hyeon-Woo et al., 2022)",
        params=LohaParams,
        default_lr=1e-3,
        runtime="peftlab.methods.loha",
        search_space={
            "r": {"type": "categorical", "choices": [2, 4, 8, 16, 32]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
