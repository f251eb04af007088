"""Named target-module sets ("q", "qv", "qkv", "all-linear"), torch-free.

A search treats "which layers" as one categorical choice (Optuna choices must be scalars), and an
experiment can say the same thing for any architecture. The config validates the names; the LoRA
family resolves them to module names when it prepares a model.
"""

from __future__ import annotations

import re
from typing import Any

_ATTENTION_NAMES = {
    "bert": ("query", "key", "value"),
    "roberta": ("query", "key", "value"),
    "xlm-roberta": ("query", "key", "value"),
    "electra": ("query", "key", "value"),
    "distilbert": ("q_lin", "k_lin", "v_lin"),
}
_DEFAULT_ATTENTION = ("q_proj", "k_proj", "v_proj")
TARGET_SET_HELP = "a combination of q, k, v (e.g. q, qv, qkv) or all-linear"


def is_target_set(name: Any) -> bool:
    return isinstance(name, str) and (name == "all-linear" or re.fullmatch(r"q?k?v?", name) is not None) and name != ""


def resolve_target_modules(targets: Any, model_type: str) -> Any:
    """A set name ("q", "qv", "qkv", "all-linear") → module names of this architecture; anything else as is."""
    if not is_target_set(targets) or targets == "all-linear":
        return targets
    names = dict(zip("qkv", _ATTENTION_NAMES.get(model_type, _DEFAULT_ATTENTION), strict=True))
    return [names[letter] for letter in targets]
