"""MiSS (formerly Bone): one shared trainable shard per weight, expanded over its blocks (Kang & Yin, 2025).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/miss.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class MissParams:
    r: int = 16
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    mini_r: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(self.mini_r >= 1, "mini_r", f"got {self.mini_r}, must be at least 1")


SPEC = register_method_spec(
    MethodSpec(
        name="miss",
        summary="one trainable matrix shard shared across each weight's blocks (MiSS/Bone; Kang & Yin, 2025)",
        params=MissParams,
        default_lr=1e-3,
        runtime="peftlab.methods.miss",
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32, 64]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
