"""IA3: learned rescaling vectors on keys, values and feed-forward activations (Liu et al., 2022)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import resolve_for_method, targets_check


@dataclass
class IA3Params:
    target_modules: list[str] | str | None = None  # None: peft's default for the architecture
    # the targets whose input is rescaled (the MLP down projections); None: found with the targets
    feedforward_modules: list[str] | str | None = None


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


register(
    Method(
        name="ia3",
        summary="learned activation rescaling vectors (Liu et al., 2022)",
        params=IA3Params,
        default_lr=5e-3,
        prepare=_prepare,
        check_model=targets_check("ia3"),
        search_space={"lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}},
    )
)
