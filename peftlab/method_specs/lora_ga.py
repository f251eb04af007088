"""LoRA-GA: LoRA initialised so its first step follows the full fine-tuning gradient (Wang et al., 2024).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/lora_ga.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from peftlab.method_specs import MethodSpec, register_method_spec
from peftlab.method_specs.lora import LoraParams


@dataclass
class LoraGaParams(LoraParams):
    dropout: float = 0.0
    direction: Literal["ArBr", "A2rBr", "ArB2r", "random"] = "ArB2r"  # which singular vectors go to A and B
    scale: Literal["stable", "weight_svd", "gd_scale"] = "stable"
    stable_gamma: float = 16
    calibration_batches: int = 8  # training batches whose gradients are averaged

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        super().__post_init__()
        check(self.calibration_batches >= 1, "calibration_batches", "must be at least 1")


SPEC = register_method_spec(
    MethodSpec(
        name="lora_ga",
        summary="LoRA initialised from the SVD of the full fine-tuning gradient (Wang et al., 2024)",
        params=LoraGaParams,
        default_lr=5e-4,
        runtime="peftlab.methods.lora_ga",
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32]},
            "lr": {"type": "float", "low": 5e-5, "high": 2e-3, "log": True},
        },
    )
)
