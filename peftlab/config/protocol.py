"""The `protocol:` switch: how the methods' hyperparameters are chosen before they are compared.

Hand-picked learning rates favour whichever method its author tuned best. `protocol: tuned`
gives every method the same budget instead: its learning rate (and any space the file declares
for it) is tuned on validation by a small seeded TPE study at the first seed, then the chosen
configuration runs at every seed and is evaluated on test. This module only validates the
block and builds one `SearchConfig` per method entry; the planner
(`peftlab.planners.tuned`) runs the studies. Part of the config leaf: no optuna here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from peftlab.config.schema import closest, coerce, fail
from peftlab.config.search import SearchConfig, _parse_dimension, primary_objective
from peftlab.method_specs import get_method_spec

if TYPE_CHECKING:
    from peftlab.config.entries import MethodEntry
    from peftlab.task_specs import TaskChoice

PROTOCOLS = ("hand_picked", "tuned")
_TUNE_KEYS = ("trials", "lr_factor", "space", "seed")


@dataclass
class ProtocolConfig:
    """`protocol: tuned` with its `tune:` budget; `searches` holds one study's config per method label."""

    trials: int = 4  # TPE trials per method, at seeds[0], scored on the task's primary metric (validation)
    lr_factor: float = 10.0  # lr searched log-uniformly in [lr / factor, lr × factor] around the entry's lr
    seed: int = 0  # the sampler's seed
    space: dict[str, dict[str, Any]] = field(default_factory=dict)  # declared extra dimensions per label
    searches: dict[str, SearchConfig] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"tuned": True, "trials": self.trials, "lr_factor": self.lr_factor, "seed": self.seed}


def parse_protocol(raw: Any, origin: str, methods: list[MethodEntry], task: TaskChoice) -> ProtocolConfig | None:
    """`protocol: tuned` (defaults), `protocol: {tune: {trials, lr_factor, space, seed}}`, or hand_picked/null."""
    if raw is None or raw == "hand_picked":
        return None
    if raw == "tuned":
        raw = {"tune": {}}
    if not isinstance(raw, dict) or set(raw) != {"tune"}:
        fail(
            origin, "protocol", f"got {raw!r}, allowed: {', '.join(PROTOCOLS)} or {{tune: {{{', '.join(_TUNE_KEYS)}}}}}"
        )
    tune = raw["tune"] or {}
    if not isinstance(tune, dict):
        fail(origin, "protocol.tune", f"got {tune!r}, expected a mapping with keys {', '.join(_TUNE_KEYS)}")
    for key in tune:
        if key not in _TUNE_KEYS:
            fail(
                origin,
                f"protocol.tune.{key}",
                f"unknown key; allowed: {', '.join(_TUNE_KEYS)}{closest(str(key), _TUNE_KEYS)}",
            )
    cfg = ProtocolConfig()
    cfg.trials = coerce(tune.get("trials", cfg.trials), int, origin, "protocol.tune.trials")
    if cfg.trials < 1:
        fail(origin, "protocol.tune.trials", f"got {cfg.trials}, must be at least 1")
    cfg.lr_factor = coerce(tune.get("lr_factor", cfg.lr_factor), float, origin, "protocol.tune.lr_factor")
    if cfg.lr_factor <= 1:
        fail(origin, "protocol.tune.lr_factor", f"got {cfg.lr_factor}, must be above 1 (the lr range is lr/f to lr×f)")
    cfg.seed = coerce(tune.get("seed", cfg.seed), int, origin, "protocol.tune.seed")
    cfg.space = _parse_space(tune.get("space") or {}, origin, methods)
    for entry in methods:
        if not get_method_spec(entry.method).trains:
            continue  # nothing learned (zero-shot): nothing to tune; it runs as written
        space = {"lr": _lr_range(entry.lr, cfg.lr_factor), **cfg.space.get(entry.label, {})}
        cfg.searches[entry.label] = SearchConfig(
            sampler="tpe",
            trials=cfg.trials,
            space={entry.label: space},
            seed=cfg.seed,
            objectives=[primary_objective(task)],  # the chosen metric, on validation
        )
    return cfg


def _lr_range(lr: float, factor: float) -> dict[str, Any]:
    return {"type": "float", "low": lr / factor, "high": lr * factor, "log": True, "step": None}


def _parse_space(raw: Any, origin: str, methods: list[MethodEntry]) -> dict[str, dict[str, Any]]:
    """Declared extra dimensions, per method label, in the `search.space` spelling (lists, ranges)."""
    if not isinstance(raw, dict):
        fail(origin, "protocol.tune.space", f"got {raw!r}, expected a mapping of method label to its space")
    entries = {m.label: m for m in methods}
    for i, entry in enumerate(methods):
        if entry.grid:
            fail(origin, f"methods[{i}].grid", "the tuned protocol chooses hyperparameters itself; remove grid")
    out: dict[str, dict[str, Any]] = {}
    for label, dims in raw.items():
        if label not in entries:
            fail(origin, f"protocol.tune.space.{label}", f"no method labelled {label!r}; labels: {', '.join(entries)}")
        if not isinstance(dims, dict):
            fail(origin, f"protocol.tune.space.{label}", f"got {dims!r}, expected a mapping of hyperparameter to range")
        hints = get_method_spec(entries[label].method).param_types()
        out[label] = {}
        for key, value in dims.items():
            path = f"protocol.tune.space.{label}.{key}"
            if key == "lr" or key not in hints:
                allowed = ", ".join(hints) or "none (lr is always tuned)"
                fail(origin, path, f"not a hyperparameter to declare for {entries[label].method!r}; allowed: {allowed}")
            out[label][key] = _parse_dimension(value, hints[key], key, origin, path)
    return out
