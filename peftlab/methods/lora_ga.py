"""LoRA-GA: LoRA initialised so its first step follows the full fine-tuning gradient (Wang et al., 2024).

Data-aware: the registry's `calibrate` hook averages the gradient of each target weight over the
run's first training batches, and A, B start from that gradient's singular vectors (peft's
`lora_ga_init`); the base keeps W − scale·B₀A₀, so the adapter saves as a plain LoRA on the
original base (`base_moving`). peft's `preprocess_loraga` does the same on a model not yet wrapped;
here the gradients are taken on the wrapped model, where B = 0 makes the adapter an identity, so
that the one `prepare` → `calibrate` order serves every data-aware method.
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.lora_ga import SPEC, LoraGaParams
from peftlab.methods.base_moving import remember_initial_adapter, save_as_plain_lora
from peftlab.methods.lora import lora_config
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


def _prepare(model: Any, params: LoraGaParams, ctx: ModelContext) -> Any:
    from peft import LoraGAConfig, get_peft_model

    ga = LoraGAConfig(direction=params.direction, scale=params.scale, stable_gamma=params.stable_gamma)
    # without gradients peft initialises as plain LoRA (B = 0); `_calibrate` then re-initialises
    return get_peft_model(model, lora_config(params, ctx, model, init_lora_weights="lora_ga", lora_ga_config=ga))


def _calibrate(model: Any, batches: list[dict[str, Any]], params: LoraGaParams, ctx: ModelContext) -> None:
    import torch
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    weights = [layer.get_base_layer().weight for layer in layers]
    trainable = {p: p.requires_grad for p in model.parameters()}
    was_training = model.training
    chosen = batches[: params.calibration_batches]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for w in weights:
            w.requires_grad_(True)
            w.grad = None
        model.train()
        with torch.enable_grad():
            for batch in chosen:
                model(**batch).loss.backward()
        for layer, w in zip(layers, weights, strict=True):
            layer.get_base_layer()._peft_loraga_grad = w.grad.detach() / len(chosen)
            w.grad = None
    finally:
        for p, flag in trainable.items():
            p.requires_grad_(flag)
        model.train(was_training)
    config = model.peft_config["default"]
    with torch.no_grad():
        for layer in layers:
            layer.lora_ga_init("default", config.lora_ga_config)
    remember_initial_adapter(model)


register(
    Method(
        SPEC,
        prepare=_prepare,
        calibrate=_calibrate,
        check_model=targets_check("lora_ga"),
        save_adapter=save_as_plain_lora,
    )
)
