"""LoRA and its family (DoRA, rsLoRA, QLoRA): one peft `LoraConfig`, different switches.

QLoRA is LoRA on a base model loaded in 4-bit by bitsandbytes; the freshly initialised task
head stays in full precision (it is trained, so it must not be quantised).
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.lora import DORA, LORA, QLORA, RSLORA, LoraParams, QLoraParams
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import resolve_for_method, targets_check


def lora_config(params: LoraParams, ctx: ModelContext, model: Any, **overrides: Any) -> Any:
    """peft's LoraConfig, with `target_modules` resolved against `model` (see `methods.targets`)."""
    from peft import LoraConfig

    targets = resolve_for_method("lora", {"target_modules": params.target_modules}, model)
    kwargs: dict[str, Any] = {
        "task_type": ctx.task_type,
        "r": params.r,
        "lora_alpha": params.alpha,
        "lora_dropout": params.dropout,
        "target_modules": targets.target_modules,
        "fan_in_fan_out": targets.fan_in_fan_out,
        "bias": params.bias,
        "use_rslora": params.use_rslora,
        "use_dora": params.use_dora,
        "modules_to_save": list(ctx.head_modules) or None,
    }
    return LoraConfig(**(kwargs | overrides))


def _prepare_lora(model: Any, params: LoraParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, lora_config(params, ctx, model))


def _prepare_dora(model: Any, params: LoraParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, lora_config(params, ctx, model, use_dora=True))


def _prepare_rslora(model: Any, params: LoraParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, lora_config(params, ctx, model, use_rslora=True))


def _qlora_load_kwargs(params: QLoraParams, device: str, head_modules: tuple[str, ...] = ()) -> dict[str, Any]:
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=params.quant_type,
        bnb_4bit_use_double_quant=params.double_quant,
        bnb_4bit_compute_dtype=compute,
        llm_int8_skip_modules=list(head_modules) or None,
    )
    return {"quantization_config": quant, "device_map": {"": device}}


def _prepare_qlora(model: Any, params: QLoraParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model, prepare_model_for_kbit_training

    from peftlab.methods.bnb_cpu import keep_4bit_weights_unpacked

    keep_4bit_weights_unpacked(model)  # else an evaluation repacks the weights and training dies after it
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, lora_config(params, ctx, model))


register(Method(LORA, prepare=_prepare_lora, check_model=targets_check("lora")))
register(Method(DORA, prepare=_prepare_dora, check_model=targets_check("dora")))
register(Method(RSLORA, prepare=_prepare_rslora, check_model=targets_check("rslora")))
register(Method(QLORA, prepare=_prepare_qlora, load_kwargs=_qlora_load_kwargs, check_model=targets_check("qlora")))
