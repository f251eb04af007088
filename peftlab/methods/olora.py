"""OLoRA: LoRA initialised from a QR decomposition of each weight (Büyükakyüz, 2024).

A and B start orthonormal (from W's QR factors) and the base keeps the rest, which speeds up
convergence; saved as a plain LoRA on the original base (`base_moving`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.adapters import targets_check_linear_only
from peftlab.methods.base_moving import remember_initial_adapter, save_as_plain_lora
from peftlab.methods.lora import LoraParams, lora_config
from peftlab.methods.registry import Method, ModelContext, register


@dataclass
class OloraParams(LoraParams):
    """LoRA's hyperparameters; only the initialisation differs."""


def _prepare(model: Any, params: OloraParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    peft_model = get_peft_model(model, lora_config(params, ctx, model, init_lora_weights="olora"))
    remember_initial_adapter(peft_model)
    return peft_model


register(
    Method(
        name="olora",
        summary="LoRA initialised from an orthonormal QR factorisation of W (Büyükakyüz, 2024)",
        params=OloraParams,
        default_lr=5e-4,
        prepare=_prepare,
        check_model=targets_check_linear_only(
            "olora", "initialises from W as if it were (out, in), which Conv1D stores transposed (peft 0.21)"
        ),
        save_adapter=save_as_plain_lora,
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32]},
            "lr": {"type": "float", "low": 5e-5, "high": 2e-3, "log": True},
        },
    )
)
