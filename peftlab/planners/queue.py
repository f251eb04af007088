"""The grid plan as a shared queue: workers on any host pop planned runs from one Optuna study.

`python -m peftlab.run EXP.yaml --join` on many hosts makes every planned run exactly once. The
queue is an Optuna study in the experiment's `queue.storage` (PostgreSQL for many hosts, a
journal file on a shared filesystem otherwise); each planned run is one trial, enqueued WAITING
with its `run_id` as a user attribute, and a worker pops one by moving it to RUNNING, which
Optuna's storages do atomically (the same step as `ask()` on an enqueued trial, without
`ask()`'s habit of inventing a fresh trial when none waits).

Exactly once, without a lock:
- Joiners starting at once may enqueue the same run twice. Of the unfailed trials of one run id
  the lowest-numbered one is the run's; a worker that pops any other drops it (FAIL, `duplicate`).
- A popped run whose finished record is already in the shared results folder is told from it,
  not run again (its worker died between the record and the tell).
- A worker that dies mid-run stops beating; after the grace period another worker fails its trial
  (atomically: once) and queues a copy with the same run id (planners/heartbeat.py).
Records are written atomically to the shared `output_dir`, as always; the queue only hands out runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from peftlab.config import computed_config
from peftlab.config.identity import json_digest
from peftlab.config.queue import redact
from peftlab.planners.base import Assignment, RunSpec, fmt_duration
from peftlab.planners.grid import make_plan
from peftlab.planners.heartbeat import Heartbeat, dead_here, fail_silent, silent_trials, take_over, worker_identity
from peftlab.planners.optuna_search import close_storage, open_storage

if TYPE_CHECKING:
    from peftlab.config import Experiment
    from peftlab.records.record import RunRecord


def queue_url(experiment: Experiment) -> str:
    """`queue.storage`, else a journal file in the (shared) results folder: the no-database default."""
    storage = experiment.queue.storage
    if storage is None or storage == "journal":
        return f"journal:{experiment.results_dir() / 'queue.journal'}"
    return storage


def queue_name(experiment: Experiment) -> str:
    """Named by what the runs compute, like run ids; more seeds or methods add runs to the same queue."""
    return f"{experiment.name}-queue-{json_digest(computed_config(experiment))[:8]}"


def open_queue(experiment: Experiment) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(queue_url(experiment), experiment.queue)
    return optuna.create_study(storage=storage, study_name=queue_name(experiment), load_if_exists=True)


def check_reachable(experiment: Experiment) -> None:
    """Open the storages a joiner will use, before anything is written: an unreachable database is one line.

    The message names the setting and the URL with its password masked; the driver's own first
    line says why (refused, unknown host, bad password), masked too.
    """
    from peftlab.errors import ConfigError
    from peftlab.planners.optuna_search import storage_url

    origin = str(experiment.source_path) if experiment.source_path else experiment.name
    checks = [("queue.storage", queue_url(experiment))]
    if experiment.search is not None:
        checks = [("search.storage" if experiment.search.storage else "queue.storage", storage_url(experiment))]
    for setting, url in checks:
        if url.startswith("journal:"):
            continue  # a file: created on first use, in the results folder or where the URL says
        try:
            close_storage(open_storage(url, experiment.queue))
        except Exception as err:  # the driver's error classes vary: psycopg, sqlite3, a missing driver
            why = redact(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
            raise ConfigError(f"{origin}: {setting}: cannot open {redact(url)}: {why}") from None


def _run_id(trial: Any) -> str | None:
    return trial.user_attrs.get("run_id")


class RunQueue:
    """A grid plan's runs through the shared queue (the planner protocol, peftlab/planners/base.py)."""

    def __init__(self, experiment: Experiment, only: list[str] | None = None, worker: int = 0) -> None:
        self.experiment, self.only, self.worker = experiment, only, worker
        self.plan = make_plan(experiment, only)
        self.index = {s.run_id: i for i, s in enumerate(self.plan, 1)}
        self.study: Any = None
        self.statuses: dict[str, int] = {}
        self.started = time.perf_counter()
        self._held: dict[str, tuple[Any, Heartbeat]] = {}  # run_id -> (its trial, its heartbeat)
        self._beat: Any = None  # the heartbeat of the trial just popped

    def describe(self) -> list[str]:
        exp = self.experiment
        return [
            f"experiment {exp.name}: {len(self.plan)} runs through the queue {queue_name(exp)} "
            f"in {redact(queue_url(exp))} → {exp.results_dir()}",
            *(f"  {i:>3}. {s.run_id:<32} {s.describe()}" for i, s in enumerate(self.plan, 1)),
        ]

    def _open(self) -> Any:
        if self.study is None:
            self.study = open_queue(self.experiment)
        return self.study

    def start(self) -> list[str]:
        """Queue every planned run that has no finished record and no live trial yet."""
        from optuna.trial import TrialState

        from peftlab.records.results import finished_record

        study, results_dir = self._open(), self.experiment.results_dir()
        live = {_run_id(t) for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL}
        added = 0
        for spec in self.plan:
            if spec.run_id not in live and finished_record(results_dir, spec.run_id) is None:
                study.enqueue_trial({}, user_attrs={"run_id": spec.run_id})
                added += 1
        counts = self._counts()
        close_storage(study._storage)  # connections are never shared across a worker pool's fork
        self.study = None
        shown = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "empty"
        return [f"queue {queue_name(self.experiment)} ({redact(queue_url(self.experiment))}): queued {added}; {shown}"]

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            if _run_id(t) in self.index:
                counts[t.state.name] = counts.get(t.state.name, 0) + 1
        return counts

    def for_worker(self, index: int) -> RunQueue:
        return RunQueue(self.experiment, self.only, index)

    def next(self) -> Assignment | None:
        """Pop a waiting run; while none waits but some are in flight, wait and take over the dead ones'."""
        from optuna.trial import TrialState

        study = self._open()
        while True:
            self._recover(study)
            trials = [t for t in study.get_trials(deepcopy=False) if _run_id(t) in self.index]
            for trial in (t for t in trials if t.state == TrialState.WAITING):
                if self._pop(study, trial) and (assignment := self._claim(study, trial)) is not None:
                    return assignment
            if not any(t.state == TrialState.RUNNING for t in trials):
                return None
            time.sleep(min(1.0, self.experiment.queue.heartbeat_interval / 2))

    def _pop(self, study: Any, trial: Any) -> bool:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        try:
            popped = study._storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING)
        except UpdateFinishedTrialError:
            return False
        if popped:
            self._beat = Heartbeat(study, trial._trial_id, self.experiment.queue).start()  # at once: see Heartbeat
            study._storage.set_trial_user_attr(trial._trial_id, "worker", worker_identity())
        return popped

    def _claim(self, study: Any, trial: Any) -> Assignment | None:
        """The popped trial's run, or None when it is a duplicate or already has a finished record."""
        from optuna.trial import TrialState

        from peftlab.records.results import finished_record

        run_id = _run_id(trial)
        beat = self._beat
        others = [t for t in study.get_trials(deepcopy=False) if _run_id(t) == run_id and t.number != trial.number]
        ahead = [
            t
            for t in others
            if t.state == TrialState.COMPLETE or (t.state != TrialState.FAIL and t.number < trial.number)
        ]
        record = finished_record(self.experiment.results_dir(), run_id)
        if ahead:  # the same run queued twice (joiners starting at once): the lower trial is the run's
            beat.stop()
            study._storage.set_trial_user_attr(trial._trial_id, "duplicate", True)
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            return None
        if record is not None:  # made already (its worker died before telling the queue)
            beat.stop()
            study._storage.set_trial_user_attr(trial._trial_id, "status", record.status)
            study.tell(trial.number, 0.0, skip_if_finished=True)
            return None
        self._held[run_id] = (trial, beat)
        spec: RunSpec = self.plan[self.index[run_id] - 1]
        return Assignment(spec, (self.index[run_id], len(self.plan)))

    def _recover(self, study: Any) -> list[str]:
        """Runs whose worker died: told from their record if it exists, else failed and queued again."""
        from peftlab.records.results import finished_record

        notes, results_dir = [], self.experiment.results_dir()
        for trial in [*silent_trials(study, self.experiment.queue), *dead_here(study)]:
            record = finished_record(results_dir, _run_id(trial) or "")
            if record is not None:
                study._storage.set_trial_user_attr(trial._trial_id, "status", record.status)
                study.tell(trial.number, 0.0, skip_if_finished=True)
        for trial in fail_silent(study, self.experiment.queue):
            notes.append(f"run {_run_id(trial)}: its worker fell silent; queued it again")
        for trial in dead_here(study):
            if take_over(study, trial):
                notes.append(f"run {_run_id(trial)}: its worker died; queued it again")
        for note in notes:
            print(f"peftlab: {note}", flush=True)
        return notes

    def tell(self, assignment: Assignment, record: RunRecord) -> str:
        trial, beat = self._held.pop(assignment.spec.run_id)
        beat.stop()
        self.statuses[record.status] = self.statuses.get(record.status, 0) + 1
        self.study._storage.set_trial_user_attr(trial._trial_id, "status", record.status)
        self.study.tell(trial.number, 0.0, skip_if_finished=True)  # a record exists: the run is done
        return ""

    def abandon(self, assignment: Assignment) -> None:
        """Ctrl-C: the run goes back to the queue for another worker (or the next session)."""
        held = self._held.pop(assignment.spec.run_id, None)
        if held is not None:
            held[1].stop()
            take_over(self.study, self.study._storage.get_trial(held[0]._trial_id))

    def finish(self) -> int:
        took = fmt_duration(time.perf_counter() - self.started)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "nothing"
        self._open()  # a worker pool's parent has not opened it: the count is the queue's, not this process's
        left = self._counts()
        mine = [t for t in self.study.get_trials(deepcopy=False) if _run_id(t) in self.index]
        failed = any(t.user_attrs.get("status") == "failed" for t in mine)
        close_storage(self.study._storage)
        self.study = None
        runs = self.experiment.results_dir() / "runs"
        done = left.get("COMPLETE", 0)
        print(
            f"peftlab: queue empty: this worker made {sum(self.statuses.values())} runs in {took} ({counts}); "
            f"{done} of {len(self.plan)} planned runs done; records in {runs}",
            flush=True,
        )
        if not self.statuses:  # a worker pool's parent: its workers' outcome is the queue's
            return 1 if failed else 0
        return 1 if self.statuses.get("failed") else 0

    def run_ids(self) -> set[str]:
        return set(self.index)
