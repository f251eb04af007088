"""AdaLoRA: LoRA whose rank budget is reallocated during training (Zhang et al., 2023).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/adalora.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class AdaLoraParams:
    init_r: int = 12
    target_r: int = 8
    alpha: float = 16
    dropout: float = 0.05
    target_modules: list[str] | str | None = None
    tinit_ratio: float = 0.1  # fraction of steps before pruning starts
    tfinal_ratio: float = 0.2  # fraction of steps at the end with the final budget


SPEC = register_method_spec(
    MethodSpec(
        name="adalora",
        summary="LoRA with adaptive rank allocation (Zhang et al., 2023)",
        params=AdaLoraParams,
        default_lr=1e-3,
        runtime="peftlab.methods.adalora",
        fsdp=False,  # its per-step rank allocation reads whole gradients
    )
)
