"""The method registry: a method is one small object, registered once, found by name.

Like peft's `register_peft_method`: adding a method touches one module, and nothing else in
peftlab branches on method names. Modules that register methods must not import torch or peft
at import time, so that config validation and `--dry-run` stay instant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from peftlab.plugins import clash, load_entry_points

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModelContext:
    """What a method needs to know about the model and run to prepare it."""

    task_type: str  # peft TaskType name: "SEQ_CLS" or "CAUSAL_LM"
    model_type: str  # transformers config.model_type, e.g. "bert", "llama"
    total_steps: int  # optimiser steps in the run (AdaLoRA's schedule needs it)
    head_modules: tuple[str, ...] = ()  # modules the checkpoint lacked (head, pooler, ...): trained by every method


@dataclass(frozen=True)
class Method:
    """One fine-tuning method.

    `prepare` turns a freshly loaded model into the model to train (trainable flags set);
    `load_kwargs` adds `from_pretrained` arguments (quantisation); `on_step` runs after each
    optimiser step for methods with a schedule of their own (AdaLoRA's rank allocation).
    A method that does not train (`trains=False`) is measured and recorded like any other run,
    so a zero-shot reference sits in the same tables as the methods it is compared with.
    """

    name: str
    summary: str
    params: type  # a dataclass: the method's hyperparameters, validated from YAML
    default_lr: float
    prepare: Callable[[torch.nn.Module, Any, ModelContext], torch.nn.Module]
    # (params, device, modules to keep unquantised) -> kwargs
    load_kwargs: Callable[[Any, str, tuple[str, ...]], dict[str, Any]] | None = None
    on_step: Callable[[torch.nn.Module, int], None] | None = None
    # (params as a dict, the model's weightless meta-device skeleton) -> None; raises
    # peftlab.methods.fit.Unfit for a model this method cannot adapt, so that the mistake is a
    # one-line config error before any run starts rather than a failed run
    check_model: Callable[[Mapping[str, Any], Any], None] | None = None
    # data-aware initialisation (EVA, LoRA-GA): (prepared model, the run's first training batches as
    # device tensors, params, ctx) -> None, called once after `prepare` and before training; the
    # recipe calls it for any method that has one, so no caller branches on method names
    calibrate: Callable[[torch.nn.Module, list[dict[str, Any]], Any, ModelContext], None] | None = None
    # a method that builds its own optimiser (LoRA+, LoRA-FA): (model, params, lr, weight_decay) -> optimiser
    make_optimizer: Callable[[torch.nn.Module, Any, float, float], Any] | None = None
    # a method whose initialisation moves the base weights (PiSSA, OLoRA, LoRA-GA) saves its adapter
    # converted to a plain LoRA on the untouched base: (model, folder) -> None
    save_adapter: Callable[[torch.nn.Module, Any], None] | None = None
    # the tasks the method can run (None: every registered task); any other is a one-line config error
    tasks: tuple[str, ...] | None = None
    full_model: bool = False  # saves the whole model rather than an adapter
    trains: bool = True  # False: a reference row (the base model evaluated as is); the loop is skipped
    search_space: Mapping[str, Any] = field(default_factory=dict)

    def param_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.params)]


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method; a plugin's module calls this as a built-in's does (peftlab/plugins.py)."""
    if method.name in REGISTRY:
        raise clash("method", method.name, _owner(REGISTRY[method.name]))
    if not dataclasses.is_dataclass(method.params):
        raise TypeError(f"method {method.name!r}: params must be a dataclass")
    REGISTRY[method.name] = method
    return method


def _owner(method: Method) -> str:
    module = method.prepare.__module__
    return "peftlab (built-in)" if module.startswith("peftlab.") else module


def get_method(name: str) -> Method:
    """The method `name`, a built-in or a plugin's (the `peftlab.methods` entry points are loaded once, first)."""
    load_entry_points("peftlab.methods")
    return REGISTRY[name]


def method_names() -> list[str]:
    load_entry_points("peftlab.methods")
    return sorted(REGISTRY)
