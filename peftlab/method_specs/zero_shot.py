"""Zero-shot reference: the pretrained model evaluated as it is, with no training at all.

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/zero_shot.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class ZeroShotParams:
    """Nothing to set: the base model is used as loaded."""


SPEC = register_method_spec(
    MethodSpec(
        name="zero_shot",
        summary="the base model evaluated without training (reference row)",
        params=ZeroShotParams,
        default_lr=0.0,
        runtime="peftlab.methods.zero_shot",
        trains=False,
        full_model=True,
    )
)
