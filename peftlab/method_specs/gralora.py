"""GraLoRA: LoRA split into k×k independent sub-blocks, each with its own low-rank pair (Jung et al., 2025).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/gralora.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class GraloraParams:
    r: int = 8  # LoRA's default budget, so the zoo compares at equal trainable parameters
    alpha: float = 16
    k: int = 2  # sub-blocks per side
    hybrid_r: int = 0  # rank of an extra plain LoRA part beside the blocks
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    dropout: float = 0.0

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(self.k >= 1 and self.r % self.k == 0, "k", f"got {self.k}, must divide r ({self.r})")


SPEC = register_method_spec(
    MethodSpec(
        name="gralora",
        summary="LoRA as k×k independent low-rank sub-blocks (Jung et al., 2025)",
        params=GraloraParams,
        default_lr=1e-3,
        runtime="peftlab.methods.gralora",
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32, 64]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
