"""BitFit: only the bias terms (and the fresh task head) train (Ben Zaken et al., 2022).

A method is a declaration (`MethodSpec`: its params, summary, default learning rate; what the
config validates) and a `Method` that joins it to a `prepare` function, the same two calls the
built-ins make (peftlab/method_specs/, peftlab/methods/). A built-in keeps them in two modules; a
plugin may keep both in one, as here, because this module imports no torch: it is imported when
an experiment is validated, and the model is only touched inside `_prepare`, when a run prepares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.config.schema import check
from peftlab.method_specs import MethodSpec, register_method_spec
from peftlab.methods import Method, ModelContext, register


@dataclass
class BitFitParams:
    # which biases train: every one, or only the attention and MLP ones ("query", "value", ...)
    only: list[str] | None = None

    def __post_init__(self) -> None:
        check(self.only is None or len(self.only) > 0, "only", "expected a non-empty list of name parts, or null")


def _prepare(model: Any, params: BitFitParams, ctx: ModelContext) -> Any:
    for name, weight in model.named_parameters():
        head = any(name == m or name.startswith(f"{m}.") for m in ctx.head_modules)
        bias = name.endswith(".bias") and (params.only is None or any(part in name for part in params.only))
        weight.requires_grad_(head or bias)
    return model


SPEC = register_method_spec(
    MethodSpec(
        name="bitfit",
        summary="only the bias terms train (Ben Zaken et al., 2022)",
        params=BitFitParams,
        default_lr=1e-3,
        runtime=__name__,  # the module that registers the `Method` below: this one
        full_model=True,  # the trained biases are spread over the whole model: it is saved whole
        search_space={"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    )
)
register(Method(SPEC, prepare=_prepare))
