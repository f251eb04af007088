"""IA3: learned rescaling vectors on keys, values and feed-forward activations (Liu et al., 2022)."""

from __future__ import annotations

import dataclasses
from typing import Any

from peftlab.method_specs.ia3 import SPEC, IA3Params
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import resolve_for_method, targets_check


def _prepare(model: Any, params: IA3Params, ctx: ModelContext) -> Any:
    from peft import IA3Config, get_peft_model

    targets = resolve_for_method("ia3", dataclasses.asdict(params), model)
    config = IA3Config(
        task_type=ctx.task_type,
        target_modules=targets.target_modules,
        feedforward_modules=targets.feedforward_modules,
        fan_in_fan_out=targets.fan_in_fan_out,
        modules_to_save=list(ctx.head_modules) or None,
    )
    return get_peft_model(model, config)


register(Method(SPEC, prepare=_prepare, check_model=targets_check("ia3")))
