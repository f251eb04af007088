"""Soft-prompt methods: prompt tuning (input embeddings) and prefix tuning (per-layer key/values).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/prompts.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


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


PROMPT_TUNING = register_method_spec(
    MethodSpec(
        name="prompt_tuning",
        summary="trainable soft-prompt embeddings prepended to the input (Lester et al., 2021)",
        params=PromptTuningParams,
        default_lr=3e-2,
        runtime="peftlab.methods.prompts",
        search_space={"lr": {"type": "float", "low": 1e-3, "high": 3e-1, "log": True}},
    )
)

PREFIX_TUNING = register_method_spec(
    MethodSpec(
        name="prefix_tuning",
        summary="trainable key/value prefixes in every attention layer (Li & Liang, 2021)",
        params=PrefixTuningParams,
        default_lr=1e-2,
        runtime="peftlab.methods.prompts",
        search_space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
    )
)
