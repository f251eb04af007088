"""LoRA-FA: LoRA with A frozen at its random initialisation and only B trained (Zhang et al., 2023).

Halves the adapter's trainable parameters and the optimiser state; peft's LoRA-FA optimiser
(`create_lorafa_optimizer`, through the registry's `make_optimizer` hook) projects B's gradient
so that the update approximates full LoRA's. A is frozen already in `prepare`, so the trainable
parameter count in the record is what actually trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peftlab.method_specs.lorafa import SPEC, LoraFaParams
from peftlab.methods.lora import lora_config
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check

if TYPE_CHECKING:
    from peftlab.config.optim import OptimizerSpec


def _prepare(model: Any, params: LoraFaParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    peft_model = get_peft_model(model, lora_config(params, ctx, model))
    for name, p in peft_model.named_parameters():
        if "lora_A" in name:
            p.requires_grad_(False)
    return peft_model


def _optimizer(model: Any, params: LoraFaParams, spec: OptimizerSpec) -> Any:
    """peft's LoRA-FA optimiser at the run's lr and decay (its betas are peft's own, AdamW's defaults)."""
    from peft.optimizers import create_lorafa_optimizer

    return create_lorafa_optimizer(
        model, r=params.r, lora_alpha=params.alpha, lr=spec.lr, weight_decay=spec.weight_decay
    )


register(Method(SPEC, prepare=_prepare, make_optimizer=_optimizer, check_model=targets_check("lorafa")))
