"""LoRA-FA: LoRA with A frozen at its random initialisation and only B trained (Zhang et al., 2023).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/lorafa.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec
from peftlab.method_specs.lora import LoraParams


@dataclass
class LoraFaParams(LoraParams):
    """LoRA's hyperparameters; A is frozen and the optimiser is LoRA-FA's."""


SPEC = register_method_spec(
    MethodSpec(
        name="lorafa",
        summary="LoRA with A frozen and B trained by a projected AdamW (Zhang et al., 2023)",
        params=LoraFaParams,
        default_lr=1e-3,
        runtime="peftlab.methods.lorafa",
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32, 64]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
