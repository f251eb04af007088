"""Registered fine-tuning methods. Importing this package registers every built-in method."""

from peftlab.methods import (  # noqa: F401  (registration side effect)
    adalora,
    eva,
    full,
    gralora,
    hira,
    ia3,
    loha,
    lokr,
    lora,
    lora_ga,
    lorafa,
    loraplus,
    miss,
    oft,
    olora,
    peft_any,
    pissa,
    prompts,
    vera,
    zero_shot,
)
from peftlab.methods.registry import REGISTRY, Method, ModelContext, get_method, method_names, register

__all__ = ["REGISTRY", "Method", "ModelContext", "get_method", "method_names", "register"]
