"""Shared plumbing for methods that are one peft config class: targets resolved, head kept whole.

Every adapter method hands peft the same three things besides its own hyperparameters: the task
type, the target layers resolved against the loaded model (`methods.targets`), and the modules
the checkpoint lacked (the fresh head), which train whole. Only the config class and its own
fields differ, so a method module is its params dataclass, its defaults and one call here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from peftlab.methods.registry import ModelContext


def peft_config_fields(config_cls: type) -> list[str]:
    """The keyword arguments a peft config class takes (its dataclass fields, those a user may set)."""
    return [f.name for f in dataclasses.fields(config_cls) if f.init]


def adapter_config(
    config_name: str, kind: str, target_params: Mapping[str, Any], ctx: ModelContext, model: Any, **fields: Any
) -> Any:
    """peft's `config_name` for `model`: the targets in `target_params` resolved as for method `kind`.

    `fan_in_fan_out` is set where the class has it and the targets are Conv1D (GPT-2), as LoRA does.
    """
    import peft

    from peftlab.methods.targets import resolve_for_method

    config_cls = getattr(peft, config_name)
    allowed = set(peft_config_fields(config_cls))
    targets = resolve_for_method(kind, target_params, model)
    kwargs: dict[str, Any] = {
        "task_type": ctx.task_type,
        "target_modules": targets.target_modules,
        "modules_to_save": list(ctx.head_modules) or None,
    }
    if targets.feedforward_modules is not None and "feedforward_modules" in allowed:
        kwargs["feedforward_modules"] = targets.feedforward_modules
    if "fan_in_fan_out" in allowed and "fan_in_fan_out" not in fields:
        kwargs["fan_in_fan_out"] = targets.fan_in_fan_out
    return config_cls(**(kwargs | fields))


def wrap(model: Any, config: Any) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, config)


def targets_check_linear_only(method: str, why: str) -> Any:
    """`check_model` for a method peft cannot apply to transformers' Conv1D (GPT-2's layers): resolve, then refuse.

    peft raises inside the run (LoHa, LoKr: "not supported") or, worse, builds an adapter whose
    shapes do not fit (OLoRA ignores `fan_in_fan_out`); a config error before any run says so.
    """
    from peftlab.methods.fit import Unfit
    from peftlab.methods.targets import resolve_for_method

    def check(params: Mapping[str, Any], model: Any) -> None:
        if resolve_for_method(method, params, model).fan_in_fan_out:
            kind = getattr(getattr(model, "config", None), "model_type", "this model")
            raise Unfit("method", f"{method} {why} ({kind}'s target layers are Conv1D); use lora or ia3 here")

    return check
