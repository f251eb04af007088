"""The method registry: a method's runtime hooks, joined to its declaration, found by name.

Like peft's `register_peft_method`: nothing in peftlab branches on method names. A method's
declaration (hyperparameters, default lr, search space: a `MethodSpec`, torch-free) lives in
peftlab/method_specs/ and is what the config reads; this registry holds what a run needs on top,
the functions that prepare a model with peft. Modules that register methods must not import torch
or peft at import time, so that the model checks before a run and `--dry-run` stay quick.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from peftlab import method_specs
from peftlab.method_specs import MethodSpec, get_method_spec
from peftlab.plugins import clash

if TYPE_CHECKING:
    import torch

    from peftlab.config.optim import OptimizerSpec


@dataclass(frozen=True)
class ModelContext:
    """What a method needs to know about the model and run to prepare it."""

    task_type: str  # peft TaskType name: "SEQ_CLS" or "CAUSAL_LM"
    model_type: str  # transformers config.model_type, e.g. "bert", "llama"
    total_steps: int  # optimiser steps in the run (AdaLoRA's schedule needs it)
    head_modules: tuple[str, ...] = ()  # modules the checkpoint lacked (head, pooler, ...): trained by every method


@dataclass(frozen=True)
class Method:
    """One fine-tuning method: its declaration (`spec`) and the hooks a run calls.

    `prepare` turns a freshly loaded model into the model to train (trainable flags set);
    `load_kwargs` adds `from_pretrained` arguments (quantisation); `on_step` runs after each
    optimiser step for methods with a schedule of their own (AdaLoRA's rank allocation).
    A method that does not train (`spec.trains` False) is measured and recorded like any other run,
    so a zero-shot reference sits in the same tables as the methods it is compared with.
    """

    spec: MethodSpec
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
    # a method that builds its own optimiser (LoRA+, LoRA-FA): (model, params, the run's optimiser spec) -> optimiser
    make_optimizer: Callable[[torch.nn.Module, Any, OptimizerSpec], Any] | None = None
    # a method whose initialisation moves the base weights (PiSSA, OLoRA, LoRA-GA) saves its adapter
    # converted to a plain LoRA on the untouched base: (model, folder) -> None
    save_adapter: Callable[[torch.nn.Module, Any], None] | None = None

    # the declaration, read through: what callers of the registry have always asked a method
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def summary(self) -> str:
        return self.spec.summary

    @property
    def params(self) -> type:
        return self.spec.params

    @property
    def default_lr(self) -> float:
        return self.spec.default_lr

    @property
    def search_space(self) -> Mapping[str, Any]:
        return self.spec.search_space

    @property
    def trains(self) -> bool:
        return self.spec.trains

    @property
    def full_model(self) -> bool:
        return self.spec.full_model

    @property
    def tasks(self) -> tuple[str, ...] | None:
        return self.spec.tasks

    def param_names(self) -> list[str]:
        return self.spec.param_names()


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Join a declared method to its hooks (a plugin's module calls this as a built-in's does, peftlab/plugins.py).

    The declaration must be the one peftlab.method_specs holds for the name, and its claims must hold.
    """
    name = method.spec.name
    if name in REGISTRY and REGISTRY[name] != method:
        raise clash("method", name, _owner(REGISTRY[name]))
    if method_specs.REGISTRY.get(name) is not method.spec:  # the plugins are not loaded from here
        raise ValueError(f"method {name!r}: its runtime names another declaration than peftlab.method_specs holds")
    if method.spec.fsdp and not method.spec.full_model and (method.load_kwargs or method.on_step):
        raise ValueError(f"method {name!r} loads a quantised base or has a per-step hook: declare fsdp=False")
    REGISTRY[name] = method
    return method


def _owner(method: Method) -> str:
    module = method.prepare.__module__
    return "peftlab (built-in)" if module.startswith("peftlab.") else module


def get_method(name: str) -> Method:
    """The method `name`, a built-in or a plugin's, its runtime imported on first use; KeyError if undeclared."""
    if name not in REGISTRY:
        importlib.import_module(get_method_spec(name).runtime)  # loads the `peftlab.methods` entry points first
    return REGISTRY[name]


def method_names() -> list[str]:
    from peftlab.method_specs import method_names as declared

    return declared()
