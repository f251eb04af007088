"""PiSSA: LoRA initialised from the principal singular vectors of each weight (Meng et al., 2024).

A·B starts as the top-r part of W and the base keeps the residual, so training moves the
principal directions first; saved as a plain LoRA on the original base (`base_moving`).
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.pissa import SPEC, PissaParams
from peftlab.methods.base_moving import remember_initial_adapter, save_as_plain_lora
from peftlab.methods.lora import lora_config
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


def _prepare(model: Any, params: PissaParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    init = "pissa" if params.svd_niter == 0 else f"pissa_niter_{params.svd_niter}"
    peft_model = get_peft_model(model, lora_config(params, ctx, model, init_lora_weights=init))
    remember_initial_adapter(peft_model)
    return peft_model


register(Method(SPEC, prepare=_prepare, check_model=targets_check("pissa"), save_adapter=save_as_plain_lora))
