"""Full fine-tuning: every weight trains. The reference every PEFT method is measured against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.registry import Method, ModelContext, register


@dataclass
class FullParams:
    """Full fine-tuning has no method hyperparameters beyond the learning rate."""


def _prepare(model: Any, params: FullParams, ctx: ModelContext) -> Any:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


register(
    Method(
        name="full",
        summary="full fine-tuning of every weight",
        params=FullParams,
        default_lr=5e-5,
        prepare=_prepare,
        full_model=True,
        search_space={"lr": {"type": "float", "low": 1e-5, "high": 3e-4, "log": True}},
    )
)
