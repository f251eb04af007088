"""Soft-prompt methods: prompt tuning (input embeddings) and prefix tuning (per-layer key/values).

Neither is an identity at step 0, which is why forgetting baselines disable the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from peftlab.methods.registry import Method, ModelContext, register


@dataclass
class PromptTuningParams:
    num_virtual_tokens: int = 20
    init_text: str | None = None  # initialise from this text's embeddings instead of random

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.num_virtual_tokens >= 1, "num_virtual_tokens", "must be at least 1")


@dataclass
class PrefixTuningParams:
    num_virtual_tokens: int = 20
    prefix_projection: bool = False
    encoder_hidden_size: int | None = None  # MLP width when prefix_projection is on

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.num_virtual_tokens >= 1, "num_virtual_tokens", "must be at least 1")


def _prepare_prompt(model: Any, params: PromptTuningParams, ctx: ModelContext) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

    kwargs: dict[str, Any] = {}
    if params.init_text:
        kwargs = {
            "prompt_tuning_init": PromptTuningInit.TEXT,
            "prompt_tuning_init_text": params.init_text,
            "tokenizer_name_or_path": model.config.name_or_path,
        }
    config = PromptTuningConfig(
        task_type=ctx.task_type,
        num_virtual_tokens=params.num_virtual_tokens,
        # read through transformers' attribute map: peft looks in the config dict for `hidden_size`
        # and friends, which DistilBERT stores as `dim`, `n_heads`, `n_layers`
        token_dim=model.config.hidden_size,
        num_attention_heads=model.config.num_attention_heads,
        num_layers=model.config.num_hidden_layers,
        modules_to_save=list(ctx.head_modules) or None,
        **kwargs,
    )
    return get_peft_model(model, config)


def _prepare_prefix(model: Any, params: PrefixTuningParams, ctx: ModelContext) -> Any:
    from peft import PrefixTuningConfig, get_peft_model

    config = PrefixTuningConfig(
        task_type=ctx.task_type,
        num_virtual_tokens=params.num_virtual_tokens,
        prefix_projection=params.prefix_projection,
        encoder_hidden_size=params.encoder_hidden_size or model.config.hidden_size,
        modules_to_save=list(ctx.head_modules) or None,
    )
    return get_peft_model(model, config)


def _check_prefix(params: Mapping[str, Any], model: Any) -> None:
    """Prefix tuning hands the model per-layer keys and values as a cache; a model without one cannot take them."""
    import inspect

    from peftlab.methods.fit import Unfit

    backbone = getattr(model, "base_model", model)  # the task class passes the cache on through **kwargs
    if "past_key_values" not in inspect.signature(backbone.forward).parameters:
        raise Unfit(
            "method",
            f"prefix tuning feeds learned keys/values through past_key_values, which "
            f"{type(backbone).__name__} does not accept; use prompt_tuning for this model",
        )


register(
    Method(
        name="prompt_tuning",
        summary="trainable soft-prompt embeddings prepended to the input (Lester et al., 2021)",
        params=PromptTuningParams,
        default_lr=3e-2,
        prepare=_prepare_prompt,
        search_space={"lr": {"type": "float", "low": 1e-3, "high": 3e-1, "log": True}},
    )
)
register(
    Method(
        name="prefix_tuning",
        summary="trainable key/value prefixes in every attention layer (Li & Liang, 2021)",
        params=PrefixTuningParams,
        default_lr=1e-2,
        prepare=_prepare_prefix,
        check_model=_check_prefix,
        search_space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
    )
)
