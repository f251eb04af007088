"""Hyperparameter search: an Optuna study whose trials are ordinary peftlab runs.

A trial is asked from the study, turned into a `RunSpec`, and run by the same runner as a plain
run, so it leaves the same record (plus a `trial` block) and reports treat trials and runs alike.
Selection uses validation scores only; test scores are in the records, never shown to the sampler.

Kill-and-resume is exactly-once because the record is the truth and the study catches up to it:
a trial's run_id is fixed by (study, trial number); a RUNNING trial whose worker is dead is told
its outcome from its record if one was written, and otherwise failed and re-queued with the same
params. Optuna itself is imported lazily: validation and `--dry-run` never load it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

from peftlab.schema import closest, coerce, fail

if TYPE_CHECKING:
    import optuna

    from peftlab.config import Experiment, MethodEntry, TrainConfig
    from peftlab.plan import RunSpec
    from peftlab.runner import Workspace

# objective name -> (path in a run record, natural direction)
OBJECTIVES: dict[str, tuple[tuple[str, ...], str]] = {
    "val_accuracy": (("metrics", "validation", "accuracy"), "maximize"),
    "val_f1_macro": (("metrics", "validation", "f1_macro"), "maximize"),
    "val_loss": (("metrics", "validation", "loss"), "minimize"),
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
STATE_OF_STATUS = {"ok": "COMPLETE", "pruned": "PRUNED"}  # any other status: FAIL
_KEYS = ("sampler", "trials", "objectives", "space", "pruner", "storage", "study_name", "seed")


@dataclass
class SearchConfig:
    """The validated `search:` block; `space` is the merged space per method label."""

    sampler: str = "tpe"
    trials: int = 20
    objectives: list[tuple[str, str]] = field(default_factory=lambda: [("val_accuracy", "maximize")])
    space: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    storage: str | None = None  # None: SQLite under results/<exp>/; "journal": a journal file there
    study_name: str | None = None
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["objectives"] = [{name: direction} for name, direction in self.objectives]
        return out


# ---------------------------------------------------------------- validation (no optuna)


def parse_search(raw: Any, origin: str, methods: list[MethodEntry], train: TrainConfig) -> SearchConfig:
    from peftlab.methods import get_method

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
        fail(origin, "search.storage", f"got {cfg.storage!r}, expected journal or a URL like sqlite:////abs/study.db")
    cfg.objectives = _parse_objectives(raw.get("objectives"), origin)
    cfg.pruner = _parse_pruner(raw.get("pruner", "none"), origin, train)
    if cfg.pruner["type"] != "none" and (len(cfg.objectives) > 1 or not cfg.objectives[0][0].startswith("val_")):
        fail(origin, "search.pruner", "pruning needs a single validation objective (e.g. val_accuracy)")

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
        method = get_method(entry.method)
        # a grid is exactly the lists the user wrote (the method's default ranges are not lists, and a
        # default categorical would silently multiply the grid); other samplers start from the defaults
        merged: dict[str, Any] = {} if cfg.sampler == "grid" else dict(method.search_space)
        if "alpha" in user:  # alpha = ratio × r: a searched alpha replaces the default ratio
            merged.pop("alpha_ratio", None)
        merged.update(user)
        hints: dict[str, Any] = {"lr": float, **get_type_hints(method.params)}
        if "alpha" in hints and "r" in hints:
            hints["alpha_ratio"] = float
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


def _parse_objectives(raw: Any, origin: str) -> list[tuple[str, str]]:
    if raw is None:
        return [("val_accuracy", "maximize")]
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
        if name not in OBJECTIVES:
            fail(
                origin, path, f"unknown objective {name!r}; allowed: {', '.join(OBJECTIVES)}{closest(name, OBJECTIVES)}"
            )
        direction = direction or OBJECTIVES[name][1]
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
    from peftlab.methods.targets import TARGET_SET_HELP, is_target_set

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


# ---------------------------------------------------------------- naming and description (no optuna)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def study_name(experiment: Experiment) -> str:
    """Named by what its trials compute, like run ids: change the data or steps and a new study starts.

    `trials`, sampler and pruner are left out, so raising `trials` or changing the sampler continues it.
    """
    from peftlab.plan import computed_config

    cfg = experiment.search
    if cfg.study_name:
        return cfg.study_name
    payload = {
        **computed_config(experiment),
        "methods": [m.as_dict() for m in experiment.methods],
        "space": cfg.space,
        "objectives": cfg.objectives,
        "seed": experiment.seeds[0],
    }
    return f"{experiment.name}-{_hash(payload)[:8]}"


def storage_url(experiment: Experiment) -> str:
    storage = experiment.search.storage
    if storage is None:
        return f"sqlite:///{experiment.results_dir() / 'study.db'}"  # + an absolute path: four slashes
    if storage == "journal":
        return f"journal:{experiment.results_dir() / 'study.journal'}"
    return storage


def describe(experiment: Experiment) -> list[str]:
    cfg = experiment.search
    objectives = ", ".join(f"{n} ({d})" for n, d in cfg.objectives)
    pruner = ", ".join(f"{k}={v}" for k, v in cfg.pruner.items() if k != "type")
    lines = [
        f"search: {cfg.sampler} sampler, {cfg.trials} trials, objectives {objectives}"
        + (" → Pareto front" if len(cfg.objectives) > 1 else ""),
        f"  pruner {cfg.pruner['type']}{f' ({pruner})' if pruner else ''} on validation every "
        f"{experiment.train.eval_every} steps | training seed {experiment.seeds[0]}",
        f"  study {study_name(experiment)} in {storage_url(experiment)}",
    ]
    for entry in experiment.methods:
        lines.append(f"  {entry.label} ({entry.method}):")
        for key, dim in cfg.space[entry.label].items():
            lines.append(f"    {key:<16} {_describe_dimension(dim)}")
    return lines


def _describe_dimension(dim: dict[str, Any]) -> str:
    if dim["type"] == "categorical":
        return "one of " + ", ".join(map(str, dim["choices"]))
    if dim["type"] == "fixed":
        return f"fixed {dim['value']}"
    scale = "log-uniform" if dim["log"] else "uniform"
    return f"{dim['type']} {scale} [{dim['low']:g}, {dim['high']:g}]" + (f" step {dim['step']}" if dim["step"] else "")


# ---------------------------------------------------------------- optuna: storage, study, trials


def open_storage(url: str) -> Any:
    """One storage object per process: connections are never shared across a fork."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # several workers write to one file: wait for the lock rather than fail at once
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.get_storage(url)


def close_storage(storage: Any) -> None:
    engine = getattr(getattr(storage, "_backend", storage), "engine", None)
    if engine is not None:
        engine.dispose()


def make_sampler(experiment: Experiment, salt: int = 0) -> Any:
    import optuna

    cfg = experiment.search
    seed = cfg.seed * 1_000_003 + salt  # workers and resumed sessions must not replay the same draws
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == "grid":  # the grid itself is enqueued (enqueue_grid); this only backs it up
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(2, min(10, cfg.trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def make_pruner(experiment: Experiment) -> Any:
    import optuna

    options = dict(experiment.search.pruner)
    kind = options.pop("type")
    if kind == "median":
        return optuna.pruners.MedianPruner(**options)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(**options)
    if kind == "threshold":
        return optuna.pruners.ThresholdPruner(**options)
    return optuna.pruners.NopPruner()


def load_study(experiment: Experiment, storage: Any, salt: int = 0) -> optuna.Study:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=storage,
        study_name=study_name(experiment),
        directions=[d for _, d in experiment.search.objectives],
        sampler=make_sampler(experiment, salt),
        pruner=make_pruner(experiment),
        load_if_exists=True,
    )


def enqueue_grid(experiment: Experiment, study: Any) -> int:
    """Queue every grid point once, as fixed params, when a grid study is new; returns how many.

    Optuna's GridSampler stops the study from `after_trial`, which raises outside `optimize()`
    (peftlab asks and tells), and a grid point it handed to a trial that was then failed for
    bookkeeping would count as visited and be skipped. Enqueued fixed params have neither problem:
    the re-queue of a killed trial keeps them, so each point runs exactly once.
    """
    import itertools
    import random

    cfg = experiment.search
    if cfg.sampler != "grid" or study.get_trials(deepcopy=False) or study.user_attrs.get("grid_enqueued"):
        return 0
    (space,) = cfg.space.values()
    names = [k for k, d in space.items() if d["type"] == "categorical"]
    points = [
        dict(zip(names, values, strict=True)) for values in itertools.product(*(space[n]["choices"] for n in names))
    ]
    if cfg.trials < len(points):  # a partial grid: a seeded random subset, as GridSampler would pick
        points = random.Random(cfg.seed).sample(points, cfg.trials)
    study.set_user_attr("grid_enqueued", len(points))
    for point in points:
        study.enqueue_trial(point)
    return len(points)


def _suggest(trial: Any, name: str, dim: dict[str, Any]) -> Any:
    kind = dim["type"]
    if kind == "fixed":
        return dim["value"]
    if kind == "categorical":
        return trial.suggest_categorical(name, dim["choices"])
    if kind == "int":
        return trial.suggest_int(name, dim["low"], dim["high"], log=dim["log"], step=dim["step"] or 1)
    return trial.suggest_float(name, dim["low"], dim["high"], log=dim["log"], step=dim["step"])


def trial_spec(experiment: Experiment, trial: Any) -> RunSpec:
    """Ask the trial for its hyperparameters and name the run after (study, trial number)."""
    from peftlab.plan import RunSpec, apply_choices, computed_config

    entries = {m.label: m for m in experiment.methods}
    label = trial.suggest_categorical("method", list(entries)) if len(entries) > 1 else next(iter(entries))
    entry = entries[label]
    prefix = f"{label}." if len(entries) > 1 else ""  # conditional spaces: names must not collide
    choices = {key: _suggest(trial, prefix + key, dim) for key, dim in experiment.search.space[label].items()}
    lr, params = apply_choices(entry, choices)
    seed = experiment.seeds[0]
    config_hash = _hash({**computed_config(experiment), "method": entry.method, "lr": lr, "params": params})
    name = study_name(experiment)
    run_hash = _hash({"study": name, "trial": trial.number, "config": config_hash})
    return RunSpec(
        experiment=experiment.name,
        label=f"{label}[t{trial.number}]",
        method=entry.method,
        seed=seed,
        lr=lr,
        params=params,
        config_hash=config_hash[:16],
        run_id=f"{label}-t{trial.number:04d}-{run_hash[:8]}",
    )


def objective_values(experiment: Experiment, record: dict[str, Any]) -> list[float] | None:
    values = []
    for name, _ in experiment.search.objectives:
        node: Any = record
        for part in OBJECTIVES[name][0]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, (int, float)) or isinstance(node, bool) or not math.isfinite(node):
            return None
        values.append(float(node))
    return values


def tell_from_record(experiment: Experiment, study: Any, number: int, record: dict[str, Any]) -> str:
    """Finish trial `number` as its record says; the record was written first, so this is the catch-up step."""
    from optuna.trial import TrialState

    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    current = storage.get_trial(trial_id)
    if current.state.is_finished():
        return current.state.name
    values = objective_values(experiment, record) if record["status"] == "ok" else None
    state = "COMPLETE" if values is not None else STATE_OF_STATUS.get(record["status"], "FAIL")
    state = "FAIL" if state == "COMPLETE" and values is None else state
    storage.set_trial_user_attr(trial_id, "status", record["status"])
    if state == "COMPLETE":
        study.tell(number, values, skip_if_finished=True)
    else:
        study.tell(number, state=getattr(TrialState, state), skip_if_finished=True)
    return state


class Reporter:
    """The loop's `report` callback: intermediate validation scores → the trial → should it stop?

    Called in the forked run process, so it opens its own storage connection on first use.
    """

    def __init__(self, experiment: Experiment, url: str, trial_id: int):
        self.experiment, self.url, self.trial_id = experiment, url, trial_id
        self.metric = experiment.search.objectives[0][0].removeprefix("val_")
        self.prune = experiment.search.pruner["type"] != "none"
        self.trial: Any = None

    def __call__(self, step: int, scores: dict[str, float]) -> bool:
        if len(self.experiment.search.objectives) > 1 or self.metric not in scores:
            return False  # optuna prunes single-objective studies only
        import optuna

        if self.trial is None:
            study = load_study(self.experiment, open_storage(self.url))
            self.trial = optuna.trial.Trial(study, self.trial_id)
        self.trial.report(float(scores[self.metric]), step)
        return self.prune and step < self.experiment.train.steps and self.trial.should_prune()


# ---------------------------------------------------------------- stale trials


def _process_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def _worker_alive(worker: dict[str, Any] | None) -> bool:
    """Alive unless provably dead: another host's worker cannot be checked (use RDB heartbeats there)."""
    if not worker or worker.get("host") != socket.gethostname():
        return worker is not None
    pid = int(worker["pid"])
    if worker.get("start") is not None and Path("/proc").is_dir():
        return _process_start(pid) == worker["start"]  # the same pid, not a reused one
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def queued_params(study: Any, trial: Any) -> dict[str, Any]:
    """The params a trial was enqueued with (a grid point, a retry), from a Trial or a FrozenTrial."""
    attrs = getattr(trial, "system_attrs", None)
    if attrs is None:  # optuna.Trial keeps them in storage only
        attrs = study._storage.get_trial_system_attrs(trial._trial_id)
    return dict(attrs.get("fixed_params") or {})


def requeue(study: Any, trial: Any) -> None:
    """Fail an unfinished trial and queue its params again; idempotent if cut short and repeated."""
    from optuna.trial import TrialState

    retried = any(t.user_attrs.get("retry_of") == trial.number for t in study.get_trials(deepcopy=False))
    if not retried:  # queued params (a grid point) count even if it died before asking for them
        params = {**queued_params(study, trial), **trial.params}
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
    study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def recover_stale(experiment: Experiment, study: Any, startup: bool = False) -> list[str]:
    """RUNNING trials whose worker is dead: finish them from their record, or fail and re-queue them.

    At `startup` the caller holds the results lock and has no workers yet, so a RUNNING trial that
    never got its worker stamp (killed right after ask) is stale too; later it may be a live one's.
    """
    from optuna.trial import TrialState

    from peftlab.results import read_record, record_path

    notes = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if (worker is None and not startup) or (worker is not None and _worker_alive(worker)):
            continue
        run_id = trial.user_attrs.get("run_id")
        path = record_path(experiment.results_dir(), run_id) if run_id else None
        record = None
        if path is not None and path.is_file():
            try:
                record = read_record(path)
            except (OSError, json.JSONDecodeError):
                record = None
        if record is not None:
            state = tell_from_record(experiment, study, trial.number, record)
            notes.append(f"trial {trial.number}: its worker died after the run; finished from its record ({state})")
        else:
            requeue(study, trial)
            notes.append(f"trial {trial.number}: its worker died mid-run; failed it and queued its params again")
    return notes


# ---------------------------------------------------------------- workers


def _counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _failures(study: Any) -> int:
    """Trials that ran and failed (a record says so), not the ones failed for bookkeeping."""
    return sum(
        1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") in ("failed", "oom", "diverged")
    )


def work(ws: Workspace, url: str, worker: int, isolate: bool, quiet: bool) -> int:
    """One worker: ask, run, tell, until the study holds `trials` finished (complete or pruned) trials."""
    from optuna.trial import TrialState

    from peftlab.runner import execute_isolated, execute_run, summary_line

    experiment = ws.experiment
    target = experiment.search.trials
    storage = open_storage(url)
    study = load_study(experiment, storage, salt=worker * 7919 + len(load_study(experiment, storage).trials))
    tag = f"[w{worker}] " if worker else ""
    while True:
        counts = _counts(study)
        done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
        if done >= target:
            return 0
        if _failures(study) >= target:
            print(f"peftlab: {tag}stopping: {target} trials have failed; see their records", file=sys.stderr)
            return 1
        if done + counts.get("RUNNING", 0) >= target:  # the rest are in flight elsewhere
            recover_stale(experiment, study)
            time.sleep(0.5)
            continue
        trial = study.ask()
        trial.set_user_attr("worker", worker_identity())
        ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        busy = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in ahead)
        if busy >= target:  # another worker asked first: hand this one back
            fixed = queued_params(study, trial)
            if fixed:
                study.enqueue_trial(fixed, user_attrs={k: v for k, v in trial.user_attrs.items() if k != "worker"})
            study.tell(trial, state=TrialState.FAIL)
            continue
        try:
            spec = trial_spec(experiment, trial)
            trial.set_user_attr("run_id", spec.run_id)
            name = study.study_name

            def annotate(record: dict[str, Any], trial: Any = trial, name: str = name) -> None:
                state = STATE_OF_STATUS.get(record["status"], "FAIL")
                if record["status"] == "ok" and objective_values(experiment, record) is None:
                    state = "FAIL"
                values = objective_values(experiment, record)
                record["trial"] = {
                    "number": trial.number,
                    "study": name,
                    "params": trial.params,
                    "state": state,
                    # objective name -> value and direction: the report draws the Pareto front from these
                    "values": dict(zip([n for n, _ in experiment.search.objectives], values, strict=True))
                    if values is not None
                    else None,
                    "directions": dict(experiment.search.objectives),
                }

            reporter = Reporter(experiment, url, trial._trial_id)
            position = (busy + 1, target)  # failed trials (killed, handed back) do not count towards the target
            run = execute_isolated if isolate else execute_run
            record = run(ws, spec, position, quiet, report=reporter, on_record=annotate)
        except KeyboardInterrupt:
            requeue(study, trial)  # Ctrl-C: the trial is not lost, the next session runs it first
            raise
        state = tell_from_record(experiment, study, trial.number, record)
        print(f"{tag}{summary_line(record, position)}  → trial {trial.number} {state}", flush=True)


def run_search(ws: Workspace, workers: int, isolate: bool, quiet: bool) -> int:
    """Recover what a killed session left, then run `workers` processes on the one study."""
    from peftlab import runner
    from peftlab.runner import die_with_parent

    experiment = ws.experiment
    url = storage_url(experiment)
    storage = open_storage(url)
    study = load_study(experiment, storage)
    enqueue_grid(experiment, study)
    for note in recover_stale(experiment, study, startup=True):
        print(f"peftlab: {note}", flush=True)
    counts = _counts(study)
    print(f"peftlab: study {study.study_name} ({url}): {_fmt_counts(counts)}; target {experiment.search.trials}")
    close_storage(storage)
    del study, storage
    if workers <= 1:
        code = work(ws, url, 0, isolate, quiet)
    else:
        sys.stdout.flush()
        sys.stderr.flush()
        parent, pids = os.getpid(), []
        for index in range(1, workers + 1):
            pid = os.fork()
            if pid == 0:
                status = 1
                try:
                    die_with_parent(parent)
                    runner.SHARED_CORES_THREADS = max(1, (os.cpu_count() or 1) // workers)
                    status = work(ws, url, index, isolate, quiet)
                except KeyboardInterrupt:
                    status = 130
                except BaseException:
                    import traceback

                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(status)
            pids.append(pid)
        codes = []
        try:
            for pid in pids:
                codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        except KeyboardInterrupt:
            for pid in pids[len(codes) :]:
                os.waitpid(pid, 0)  # let each worker re-queue its trial before we exit
            raise
        if 130 in codes:
            raise KeyboardInterrupt
        code = max(codes)
    return max(code, summarise(experiment, url))


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "no trials yet"


def summarise(experiment: Experiment, url: str) -> int:
    """Best trial (or Pareto front) by validation, with its test score from the record; search.json."""
    from peftlab.results import read_record, record_path, write_json_atomic

    storage = open_storage(url)
    study = load_study(experiment, storage)
    counts = _counts(study)
    print(f"peftlab: study {study.study_name}: {_fmt_counts(counts)}")
    best = []
    if counts.get("COMPLETE"):
        for trial in study.best_trials:
            path = record_path(experiment.results_dir(), trial.user_attrs.get("run_id", ""))
            record = read_record(path) if path.is_file() else {}
            test = (record.get("metrics") or {}).get("test") or {}
            best.append(
                {
                    "number": trial.number,
                    "values": dict(zip([n for n, _ in experiment.search.objectives], trial.values, strict=True)),
                    "params": trial.params,
                    "run_id": trial.user_attrs.get("run_id"),
                    "test_accuracy": test.get("accuracy"),
                }
            )
            shown = ", ".join(f"{k}={v:.4g}" for k, v in best[-1]["values"].items())
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
            acc = f"{test['accuracy']:.3f}" if test.get("accuracy") is not None else "—"
            print(f"peftlab: best trial {trial.number}: {shown} (test acc {acc}) | {params}")
    write_json_atomic(
        experiment.results_dir() / "search.json",
        {
            "study": study.study_name,
            "storage": url,
            "counts": counts,
            "best": best,
            "search": experiment.search.as_dict(),
        },
    )
    close_storage(storage)
    done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    return 0 if done >= experiment.search.trials else 1


def trial_run_ids(experiment: Experiment) -> set[str]:
    storage = open_storage(storage_url(experiment))
    study = load_study(experiment, storage)
    ids = {t.user_attrs["run_id"] for t in study.get_trials(deepcopy=False) if "run_id" in t.user_attrs}
    close_storage(storage)
    return ids
