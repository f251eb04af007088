"""Full fine-tuning: every weight trains. The reference every PEFT method is measured against.

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/full.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class FullParams:
    """Full fine-tuning has no method hyperparameters beyond the learning rate."""


SPEC = register_method_spec(
    MethodSpec(
        name="full",
        summary="full fine-tuning of every weight",
        params=FullParams,
        default_lr=5e-5,
        runtime="peftlab.methods.full",
        search_space={"lr": {"type": "float", "low": 1e-5, "high": 3e-4, "log": True}},
        full_model=True,
    )
)
