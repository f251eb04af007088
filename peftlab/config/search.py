"""The `search:` block of an experiment, validated without Optuna: sampler, trials, objectives, space, pruner.

Part of the config leaf: `--dry-run` and validation never import optuna. The study itself (ask,
tell, storage) lives in `peftlab.planners.optuna_search`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from peftlab.config.queue import redact
from peftlab.config.schema import closest, coerce, fail
from peftlab.method_specs import get_method_spec
from peftlab.method_specs.target_sets import TARGET_SET_HELP, is_target_set

if TYPE_CHECKING:
    from peftlab.config.entries import MethodEntry, TrainConfig
    from peftlab.task_specs import TaskChoice

# objective name -> (path in a run record, natural direction): the costs, for every task. A task's
# metrics are objectives too, as `val_<metric>` with the direction the task declares (`task_objectives`).
OBJECTIVES: dict[str, tuple[tuple[str, ...], str]] = {
    "trainable_params": (("params", "trainable"), "minimize"),
    "trainable_pct": (("params", "trainable_pct"), "minimize"),
    "peak_memory_mb": (("memory", "peak_mb"), "minimize"),
    "train_s": (("time", "train_s"), "minimize"),
    "saved_mb": (("size", "saved_mb"), "minimize"),
}
PRUNERS: dict[str, dict[str, type]] = {  # pruner -> the options it takes
    "none": {},
    "median": {"n_startup_trials": int, "n_warmup_steps": int, "interval_steps": int},
    "hyperband": {"min_resource": int, "max_resource": int, "reduction_factor": int},
    "threshold": {"lower": float, "upper": float, "n_warmup_steps": int},
}
SAMPLERS = ("tpe", "random", "grid")
METRIC_PREFIX = "val_"  # objectives are validation scores: test scores are reported, never optimised


def task_objectives(task: TaskChoice) -> dict[str, tuple[tuple[str, ...], str]]:
    """Every objective a study of `task` may name: `val_<metric>` for each declared metric the runs
    compute (not the score of another `data.metric` choice, e.g. sft's bleu under exact_match), then the costs."""
    spec = task.spec
    # the first choice is the default, computed under every choice (sft: exact match, `accuracy`)
    others = {c.primary for c in spec.metric_choices[1:]} - {task.metric}
    metrics = {
        f"{METRIC_PREFIX}{m.name}": (("metrics", "validation", m.name), m.optuna_direction)
        for m in spec.metrics
        if m.name not in others
    }
    return {**metrics, **OBJECTIVES}


def primary_objective(task: TaskChoice) -> tuple[str, str]:
    """(`val_<chosen metric>`, its direction): what a study of `task` optimises unless told otherwise."""
    return f"{METRIC_PREFIX}{task.metric}", task.optuna_direction


def objective_path(name: str) -> tuple[str, ...]:
    """Where objective `name` is in a run record."""
    if name in OBJECTIVES:
        return OBJECTIVES[name][0]
    return ("metrics", "validation", name.removeprefix(METRIC_PREFIX))


_KEYS = ("sampler", "trials", "objectives", "space", "pruner", "storage", "study_name", "seed")


@dataclass
class SearchConfig:
    """The validated `search:` block; `space` is the merged space per method label."""

    sampler: str = "tpe"
    trials: int = 20
    objectives: list[tuple[str, str]] = field(default_factory=list)  # empty: the task's primary_objective
    space: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    storage: str | None = None  # None: SQLite under results/<exp>/; "journal": a journal file there
    study_name: str | None = None
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["storage"] = redact(self.storage) if self.storage is not None else None  # never a password on disk
        out["objectives"] = [{name: direction} for name, direction in self.objectives]
        return out


# ---------------------------------------------------------------- validation (no optuna)


def parse_search(
    raw: Any,
    origin: str,
    methods: list[MethodEntry],
    train: TrainConfig,
    task: TaskChoice,
) -> SearchConfig:
    if not isinstance(raw, dict):
        fail(origin, "search", f"got {raw!r}, expected a mapping (sampler, trials, objectives, space, pruner, ...)")
    for key in raw:
        if key not in _KEYS:
            fail(origin, f"search.{key}", f"unknown key; allowed: {', '.join(_KEYS)}{closest(str(key), _KEYS)}")
    cfg = SearchConfig()
    cfg.sampler = coerce(raw.get("sampler", cfg.sampler), str, origin, "search.sampler")
    if cfg.sampler not in SAMPLERS:
        fail(origin, "search.sampler", f"got {cfg.sampler!r}, allowed: {', '.join(SAMPLERS)}")
    cfg.trials = coerce(raw.get("trials", cfg.trials), int, origin, "search.trials")
    if cfg.trials < 1:
        fail(origin, "search.trials", f"got {cfg.trials}, must be at least 1")
    cfg.seed = coerce(raw.get("seed", 0), int, origin, "search.seed")
    cfg.study_name = coerce(raw.get("study_name"), str | None, origin, "search.study_name")
    cfg.storage = coerce(raw.get("storage"), str | None, origin, "search.storage")
    if cfg.storage is not None and cfg.storage != "journal" and "://" not in cfg.storage:
        shown = redact(cfg.storage)
        fail(origin, "search.storage", f"got {shown!r}, expected journal or a URL like sqlite:////abs/study.db")
    cfg.objectives = _parse_objectives(raw.get("objectives"), origin, task)
    cfg.pruner = _parse_pruner(raw.get("pruner", "none"), origin, train)
    if cfg.pruner["type"] != "none" and (len(cfg.objectives) > 1 or not cfg.objectives[0][0].startswith("val_")):
        example = primary_objective(task)[0]
        fail(origin, "search.pruner", f"pruning needs a single validation objective (e.g. {example})")

    space_raw = raw.get("space") or {}
    if not isinstance(space_raw, dict):
        fail(origin, "search.space", f"got {space_raw!r}, expected a mapping of method label to its space")
    labels = [m.label for m in methods]
    for label in space_raw:
        if label not in labels:
            fail(origin, f"search.space.{label}", f"no method labelled {label!r}; labels: {', '.join(labels)}")
    for i, entry in enumerate(methods):
        if entry.grid:
            fail(origin, f"methods[{i}].grid", "a search samples hyperparameters itself; remove grid or search")
        user = space_raw.get(entry.label) or {}
        if not isinstance(user, dict):
            fail(origin, f"search.space.{entry.label}", f"got {user!r}, expected a mapping of hyperparameter to range")
        method = get_method_spec(entry.method)
        # a grid is exactly the lists the user wrote (the method's default ranges are not lists, and a
        # default categorical would silently multiply the grid); other samplers start from the defaults
        merged: dict[str, Any] = {} if cfg.sampler == "grid" else dict(method.search_space)
        if "alpha" in user:  # alpha = ratio × r: a searched alpha replaces the default ratio
            merged.pop("alpha_ratio", None)
        merged.update(user)
        hints: dict[str, Any] = {"lr": float, **method.param_types()}
        space = {}
        for key, value in merged.items():
            path = f"search.space.{entry.label}.{key}"
            if key not in hints:
                fail(origin, path, f"not a hyperparameter of {entry.method!r}; allowed: {', '.join(hints)}")
            if value is not None:
                space[key] = _parse_dimension(value, hints[key], key, origin, path)
        if "alpha" in space and "alpha_ratio" in space:
            fail(origin, f"search.space.{entry.label}", "alpha and alpha_ratio both searched; choose one")
        cfg.space[entry.label] = space
    if not any(d["type"] != "fixed" for s in cfg.space.values() for d in s.values()) and len(methods) == 1:
        fail(origin, "search.space", "nothing to search: every hyperparameter is fixed")
    if cfg.sampler == "grid":
        if len(methods) > 1:
            fail(origin, "search.sampler", "grid search takes one method; use a plain grid (methods: grid:) for more")
        dims = next(iter(cfg.space.values()))
        ranges = [k for k, d in dims.items() if d["type"] not in ("categorical", "fixed")]
        if ranges:
            fail(
                origin,
                "search.sampler",
                f"grid search needs every searched hyperparameter as a list of values; {', '.join(ranges)} is a range",
            )
        size = math.prod(len(d["choices"]) for d in dims.values() if d["type"] == "categorical")
        if cfg.trials > size:
            fail(origin, "search.trials", f"got {cfg.trials}, but the grid has only {size} points")
    return cfg


def _parse_objectives(raw: Any, origin: str, task: TaskChoice) -> list[tuple[str, str]]:
    if raw is None:
        return [primary_objective(task)]
    allowed = task_objectives(task)
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        path = f"search.objectives[{i}]"
        if isinstance(item, str):
            name, direction = item, None
        elif isinstance(item, dict) and len(item) == 1:
            ((name, direction),) = item.items()
        else:
            fail(origin, path, f"got {item!r}, expected a name or {{name: maximize|minimize}}")
        if str(name).startswith("test"):
            fail(origin, path, "select on validation: test scores are reported, never optimised")
        if name not in allowed:
            what = (
                f"task {task.name!r} offers no metric {str(name).removeprefix(METRIC_PREFIX)!r}"
                if str(name).startswith(METRIC_PREFIX)
                else f"unknown objective {name!r}"
            )
            fail(origin, path, f"{what}; allowed: {', '.join(allowed)}{closest(str(name), allowed)}")
        direction = direction or allowed[name][1]
        if direction not in ("maximize", "minimize"):
            fail(origin, path, f"got {direction!r}, allowed: maximize, minimize")
        out.append((name, direction))
    if not out or len({n for n, _ in out}) != len(out):
        fail(origin, "search.objectives", "expected one or more distinct objectives")
    return out


def _parse_pruner(raw: Any, origin: str, train: TrainConfig) -> dict[str, Any]:
    if isinstance(raw, str) or raw is None:
        raw = {"type": raw or "none"}
    if not isinstance(raw, dict) or "type" not in raw:
        fail(origin, "search.pruner", f"got {raw!r}, expected one of {', '.join(PRUNERS)} or {{type: ..., options}}")
    kind = raw["type"]
    if kind not in PRUNERS:
        fail(origin, "search.pruner.type", f"got {kind!r}, allowed: {', '.join(PRUNERS)}{closest(str(kind), PRUNERS)}")
    options = {"min_resource": train.eval_every, "max_resource": train.steps} if kind == "hyperband" else {}
    for key, value in raw.items():
        if key == "type":
            continue
        if key not in PRUNERS[kind]:
            allowed = ", ".join(PRUNERS[kind]) or "no options"
            fail(origin, f"search.pruner.{key}", f"unknown option for the {kind} pruner; allowed: {allowed}")
        options[key] = coerce(value, PRUNERS[kind][key], origin, f"search.pruner.{key}")
    if kind == "threshold" and "lower" not in options and "upper" not in options:
        fail(origin, "search.pruner", "the threshold pruner needs lower or upper")
    return {"type": kind, **options}


def _parse_dimension(value: Any, tp: Any, key: str, origin: str, path: str) -> dict[str, Any]:
    """list → categorical; {low, high[, log, step]} → a range; {type: categorical, choices}; scalar → fixed."""
    if isinstance(value, dict) and value.get("type") == "categorical":
        value = value.get("choices")
        if value is None:
            fail(origin, path, "a categorical needs choices: [...]")
    if isinstance(value, list):
        if not value:
            fail(origin, path, "expected a non-empty list of choices")
        if key == "target_modules":
            for i, choice in enumerate(value):
                if not is_target_set(choice):
                    fail(origin, f"{path}[{i}]", f"got {choice!r}; a choice must name a set: {TARGET_SET_HELP}")
            return {"type": "categorical", "choices": list(value)}
        return {"type": "categorical", "choices": [coerce(v, tp, origin, f"{path}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        allowed = ("type", "low", "high", "log", "step")
        for k in value:
            if k not in allowed:
                fail(origin, f"{path}.{k}", f"unknown key; allowed: {', '.join(allowed)}, or a list of choices")
        kind = value.get("type") or ("int" if tp is int else "float")
        if kind not in ("int", "float"):
            fail(origin, f"{path}.type", f"got {kind!r}, allowed: categorical, float, int")
        if kind == "int" and tp is not int:
            fail(origin, f"{path}.type", f"{key} is not an integer hyperparameter")
        num = int if kind == "int" else float
        if "low" not in value or "high" not in value:
            fail(origin, path, "a range needs low and high")
        low, high = coerce(value["low"], num, origin, f"{path}.low"), coerce(value["high"], num, origin, f"{path}.high")
        log = coerce(value.get("log", False), bool, origin, f"{path}.log")
        step = coerce(value["step"], num, origin, f"{path}.step") if value.get("step") is not None else None
        if not low < high:
            fail(origin, path, f"low {low} must be below high {high}")
        if log and (low <= 0 or step is not None):
            fail(origin, path, "a log range needs low > 0 and no step")
        return {"type": kind, "low": low, "high": high, "log": log, "step": step}
    return {"type": "fixed", "value": coerce(value, tp, origin, path)}
