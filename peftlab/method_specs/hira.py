"""HiRA: a high-rank update as the Hadamard product of W with a low-rank product (Huang et al., 2025).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/hira.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class HiraParams:
    r: int = 8  # LoRA's default budget, so the zoo compares at equal trainable parameters
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    dropout: float = 0.0

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")


SPEC = register_method_spec(
    MethodSpec(
        name="hira",
        summary="high-rank update W ⊙ (B·A) at LoRA's parameter count (Huang et al., 2025)",
        params=HiraParams,
        default_lr=1e-3,
        runtime="peftlab.methods.hira",
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32, 64]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
