"""The method declarations: what each fine-tuning method is, declared without torch, found by name.

A method is two modules, as a task is (peftlab/task_specs). Its declaration (a `MethodSpec` in
`peftlab/method_specs/<name>.py`, registered at import) says what the config, the planners and
the docs need to know: its hyperparameters (a params dataclass, validated from YAML and hashed
into run ids), its default learning rate and search space, whether it trains, whether it saves
the whole model, the tasks it can run and whether FSDP can shard it. Its runtime (`runtime`, a
module under peftlab/methods/ that registers a `Method` with this spec and the hooks that
prepare a model with peft) is imported only when a run or a model check needs it. The
declarations are a leaf of the import graph (no torch, no peft, no runtime module), so the config
validates `methods:` in a second and `--dry-run` never loads a framework.

Every module of this package is imported by `_discover`: adding a method adds files, it edits none.
A method from outside the package registers its declaration with `register_method_spec` from an
entry point (`peftlab.methods`) or an experiment's `include:` folder (peftlab/plugins.py), loaded
once, after the built-ins, the first time a name is asked for.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from peftlab.plugins import clash, load_entry_points


@dataclass(frozen=True)
class MethodSpec:
    """A method's declaration; see the module docstring."""

    name: str
    summary: str
    params: type  # a dataclass: the method's hyperparameters, validated from YAML
    default_lr: float
    runtime: str  # the module that registers its `Method` (peftlab.methods.<module>), imported lazily
    search_space: Mapping[str, Any] = field(default_factory=dict)  # a `search:` block's defaults
    trains: bool = True  # False: a reference row (the base model evaluated as is); the loop is skipped
    full_model: bool = False  # saves the whole model rather than an adapter
    # the tasks the method can run (None: every registered task); any other is a one-line config error
    tasks: tuple[str, ...] | None = None
    # FSDP shards what trains: not a quantised base (4-bit storage is not sharded here) nor a per-step
    # hook that reads whole gradients (AdaLoRA's rank allocation); the runtime registry checks the claim
    fsdp: bool = True

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.params):
            raise TypeError(f"method {self.name!r}: params must be a dataclass")

    def param_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.params)]

    @property
    def takes_alpha_ratio(self) -> bool:
        """Methods with both alpha and r take `alpha_ratio` (alpha = ratio × r) in grids and searches."""
        names = self.param_names()
        return "alpha" in names and "r" in names

    def param_types(self) -> dict[str, Any]:
        """The type of each hyperparameter a grid or search may vary (`alpha_ratio` where it applies), lr excluded."""
        hints: dict[str, Any] = dict(get_type_hints(self.params))
        if self.takes_alpha_ratio:
            hints["alpha_ratio"] = float
        return hints


REGISTRY: dict[str, MethodSpec] = {}


def register_method_spec(spec: MethodSpec) -> MethodSpec:
    """Declare a method (a built-in's module does at import; a plugin calls it for its own)."""
    if spec.name in REGISTRY and REGISTRY[spec.name] != spec:
        raise clash("method", spec.name, _owner(REGISTRY[spec.name]))
    REGISTRY[spec.name] = spec
    return spec


def _owner(spec: MethodSpec) -> str:
    return "peftlab (built-in)" if spec.runtime.startswith("peftlab.") else spec.runtime


_discovered = False


def _discover() -> None:
    """Import every module of this package once: each registers its methods' declarations."""
    global _discovered
    if _discovered:
        return
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _discovered = True


def _all() -> dict[str, MethodSpec]:
    """The built-ins, then the plugins' (`peftlab.methods` entry points, loaded once)."""
    _discover()
    load_entry_points("peftlab.methods")
    return REGISTRY


def method_names() -> list[str]:
    return sorted(_all())


def all_method_specs() -> list[MethodSpec]:
    specs = _all()
    return [specs[name] for name in sorted(specs)]


def get_method_spec(name: str) -> MethodSpec:
    """The declaration of method `name`; KeyError (one line, naming the allowed values) for an unknown one."""
    specs = _all()
    if name not in specs:
        raise KeyError(f"unknown method {name!r}; allowed: {', '.join(sorted(specs))}")
    return specs[name]


__all__ = ["MethodSpec", "all_method_specs", "get_method_spec", "method_names", "register_method_spec"]
