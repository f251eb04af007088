"""LoRA+: LoRA with B trained at a higher learning rate than A (Hayou et al., 2024).

The adapter is plain LoRA; the method is its optimiser (peft's `create_loraplus_optimizer`),
built through the registry's `make_optimizer` hook. The fresh head trains at the base rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peftlab.method_specs.loraplus import SPEC, LoraPlusParams
from peftlab.methods.lora import lora_config
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check

if TYPE_CHECKING:
    from peftlab.config.optim import OptimizerSpec


def _prepare(model: Any, params: LoraPlusParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, lora_config(params, ctx, model))


def _optimizer(model: Any, params: LoraPlusParams, spec: OptimizerSpec) -> Any:
    """peft's LoRA+ AdamW: the run's optimiser spec, with B's rate `lr_ratio` times A's."""
    import torch
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(
        model,
        torch.optim.AdamW,
        lr=spec.lr,
        loraplus_lr_ratio=params.lr_ratio,
        weight_decay=spec.weight_decay,
        betas=spec.betas,
        eps=spec.eps,
    )


register(Method(SPEC, prepare=_prepare, make_optimizer=_optimizer, check_model=targets_check("loraplus")))
