"""AdaLoRA: LoRA whose rank budget is reallocated during training (Zhang et al., 2023).

It is the one method with a schedule of its own, so it needs `total_steps` and an `on_step`
call after every optimiser step.
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.adalora import SPEC, AdaLoraParams
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import resolve_for_method, targets_check


def _prepare(model: Any, params: AdaLoraParams, ctx: ModelContext) -> Any:
    from peft import AdaLoraConfig, get_peft_model

    total = max(ctx.total_steps, 3)
    tinit = int(total * params.tinit_ratio)
    tfinal = int(total * params.tfinal_ratio)
    if tinit + tfinal >= total:  # peft requires a non-empty budgeting phase
        tinit, tfinal = 0, 0
    targets = resolve_for_method("adalora", {"target_modules": params.target_modules}, model)
    config = AdaLoraConfig(
        task_type=ctx.task_type,
        init_r=params.init_r,
        target_r=params.target_r,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=targets.target_modules,
        fan_in_fan_out=targets.fan_in_fan_out,
        total_step=total,
        tinit=tinit,
        tfinal=tfinal,
        modules_to_save=list(ctx.head_modules) or None,
    )
    return get_peft_model(model, config)


def _on_step(model: Any, step: int) -> None:
    model.base_model.update_and_allocate(step)


register(Method(SPEC, prepare=_prepare, check_model=targets_check("adalora"), on_step=_on_step))
