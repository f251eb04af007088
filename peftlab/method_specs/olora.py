"""OLoRA: LoRA initialised from a QR decomposition of each weight (Büyükakyüz, 2024).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/olora.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec
from peftlab.method_specs.lora import LoraParams


@dataclass
class OloraParams(LoraParams):
    """LoRA's hyperparameters; only the initialisation differs."""


SPEC = register_method_spec(
    MethodSpec(
        name="olora",
        summary="LoRA initialised from an orthonormal QR factorisation of W (Büyükakyüz, 2024)",
        params=OloraParams,
        default_lr=5e-4,
        runtime="peftlab.methods.olora",
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32]},
            "lr": {"type": "float", "low": 5e-5, "high": 2e-3, "log": True},
        },
    )
)
