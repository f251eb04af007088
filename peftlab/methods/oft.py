"""OFT: an orthogonal block-diagonal rotation of each weight's input space (Qiu et al., 2023).

Orthogonal updates keep the angles between neurons (hyperspherical energy) fixed. peft's
current OFT builds the rotation with a Cayley–Neumann series, and block size, not rank, sets
its budget: the target layers' input width must be a multiple of `block_size`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from peftlab.method_specs.oft import SPEC, OftParams
from peftlab.methods.adapters import adapter_config, targets_check_linear_only, wrap
from peftlab.methods.fit import Unfit
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import resolve_for_method


def _prepare(model: Any, params: OftParams, ctx: ModelContext) -> Any:
    config = adapter_config(
        "OFTConfig",
        "oft",
        {"target_modules": params.target_modules},
        ctx,
        model,
        r=0,  # block size sets the budget; r is derived
        oft_block_size=params.block_size,
        module_dropout=params.module_dropout,
        coft=params.coft,
        eps=params.eps,
        block_share=params.block_share,
    )
    return wrap(model, config)


_linear_only = targets_check_linear_only("oft", "has no peft layer for transformers' Conv1D")


def _check(params: Mapping[str, Any], model: Any) -> None:
    """Targets resolve, and each target's input width is a multiple of the block size (peft's own rule)."""
    from peftlab.methods.targets import _matches, inspect_model

    _linear_only(params, model)
    resolved = resolve_for_method("oft", params, model)
    layout = inspect_model(model)
    block = params["block_size"]
    names = resolved.target_modules
    if not isinstance(names, list):
        return  # peft's default or a regex: peft checks at build time
    chosen = {n: fan_in for n, (fan_in, _) in layout.linear.items() if any(_matches(n, t) for t in names)}
    widths = {n.rsplit(".", 1)[-1]: fan_in for n, fan_in in chosen.items()}
    bad = {n: w for n, w in widths.items() if w % block}
    if bad:
        shown = ", ".join(f"{n} ({w})" for n, w in bad.items())
        raise Unfit("block_size", f"{block} does not divide the input width of {shown}")


register(Method(SPEC, prepare=_prepare, check_model=_check))
