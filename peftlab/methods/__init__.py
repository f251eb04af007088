"""Registered fine-tuning methods. Importing this package registers every built-in method."""

from peftlab.methods import adalora, full, ia3, lora, prompts, zero_shot  # noqa: F401  (registration side effect)
from peftlab.methods.registry import REGISTRY, Method, ModelContext, get_method, method_names, register

__all__ = ["REGISTRY", "Method", "ModelContext", "get_method", "method_names", "register"]
