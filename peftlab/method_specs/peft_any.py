"""`method: peft`: any method peft ships, by its config class, without a module of its own.

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/peft_any.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class PeftParams:
    config: str = "LoraConfig"  # a peft config class name: VeraConfig, C3AConfig, RandLoraConfig, ...
    kwargs: dict[str, Any] = field(default_factory=dict)  # that class's keyword arguments


SPEC = register_method_spec(
    MethodSpec(
        name="peft",
        summary="any peft method by its config class (`config: VeraConfig`, `kwargs: {...}`); default LoraConfig",
        params=PeftParams,
        default_lr=1e-3,
        runtime="peftlab.methods.peft_any",
        search_space={"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    )
)
