"""LoRA+: LoRA with B trained at a higher learning rate than A (Hayou et al., 2024).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/loraplus.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec
from peftlab.method_specs.lora import LoraParams


@dataclass
class LoraPlusParams(LoraParams):
    lr_ratio: float = 16.0  # η_B / η_A; the paper's default

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        super().__post_init__()
        check(self.lr_ratio >= 1, "lr_ratio", f"got {self.lr_ratio}, must be at least 1")


SPEC = register_method_spec(
    MethodSpec(
        name="loraplus",
        summary="LoRA with B's learning rate a fixed multiple of A's (Hayou et al., 2024)",
        params=LoraPlusParams,
        default_lr=5e-4,
        runtime="peftlab.methods.loraplus",
        search_space={
            "lr_ratio": {"type": "categorical", "choices": [2.0, 4.0, 8.0, 16.0, 32.0]},
            "lr": {"type": "float", "low": 5e-5, "high": 2e-3, "log": True},
        },
    )
)
