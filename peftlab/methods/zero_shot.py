"""Zero-shot reference: the pretrained model evaluated as it is, with no training at all.

Registered as a method so that the reference is one more row of the same experiment: same data,
same evaluation code, same record and table. For an instruction-tuned causal LM this is the
number fine-tuning has to beat; for a classifier it is the untrained head (chance).
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.zero_shot import SPEC, ZeroShotParams
from peftlab.methods.registry import Method, ModelContext, register


def _prepare(model: Any, params: ZeroShotParams, ctx: ModelContext) -> Any:
    for p in model.parameters():
        p.requires_grad_(False)
    return model


register(Method(SPEC, prepare=_prepare))
