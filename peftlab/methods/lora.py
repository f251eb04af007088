"""LoRA and its family (DoRA, rsLoRA, QLoRA): one peft `LoraConfig`, different switches.

QLoRA is LoRA on a base model loaded in 4-bit by bitsandbytes; the freshly initialised task
head stays in full precision (it is trained, so it must not be quantised).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import resolve_for_method, targets_check

_LORA_SPACE = {
    "r": {"type": "categorical", "choices": [1, 2, 4, 8, 16, 32, 64]},
    "alpha_ratio": {"type": "categorical", "choices": [0.5, 1.0, 2.0, 4.0]},
    "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
}


@dataclass
class LoraParams:
    r: int = 8
    alpha: float = 16
    dropout: float = 0.05
    # a set (q, qv, qkv, all-linear) resolved against the loaded model, layer names, or None: peft's
    # default for the architecture, else the attention projections found (peftlab.methods.targets)
    target_modules: list[str] | str | None = None
    bias: Literal["none", "all", "lora_only"] = "none"
    use_rslora: bool = False
    use_dora: bool = False

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(self.alpha > 0, "alpha", f"got {self.alpha}, must be positive")
        check(0 <= self.dropout < 1, "dropout", f"got {self.dropout}, must be in [0, 1)")


@dataclass
class QLoraParams(LoraParams):
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True


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


for _name, _summary, _prepare, _params, _extra in [
    ("lora", "low-rank adapters on attention projections (Hu et al., 2021)", _prepare_lora, LoraParams, {}),
    ("dora", "weight-decomposed low-rank adaptation (Liu et al., 2024)", _prepare_dora, LoraParams, {}),
    (
        "rslora",
        "LoRA with rank-stabilised alpha/sqrt(r) scaling (Kalajdzievski, 2023)",
        _prepare_rslora,
        LoraParams,
        {},
    ),
    (
        "qlora",
        "LoRA on a 4-bit NF4 base model via bitsandbytes (Dettmers et al., 2023)",
        _prepare_qlora,
        QLoraParams,
        {"load_kwargs": _qlora_load_kwargs},
    ),
]:
    register(
        Method(
            name=_name,
            summary=_summary,
            params=_params,
            default_lr=1e-3,
            prepare=_prepare,
            search_space=_LORA_SPACE,
            check_model=targets_check(_name),
            **_extra,
        )
    )
