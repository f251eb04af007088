"""OLoRA: LoRA initialised from a QR decomposition of each weight (Büyükakyüz, 2024).

A and B start orthonormal (from W's QR factors) and the base keeps the rest, which speeds up
convergence; saved as a plain LoRA on the original base (`base_moving`).
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.olora import SPEC, OloraParams
from peftlab.methods.adapters import targets_check_linear_only
from peftlab.methods.base_moving import remember_initial_adapter, save_as_plain_lora
from peftlab.methods.lora import lora_config
from peftlab.methods.registry import Method, ModelContext, register


def _prepare(model: Any, params: OloraParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    peft_model = get_peft_model(model, lora_config(params, ctx, model, init_lora_weights="olora"))
    remember_initial_adapter(peft_model)
    return peft_model


register(
    Method(
        SPEC,
        prepare=_prepare,
        check_model=targets_check_linear_only(
            "olora", "initialises from W as if it were (out, in), which Conv1D stores transposed (peft 0.21)"
        ),
        save_adapter=save_as_plain_lora,
    )
)
