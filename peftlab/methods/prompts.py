"""Soft-prompt methods: prompt tuning (input embeddings) and prefix tuning (per-layer key/values).

Neither is an identity at step 0, which is why forgetting baselines disable the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from peftlab.method_specs.prompts import PREFIX_TUNING, PROMPT_TUNING, PrefixTuningParams, PromptTuningParams
from peftlab.methods.registry import Method, ModelContext, register


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


def _prefix_forward(tiny: Any) -> None:
    """One forward pass of `tiny` under a one-token prefix: what prefix tuning needs, and nothing more."""
    import torch
    from peft import PrefixTuningConfig, get_peft_model

    task = "CAUSAL_LM" if type(tiny).__name__.endswith("ForCausalLM") else "SEQ_CLS"
    wrapped = get_peft_model(tiny, PrefixTuningConfig(task_type=task, num_virtual_tokens=1))
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        wrapped(input_ids=ids, attention_mask=torch.ones_like(ids))


def _check_prefix(params: Mapping[str, Any], model: Any) -> None:
    """Prefix tuning hands every attention layer learned keys/values through the model's cache argument.

    Asked by behaviour, not by signature (a deprecated keyword alias hides the argument from the
    signature while it still works): a one-token prefix on a tiny model of the same class must
    run a forward pass (`peftlab.methods.capability`).
    """
    from peftlab.methods.capability import versions_text, works
    from peftlab.methods.fit import Unfit

    why = works("prefix_tuning", model, _prefix_forward)
    if why is not None:
        raise Unfit(
            "method",
            f"prefix tuning failed a one-token forward pass on a tiny {type(model).__name__} "
            f"({why}; {versions_text()}); use prompt_tuning for this model",
        )


register(Method(PROMPT_TUNING, prepare=_prepare_prompt))
register(Method(PREFIX_TUNING, prepare=_prepare_prefix, check_model=_check_prefix))
