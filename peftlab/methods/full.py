"""Full fine-tuning: every weight trains. The reference every PEFT method is measured against."""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.full import SPEC, FullParams
from peftlab.methods.registry import Method, ModelContext, register


def _prepare(model: Any, params: FullParams, ctx: ModelContext) -> Any:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


register(Method(SPEC, prepare=_prepare))
