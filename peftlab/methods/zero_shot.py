"""Zero-shot reference: the pretrained model evaluated as it is, with no training at all.

Registered as a method so that the reference is one more row of the same experiment: same data,
same evaluation code, same record and table. For an instruction-tuned causal LM this is the
number fine-tuning has to beat; for a classifier it is the untrained head (chance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.registry import Method, ModelContext, register


@dataclass
class ZeroShotParams:
    """Nothing to set: the base model is used as loaded."""


def _prepare(model: Any, params: ZeroShotParams, ctx: ModelContext) -> Any:
    for p in model.parameters():
        p.requires_grad_(False)
    return model


register(
    Method(
        name="zero_shot",
        summary="the base model evaluated without training (reference row)",
        params=ZeroShotParams,
        default_lr=0.0,
        prepare=_prepare,
        full_model=True,
        trains=False,
    )
)
