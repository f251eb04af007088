"""The search planner: an Optuna study whose trials are ordinary peftlab runs (ask → run spec, tell ← record).

A trial is asked from the study, turned into a `RunSpec`, and run by the same executor and recipe
as a planned run, so it leaves the same record (plus a `trial` block) and reports treat trials and
runs alike. Only this process (the planner's) opens the study: a run reports its intermediate
validation scores back through the executor, and its `trial` block is filled from its record.
Selection uses validation scores only; test scores are in the records, never shown to the sampler.

Kill-and-resume is exactly-once because the record is the truth and the study catches up to it:
a trial's run_id is fixed by (study, trial number); a RUNNING trial whose worker is dead is told
its outcome from its record if one was written, and otherwise failed and re-queued with the same
params. Optuna itself is imported lazily: validation and `--dry-run` never load it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peftlab.config import computed_config
from peftlab.config.identity import json_digest
from peftlab.config.queue import redact
from peftlab.config.search import objective_path
from peftlab.planners.base import Assignment, RunSpec, run_spec
from peftlab.planners.heartbeat import (
    Heartbeat,
    fail_silent,
    remember_storage,
    silent_trials,
    storage_of,
    take_over,
    trial_id_of,
    worker_alive,
    worker_identity,
)
from peftlab.planners.points import Claim, PointBeat, PointStore, open_points, with_driver
from peftlab.records.record import Trial, TrialPart

_worker_alive = worker_alive  # the old private name

if TYPE_CHECKING:
    import optuna

    from peftlab.config import Experiment
    from peftlab.config.queue import QueueConfig
    from peftlab.records.record import RunRecord

STATE_OF_STATUS = {"ok": "COMPLETE", "pruned": "PRUNED"}  # any other status: FAIL


# ---------------------------------------------------------------- naming and description (no optuna)


def study_name(experiment: Experiment) -> str:
    """Named by what its trials compute, like run ids: change the data or steps and a new study starts.

    `trials`, sampler and pruner are left out, so raising `trials` or changing the sampler continues it.
    """

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
    return f"{experiment.name}-{json_digest(payload)[:8]}"


def storage_url(experiment: Experiment) -> str:
    """The study's storage: `search.storage`, else `queue.storage` (workers joining from many hosts), else SQLite."""
    storage = experiment.search.storage or experiment.queue.storage
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
        f"  study {study_name(experiment)} in {redact(storage_url(experiment))}",
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


def open_storage(url: str, queue: QueueConfig | None = None) -> Any:
    """One storage object per process: connections are never shared across a fork.

    With `queue` (a worker that joined from any host), a PostgreSQL URL gets a short connect
    timeout and pre-pinged connections; liveness is peftlab's own (planners/heartbeat.py, points.py).
    """
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
    url = with_driver(url)
    if "://" in url and queue is not None:
        engine: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            engine["connect_args"] = {"connect_timeout": 10}  # an unreachable host fails in seconds
        return _racing_schema(lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine))
    return _racing_schema(lambda: optuna.storages.get_storage(url))


def _racing_schema(make: Any, attempts: int = 6) -> Any:
    """Open an RDB storage where several hosts may create its tables at the same moment.

    Optuna creates the schema on first open (`metadata.create_all`); on a fresh PostgreSQL
    database, joiners started together race in CREATE TABLE and all but one fail with a
    UniqueViolation on `pg_type` (seen with three `--join` workers). The winner's tables are then
    there, so opening again succeeds.
    """
    import random
    import time

    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            return make()
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))
    raise AssertionError("unreachable")


def close_storage(storage: Any) -> None:
    engine = getattr(storage, "engine", None)  # an RDBStorage (peftlab closes the storages it opened, never a wrapper)
    if engine is not None:
        engine.dispose()


def claim_once(storage: Any, key: str) -> bool:
    """True for exactly one caller per `key` and storage, however many hosts ask at once.

    Creating a study is atomic in every Optuna storage (a unique name), so an empty marker study
    named `key` is a claim that needs no lock of its own.
    """
    import optuna

    try:
        storage.create_new_study(directions=[optuna.study.StudyDirection.MINIMIZE], study_name=key)
    except optuna.exceptions.DuplicatedStudyError:
        return False
    return True


def make_sampler(experiment: Experiment, salt: int = 0) -> Any:
    import optuna

    cfg = experiment.search
    seed = cfg.seed * 1_000_003 + salt  # workers and resumed sessions must not replay the same draws
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == "grid":  # the grid's points are claimed from the point queue (grid_points); never sampled
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
    study = optuna.create_study(
        storage=storage,
        study_name=study_name(experiment),
        directions=[d for _, d in experiment.search.objectives],
        sampler=make_sampler(experiment, salt),
        pruner=make_pruner(experiment),
        load_if_exists=True,
    )
    return remember_storage(study, storage)


def grid_points(experiment: Experiment) -> list[dict[str, Any]]:
    """Every point of a grid search (or a seeded random subset of `trials` of them), in a fixed order.

    Each point is one item of the study's point queue (planners/points.py), claimed atomically by
    one worker at a time and completed by exactly one attempt. Optuna's GridSampler is not used: it
    stops the study from `after_trial` (which raises outside `optimize()`; peftlab asks and tells),
    and its own documentation warns that parallel workers may be handed the same point.
    """
    import itertools
    import random

    cfg = experiment.search
    (space,) = cfg.space.values()
    names = [k for k, d in space.items() if d["type"] == "categorical"]
    points = [
        dict(zip(names, values, strict=True)) for values in itertools.product(*(space[n]["choices"] for n in names))
    ]
    if cfg.trials < len(points):  # a partial grid: a seeded random subset, as GridSampler would pick
        points = random.Random(cfg.seed).sample(points, cfg.trials)
    return points


def point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


def point_distributions(experiment: Experiment, point: dict[str, Any]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    (space,) = experiment.search.space.values()
    return {name: CategoricalDistribution(space[name]["choices"]) for name in point}


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
    entries = {m.label: m for m in experiment.methods}
    label = trial.suggest_categorical("method", list(entries)) if len(entries) > 1 else next(iter(entries))
    entry = entries[label]
    prefix = f"{label}." if len(entries) > 1 else ""  # conditional spaces: names must not collide
    choices = {key: _suggest(trial, prefix + key, dim) for key, dim in experiment.search.space[label].items()}
    return run_spec(experiment, entry, choices, experiment.seeds[0], trial=(study_name(experiment), trial.number))


def objective_values(experiment: Experiment, record: RunRecord) -> list[float] | None:
    values = []
    for name, _ in experiment.search.objectives:
        node = record.at(".".join(objective_path(name)))
        if not isinstance(node, (int, float)) or isinstance(node, bool) or not math.isfinite(node):
            return None
        values.append(float(node))
    return values


def tell_from_record(experiment: Experiment, study: Any, number: int, record: RunRecord) -> str:
    """Finish trial `number` as its record says; the record was written first, so this is the catch-up step."""
    from optuna.trial import TrialState

    storage = storage_of(study)
    trial_id = trial_id_of(study, number)
    current = storage.get_trial(trial_id)
    if current.state.is_finished():
        return current.state.name
    values = objective_values(experiment, record) if record.status == "ok" else None
    state = "COMPLETE" if values is not None else STATE_OF_STATUS.get(record.status, "FAIL")
    state = "FAIL" if state == "COMPLETE" and values is None else state
    storage.set_trial_user_attr(trial_id, "status", record.status)
    if state == "COMPLETE":
        study.tell(number, values, skip_if_finished=True)
    else:
        study.tell(number, state=getattr(TrialState, state), skip_if_finished=True)
    return state


def step_aside(experiment: Experiment, record: RunRecord) -> None:
    """A run whose trial was taken over while it ran (a heartbeat late past the grace period on a
    loaded host): its record is written again, marked, and out of the report; the retry is the trial."""
    from peftlab.records.results import write_record

    assert record.trial is not None
    marked = record.trial.model_copy(update={"state": "FAIL", "taken_over": True})
    write_record(experiment.results_dir(), record.model_copy(update={"trial": marked}))


# ---------------------------------------------------------------- stale trials


def queued_params(study: Any, trial: Any) -> dict[str, Any]:
    """The params a trial was enqueued with (a grid point, a retry), from a Trial or a FrozenTrial."""
    attrs = getattr(trial, "system_attrs", None) if not hasattr(trial, "suggest_float") else None
    if attrs is None:  # a live optuna.Trial: its frozen record in the study
        attrs = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number).system_attrs
    return dict(attrs.get("fixed_params") or {})


def requeue(study: Any, trial: Any) -> None:
    """Fail an unfinished trial and queue its params again; idempotent if cut short and repeated."""
    from optuna.trial import TrialState

    retried = any(t.user_attrs.get("retry_of") == trial.number for t in study.get_trials(deepcopy=False))
    if not retried:  # queued params (a grid point) count even if it died before asking for them
        params = {**queued_params(study, trial), **trial.params}
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
    study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def recover_stale(
    experiment: Experiment, study: Any, startup: bool = False, queue: QueueConfig | None = None
) -> list[str]:
    """RUNNING trials whose worker is dead: finish them from their record, or fail and re-queue them.

    Dead means: a worker on this host whose process is gone, or (with `queue`, workers joining
    from many hosts) one whose heartbeat fell silent for the grace period. At `startup` the caller
    holds the results lock and has no workers yet, so a RUNNING trial that never got its worker
    stamp (killed right after ask) is stale too; later it may be a live one's.
    """
    from optuna.trial import TrialState

    notes = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if (worker is None and not startup) or (worker is not None and _worker_alive(worker)):
            continue
        record = _record_of(experiment, trial)
        if record is not None:
            state = tell_from_record(experiment, study, trial.number, record)
            notes.append(f"trial {trial.number}: its worker died after the run; finished from its record ({state})")
        elif startup:
            requeue(study, trial)
            notes.append(f"trial {trial.number}: its worker died mid-run; failed it and queued its params again")
        elif take_over(study, trial):  # other workers may notice it at the same moment: one retries it
            notes.append(f"trial {trial.number}: its worker died mid-run; failed it and queued its params again")
    if queue is not None:
        notes += _recover_silent(experiment, study, queue)
    return notes


def _record_of(experiment: Experiment, trial: Any) -> RunRecord | None:
    """The record a trial's run left, if a whole one exists."""
    from peftlab.records.results import RecordError, read_record, record_path

    run_id = trial.user_attrs.get("run_id")
    path = record_path(experiment.results_dir(), run_id) if run_id else None
    if path is None or not path.is_file():
        return None
    try:
        return read_record(path)
    except RecordError:  # torn, invalid or of a newer schema: as if there were none
        return None


def _recover_silent(experiment: Experiment, study: Any, queue: QueueConfig) -> list[str]:
    """Trials whose worker (on any host) stopped beating: from their record if one exists, else retried."""
    notes = []
    for trial in silent_trials(study, queue):
        record = _record_of(experiment, trial)
        if record is not None:
            state = tell_from_record(experiment, study, trial.number, record)
            notes.append(
                f"trial {trial.number}: its worker fell silent after the run; finished from its record ({state})"
            )
    for trial in fail_silent(study, queue):
        host = (trial.user_attrs.get("worker") or {}).get("host", "?")
        notes.append(f"trial {trial.number}: its worker on {host} fell silent; failed it and queued its params again")
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


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "no trials yet"


def _test_scores(path: Any) -> dict[str, Any]:
    """The test scores of the record at `path`; {} where there is none or it cannot be read (said in one line)."""
    from peftlab.records.results import RecordError, read_record

    try:
        return (read_record(path).metrics.test or {}) if path.is_file() else {}
    except RecordError as err:  # the summary goes on without this trial's test score
        print(f"peftlab: {err}", file=sys.stderr)
        return {}


def summarise(experiment: Experiment, url: str) -> int:
    """Best trial (or Pareto front) by validation, with its test score from the record; search.json."""
    from peftlab.records.results import record_path, write_json_atomic

    storage = open_storage(url)
    study = load_study(experiment, storage)
    counts = _counts(study)
    print(f"peftlab: study {study.study_name}: {_fmt_counts(counts)}")
    best = []
    chosen = experiment.task_choice  # what the test column shows
    primary, short = chosen.metric, chosen.spec.metric(chosen.metric).short or chosen.metric
    if counts.get("COMPLETE"):
        for trial in study.best_trials:
            path = record_path(experiment.results_dir(), trial.user_attrs.get("run_id", ""))
            test = _test_scores(path)
            best.append(
                {
                    "number": trial.number,
                    "values": dict(zip([n for n, _ in experiment.search.objectives], trial.values, strict=True)),
                    "params": trial.params,
                    "run_id": trial.user_attrs.get("run_id"),
                    f"test_{primary}": test.get(primary),
                }
            )
            shown = ", ".join(f"{k}={v:.4g}" for k, v in best[-1]["values"].items())
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
            acc = f"{test[primary]:.3f}" if test.get(primary) is not None else "—"
            print(f"peftlab: best trial {trial.number}: {shown} (test {short} {acc}) | {params}")
    write_json_atomic(
        experiment.results_dir() / "search.json",
        {
            "study": study.study_name,
            "storage": redact(url),  # a database password never reaches a file
            "counts": counts,
            "best": best,
            "search": experiment.search.as_dict(),
        },
    )
    close_storage(storage)
    done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    return 0 if done >= experiment.search.trials else 1


def trial_block(experiment: Experiment, static: dict[str, Any], record: RunRecord) -> Trial:
    """The record's `trial` block: the study's facts known at ask time, and the outcome read off the record.

    Everything the report needs about the search (which study, objectives and their directions) is
    here, so reports read records only and never open the study.
    """
    values = objective_values(experiment, record)
    state = STATE_OF_STATUS.get(record.status, "FAIL")
    if record.status == "ok" and values is None:
        state = "FAIL"
    names = [n for n, _ in experiment.search.objectives]
    return Trial(
        **static,
        state=state,
        # objective name -> value and direction: the report draws the Pareto front from these
        values=dict(zip(names, values, strict=True)) if values is not None else None,
        directions=dict(experiment.search.objectives),
    )


def _hand_back(study: Any, trial: Any) -> None:
    """Another worker asked first and the target is met: fail this trial, its grid point queued again."""
    from optuna.trial import TrialState

    fixed = queued_params(study, trial)
    if fixed:
        study.enqueue_trial(fixed, user_attrs={k: v for k, v in trial.user_attrs.items() if k != "worker"})
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def _ask(study: Any) -> Any:
    """`study.ask()`; peftlab runs the heartbeat itself (planners/heartbeat.py), so Optuna's warning
    that heartbeats are meant for `optimize()` says nothing here."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


class TrialReporter:
    """A trial's intermediate validation scores → the study → should it stop? Runs in the planner's process."""

    def __init__(self, experiment: Experiment, trial: Any) -> None:
        self.experiment, self.trial = experiment, trial
        self.metric = experiment.search.objectives[0][0].removeprefix("val_")
        self.prune = experiment.search.pruner["type"] != "none"

    def __call__(self, step: int, scores: dict[str, float]) -> bool:
        if len(self.experiment.search.objectives) > 1 or self.metric not in scores:
            return False  # optuna prunes single-objective studies only
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            self.trial.report(float(scores[self.metric]), step)
        except UpdateFinishedTrialError:  # taken over by another worker (a late heartbeat): its retry runs
            return True
        return self.prune and step < self.experiment.train.steps and self.trial.should_prune()


class OptunaSearch:
    """The search as a planner (see peftlab/planners/base.py): one instance per worker process.

    `start` (in the experiment process, under the results lock, before any worker exists)
    recovers what a killed session left and queues a grid; each worker's `next` asks a trial
    until the study holds `trials` finished ones; `tell` finishes the trial from its record.
    With `joining` (`--join`: workers on many hosts, no results lock), each trial in flight
    beats (planners/heartbeat.py) and a trial whose worker fell silent is retried.
    """

    def __init__(self, experiment: Experiment, worker: int = 0, joining: bool = False) -> None:
        self.experiment, self.worker, self.joining = experiment, worker, joining
        self.url = storage_url(experiment)
        self.queue = experiment.queue if joining else None
        self.study: Any = None
        self.storage: Any = None  # the storage this worker opened (the study's)
        self.grid = experiment.search.sampler == "grid"
        self.points: PointStore | None = None  # a grid search's point queue (planners/points.py)
        self._claims: dict[int, Claim] = {}  # trial number -> its point's claim (grid)
        self.code = 0
        self._trials: dict[str, Any] = {}  # run_id -> the asked trial
        self._beats: dict[str, Heartbeat | PointBeat] = {}  # run_id -> its heartbeat (joining only)

    def describe(self) -> list[str]:
        exp = self.experiment
        return [
            f"experiment {exp.name}: search → {exp.results_dir()}",
            f"model {exp.model} | data {exp.data.source} | {exp.train.steps} steps × "
            f"batch {exp.train.batch_size} × accum {exp.train.grad_accum}",
            *describe(exp),
        ]

    def start(self) -> list[str]:
        storage = open_storage(self.url, self.queue)
        study = load_study(self.experiment, storage)
        if self.grid:  # every point its own queued item: adding is idempotent, joiners starting at once add it once
            points = self._points()
            added = points.add(point_key(p) for p in grid_points(self.experiment))
            notes = [f"grid: {added} points queued, {points.pending()} not done"]
            points.close()
            self.points = None
        else:
            notes = recover_stale(self.experiment, study, startup=not self.joining, queue=self.queue)
        counts = _fmt_counts(_counts(study))
        notes.append(f"study {study.study_name} ({redact(self.url)}): {counts}; target {self.experiment.search.trials}")
        close_storage(storage)  # connections are never shared across the workers' fork
        return notes

    def _points(self) -> PointStore:
        if self.points is None:
            grace = self.experiment.queue.grace_s
            self.points = open_points(self.url, f"{study_name(self.experiment)}:grid", grace)
        return self.points

    def for_worker(self, index: int) -> OptunaSearch:
        return OptunaSearch(self.experiment, index, self.joining)

    def _open(self) -> Any:
        if self.study is None:
            storage = open_storage(self.url, self.queue)
            salt = self.worker * 7919 + len(load_study(self.experiment, storage).trials)
            if self.joining:  # workers on other hosts have the same index: their draws must differ too
                salt += int(json_digest(worker_identity())[:6], 16)
            self.storage, self.study = storage, load_study(self.experiment, storage, salt=salt)
        return self.study

    def close(self) -> None:
        """Release the study's and the point queue's connections (before a fork, or when done)."""
        if self.storage is not None:
            close_storage(self.storage)
        if self.points is not None:
            self.points.close()
        self.storage = self.study = self.points = None

    def _next_point(self) -> Assignment | None:
        """Claim a grid point (taking over a dead or silent worker's in the same atomic step) and open its trial."""
        from optuna.trial import Trial, TrialState, create_trial

        study, points = self._open(), self._points()
        while True:
            claim = points.claim(worker_identity())
            if claim is None:
                if not points.pending():
                    return None
                time.sleep(min(1.0, self.experiment.queue.heartbeat_interval / 2))
                continue
            if claim.previous is not None and self._settle_previous(study, claim):
                continue
            point = json.loads(claim.key)
            attrs = {"worker": worker_identity(), "point": claim.key, "attempt": claim.attempt}
            template = create_trial(
                state=TrialState.RUNNING,
                params=point,
                distributions=point_distributions(self.experiment, point),
                user_attrs=attrs,
            )
            study.add_trial(template)
            (number,) = [
                t.number
                for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.user_attrs.get("point") == claim.key and t.user_attrs.get("attempt") == claim.attempt
            ]
            if not points.set_ref(claim, number):  # taken over already (a stall right here): fail it, go on
                study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
                continue
            trial = Trial(study, trial_id_of(study, number))
            beat = PointBeat(points, claim, self.experiment.queue.heartbeat_interval)
            self._claims[number] = claim
            total = len(points.states())
            return self._assign(trial, (total - points.pending() + 1, total), beat)

    def _settle_previous(self, study: Any, claim: Claim) -> bool:
        """Earlier attempts' unfinished trials of the claimed point: one whose run wrote its record finishes
        the point from it (True: nothing to run); the others are failed (this claim is their retry)."""
        from optuna.trial import TrialState

        earlier = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("point") == claim.key and t.user_attrs.get("attempt", 0) < claim.attempt
        ]
        for trial in earlier:
            record = _record_of(self.experiment, trial)
            if record is not None and self._points().complete(claim, record.status):
                tell_from_record(self.experiment, study, trial.number, record)
                print(f"peftlab: trial {trial.number}: its worker died after the run; finished from its record")
                for other in earlier:
                    study.tell(other.number, state=TrialState.FAIL, skip_if_finished=True)
                return True
        for trial in earlier:
            host = (trial.user_attrs.get("worker") or {}).get("host", "?")
            print(f"peftlab: trial {trial.number}: its worker on {host} died or fell silent; its point is retried")
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        return False

    def next(self) -> Assignment | None:
        from optuna.trial import TrialState

        if self.grid:
            return self._next_point()
        study, target = self._open(), self.experiment.search.trials
        while True:
            counts = _counts(study)
            done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
            if done >= target:
                return None
            if _failures(study) >= target:
                tag = f"[w{self.worker}] " if self.worker else ""
                print(f"peftlab: {tag}stopping: {target} trials have failed; see their records", file=sys.stderr)
                self.code = 1
                return None
            if done + counts.get("RUNNING", 0) >= target:  # the rest are in flight elsewhere
                recover_stale(self.experiment, study, queue=self.queue)
                time.sleep(0.5)
                continue
            trial = _ask(study)
            beat = Heartbeat(study, trial.number, self.queue).start() if self.queue is not None else None
            trial.set_user_attr("worker", worker_identity())
            ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
            busy = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in ahead)
            if busy >= target:  # another worker asked first: hand this one back
                if beat is not None:
                    beat.stop()
                _hand_back(study, trial)
                continue
            return self._assign(trial, (busy + 1, target), beat)  # failed trials (killed, handed back) do not count

    def _assign(self, trial: Any, position: tuple[int, int], beat: Heartbeat | PointBeat | None = None) -> Assignment:
        try:
            spec = trial_spec(self.experiment, trial)
            trial.set_user_attr("run_id", spec.run_id)
            static = {"number": trial.number, "study": self.study.study_name, "params": dict(trial.params)}
        except KeyboardInterrupt:
            claim = self._claims.pop(trial.number, None)
            if claim is not None:  # a grid point: its trial fails, the point goes back at once
                from optuna.trial import TrialState

                self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                self._points().release(claim)
            else:
                requeue(self.study, trial)
            raise
        self._trials[spec.run_id] = trial
        if beat is not None:
            self._beats[spec.run_id] = beat

        def on_record(record: RunRecord, experiment: Experiment = self.experiment) -> TrialPart:
            return TrialPart(trial=trial_block(experiment, static, record))

        return Assignment(spec, position, report=TrialReporter(self.experiment, trial), on_record=on_record)

    def tell(self, assignment: Assignment, record: RunRecord) -> str:
        from optuna.trial import TrialState

        self._stop_beat(assignment.spec.run_id)
        trial = self._trials.pop(assignment.spec.run_id)
        claim = self._claims.pop(trial.number, None)
        if claim is not None and not self._points().complete(claim, record.status):
            step_aside(self.experiment, record)  # exactly one attempt completes a point: the other one's
            self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            return f"  → trial {trial.number} was taken over meanwhile (its heartbeat came late): its retry counts"
        state = tell_from_record(self.experiment, self.study, trial.number, record)
        if state == "FAIL" and record.trial is not None and record.trial.state not in (None, "FAIL"):
            step_aside(self.experiment, record)
            return f"  → trial {trial.number} was taken over meanwhile (its heartbeat came late): its retry counts"
        return f"  → trial {trial.number} {state}"

    def abandon(self, assignment: Assignment) -> None:
        """Ctrl-C: the trial is not lost, the next session runs it (or its grid point) first."""
        from optuna.trial import TrialState

        self._stop_beat(assignment.spec.run_id)
        trial = self._trials.pop(assignment.spec.run_id, None)
        claim = self._claims.pop(trial.number, None) if trial is not None else None
        if claim is not None:
            self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            self._points().release(claim)
        elif trial is not None:
            requeue(self.study, trial)

    def _stop_beat(self, run_id: str) -> None:
        beat = self._beats.pop(run_id, None)
        if beat is not None:
            beat.stop()

    def finish(self) -> int:
        self.close()
        return max(self.code, summarise(self.experiment, self.url))

    def run_ids(self) -> set[str]:
        """This study's trials, read off the records' `trial` blocks (the report never opens the study)."""
        from peftlab.records.results import load_records

        name = study_name(self.experiment)
        records = load_records([self.experiment.results_dir()])
        return {r.run_id for r in records if r.trial is not None and r.trial.study == name and not r.trial.taken_over}
