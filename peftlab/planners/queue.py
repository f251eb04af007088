"""The grid plan as a shared queue: workers on any host claim planned runs, each exactly once.

`python -m peftlab.run EXP.yaml --join` on many hosts makes every planned run exactly once. The
queue lives in the experiment's `queue.storage` (PostgreSQL for many hosts: a `peftlab_points`
table; a file on a shared filesystem otherwise) and holds one item per planned run, keyed by its
`run_id` (planners/points.py). Exactly once by construction, not by timing:
- Queuing is idempotent (a key is added once): joiners starting at once cannot queue a run twice.
- A worker claims a run atomically; a run whose worker died (a dead process on this host) or fell
  silent (no heartbeat for the grace period, any host) is taken over in that same atomic step:
  its attempt number goes up, so it is never between owners and never queued twice.
- Completing is allowed to the current attempt only: a worker that stalled past the grace period
  and comes back finds its run taken over, and its completion is refused.
- A claimed run whose finished record is already in the shared results folder is completed from
  it, not run again (its worker died between the record and the completion).
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
from peftlab.planners.heartbeat import worker_identity
from peftlab.planners.optuna_search import close_storage, open_storage
from peftlab.planners.points import Claim, PointBeat, PointStore, open_points

if TYPE_CHECKING:
    from peftlab.config import Experiment


def queue_url(experiment: Experiment) -> str:
    """`queue.storage`, else a journal file in the (shared) results folder: the no-database default."""
    storage = experiment.queue.storage
    if storage is None or storage == "journal":
        return f"journal:{experiment.results_dir() / 'queue.journal'}"
    return storage


def queue_name(experiment: Experiment) -> str:
    """Named by what the runs compute, like run ids; more seeds or methods add runs to the same queue."""
    return f"{experiment.name}-queue-{json_digest(computed_config(experiment))[:8]}"


def open_queue(experiment: Experiment) -> PointStore:
    """The experiment's queue of planned runs (no Optuna study: a run id is all an item needs)."""
    return open_points(queue_url(experiment), queue_name(experiment), experiment.queue.grace_s)


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


class RunQueue:
    """A grid plan's runs through the shared queue (the planner protocol, peftlab/planners/base.py)."""

    def __init__(self, experiment: Experiment, only: list[str] | None = None, worker: int = 0) -> None:
        self.experiment, self.only, self.worker = experiment, only, worker
        self.plan = make_plan(experiment, only)
        self.index = {s.run_id: i for i, s in enumerate(self.plan, 1)}
        self.store: PointStore | None = None
        self.statuses: dict[str, int] = {}
        self.started = time.perf_counter()
        self._held: dict[str, tuple[Claim, PointBeat]] = {}  # run_id -> (its claim, its heartbeat)

    def describe(self) -> list[str]:
        exp = self.experiment
        return [
            f"experiment {exp.name}: {len(self.plan)} runs through the queue {queue_name(exp)} "
            f"in {redact(queue_url(exp))} → {exp.results_dir()}",
            *(f"  {i:>3}. {s.run_id:<32} {s.describe()}" for i, s in enumerate(self.plan, 1)),
        ]

    def _open(self) -> PointStore:
        if self.store is None:
            self.store = open_queue(self.experiment)
        return self.store

    def _close(self) -> None:
        if self.store is not None:
            self.store.close()  # connections are never shared across a worker pool's fork
            self.store = None

    def start(self) -> list[str]:
        """Queue every planned run (idempotent: a run already queued, by this joiner or another, stays one item)."""
        added = self._open().add(s.run_id for s in self.plan)
        shown = ", ".join(f"{n} {s}" for s, n in sorted(self._counts().items())) or "empty"
        self._close()
        return [f"queue {queue_name(self.experiment)} ({redact(queue_url(self.experiment))}): queued {added}; {shown}"]

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for state in self._open().states().values():
            if state.key in self.index:
                name = "done" if state.done else "held" if state.holder is not None else "waiting"
                counts[name] = counts.get(name, 0) + 1
        return counts

    def for_worker(self, index: int) -> RunQueue:
        return RunQueue(self.experiment, self.only, index)

    def next(self) -> Assignment | None:
        """Claim a run; while none is free but some are held by live workers, wait (and take over the dead ones')."""
        from peftlab.records.results import finished_record

        store, mine = self._open(), set(self.index)
        while True:
            claim = store.claim(worker_identity(), among=mine)
            if claim is None:
                if not store.pending(mine):
                    return None
                time.sleep(min(1.0, self.experiment.queue.heartbeat_interval / 2))
                continue
            if claim.previous is not None:
                print(
                    f"peftlab: run {claim.key}: its worker on {claim.previous.get('host', '?')} "
                    "died or fell silent; taken over",
                    flush=True,
                )
            record = finished_record(self.experiment.results_dir(), claim.key)
            if record is not None:  # made already (its worker died before completing it in the queue)
                store.complete(claim, record["status"])
                continue
            self._held[claim.key] = (claim, PointBeat(store, claim, self.experiment.queue.heartbeat_interval))
            spec: RunSpec = self.plan[self.index[claim.key] - 1]
            return Assignment(spec, (self.index[claim.key], len(self.plan)))

    def tell(self, assignment: Assignment, record: dict[str, Any]) -> str:
        claim, beat = self._held.pop(assignment.spec.run_id)
        beat.stop()
        self.statuses[record["status"]] = self.statuses.get(record["status"], 0) + 1
        if not self._open().complete(claim, record["status"]):
            return "  → taken over meanwhile (this worker was silent past the grace period): the other attempt counts"
        return ""

    def abandon(self, assignment: Assignment) -> None:
        """Ctrl-C: the run goes back to the queue for another worker (or the next session), at once."""
        held = self._held.pop(assignment.spec.run_id, None)
        if held is not None:
            held[1].stop()
            self._open().release(held[0])

    def finish(self) -> int:
        took = fmt_duration(time.perf_counter() - self.started)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "nothing"
        states = [s for s in self._open().states().values() if s.key in self.index]
        failed = any(s.note == "failed" for s in states)
        self._close()
        runs = self.experiment.results_dir() / "runs"
        done = sum(s.done for s in states)
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
