"""The grid plan: every run an experiment implies (methods × grid × seeds), named by what it computes.

A run's id is derived from its resolved configuration, so re-running an unchanged experiment
finds its finished records and skips them, while any change to what a run computes gives it a
new id instead of silently mixing old and new results.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

from peftlab.config import Experiment, MethodEntry, computed_config
from peftlab.planners.base import Assignment, RunSpec, fmt_duration, run_spec

if TYPE_CHECKING:
    from peftlab.records.record import RunRecord


def _variants(entry: MethodEntry) -> list[tuple[str, dict[str, Any]]]:
    """(label, choices) of each grid point of the entry; one point without choices when it has no grid."""
    if not entry.grid:
        return [(entry.label, {})]
    keys = list(entry.grid)
    out = []
    for values in itertools.product(*(entry.grid[k] for k in keys)):
        tag = ",".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
        out.append((f"{entry.label}[{tag}]", dict(zip(keys, values, strict=True))))
    return out


def make_plan(experiment: Experiment, only: list[str] | None = None) -> list[RunSpec]:
    """The planned runs, seed by seed across methods, each seed's round starting one method later.

    Run order must not be confounded with method: whatever slows the start of an experiment (a
    cold cache, a neighbour's load) would otherwise fall on the first method's seeds, and its speed
    interval would measure the run order. Round i runs the variants rotated by i, so each method
    is first in some round. The order changes nothing else: run ids name what a run computes.
    """
    shared = computed_config(experiment)
    runs = [
        run_spec(experiment, entry, choices, seed, label=label, shared=shared)
        for entry in experiment.methods
        if not only or entry.label in only or entry.method in only
        for label, choices in _variants(entry)
        for seed in experiment.seeds
    ]
    return seed_by_seed(runs, list(experiment.seeds))


def seed_by_seed(runs: list[RunSpec], seeds: list[int]) -> list[RunSpec]:
    """Method-major `runs` (variants × seeds) reordered into rounds of one seed, round i rotated by i."""
    rounds = []
    for i, seed in enumerate(seeds):
        round_ = [r for r in runs if r.seed == seed]
        shift = i % len(round_) if round_ else 0
        rounds.extend(round_[shift:] + round_[:shift])
    return rounds


# ---------------------------------------------------------------- the planner


class SharedCursor:
    """The next plan position, shared by forked workers: each position is handed out once.

    Shared memory made before the fork (`multiprocessing.Value`, with its own lock), so a pool of
    workers on one host needs no storage: worker k pops the next position, skips it if its record
    is finished, and marks what it ran so the pool's parent can count the outcome.
    """

    def __init__(self, size: int) -> None:
        import multiprocessing

        self.position = multiprocessing.Value("i", 0)
        self.ran = multiprocessing.Array("b", max(size, 1))

    def pop(self) -> int:
        with self.position.get_lock():
            index = self.position.value
            self.position.value += 1
        return index


class GridPlanner:
    """The plan as a planner: every run not finished yet (or every run, with `force`), in plan order.

    Serial by default; after `share()` (before a worker pool forks) every worker's planner takes
    the next plan position from one `SharedCursor`, so each run is made by exactly one worker.
    """

    def __init__(self, experiment: Experiment, only: list[str] | None = None, force: bool = False) -> None:
        self.experiment, self.force = experiment, force
        self.plan = make_plan(experiment, only)
        self.todo: list[tuple[int, RunSpec]] = []
        self.statuses: dict[str, int] = {}
        self.started = 0.0
        self.cursor: SharedCursor | None = None

    def describe(self) -> list[str]:
        from peftlab.records.results import finished_record

        exp, results_dir = self.experiment, self.experiment.results_dir()
        lines = [
            f"experiment {exp.name}: {len(self.plan)} runs → {results_dir}",
            f"model {exp.model} | data {exp.data.source} | {exp.train.steps} steps × "
            f"batch {exp.train.batch_size} × accum {exp.train.grad_accum} | seeds {exp.seeds}",
        ]
        for i, spec in enumerate(self.plan, 1):
            done = " (finished, will skip)" if finished_record(results_dir, spec.run_id) and not self.force else ""
            lines.append(f"  {i:>3}. {spec.run_id:<32} {spec.describe()}{done}")
        return lines

    def start(self) -> list[str]:
        from peftlab.records.results import finished_record

        results_dir = self.experiment.results_dir()
        self.todo = [
            (i, s) for i, s in enumerate(self.plan, 1) if self.force or finished_record(results_dir, s.run_id) is None
        ]
        self.started = time.perf_counter()
        skipped = len(self.plan) - len(self.todo)
        if skipped:
            return [f"{skipped} of {len(self.plan)} runs already finished, skipping them (--force re-runs)"]
        return []

    def share(self) -> None:
        """Before a worker pool forks: from now on runs are handed out through one shared cursor."""
        self.cursor = SharedCursor(len(self.plan))

    def for_worker(self, index: int) -> GridPlanner:
        return self

    def next(self) -> Assignment | None:
        if self.cursor is not None:
            return self._next_shared()
        if not self.todo:
            return None
        index, spec = self.todo.pop(0)
        return Assignment(spec, (index, len(self.plan)), remaining=len(self.todo))

    def _next_shared(self) -> Assignment | None:
        from peftlab.records.results import finished_record

        assert self.cursor is not None
        results_dir = self.experiment.results_dir()
        while (index := self.cursor.pop()) < len(self.plan):
            spec = self.plan[index]
            if self.force or finished_record(results_dir, spec.run_id) is None:
                self.cursor.ran[index] = 1
                return Assignment(spec, (index + 1, len(self.plan)))
        return None

    def tell(self, assignment: Assignment, record: RunRecord) -> str:
        self.statuses[record.status] = self.statuses.get(record.status, 0) + 1
        return ""

    def abandon(self, assignment: Assignment) -> None:
        """Nothing to undo: an unfinished run has no finished record, so the next session makes it."""

    def finish(self) -> int:
        if self.cursor is not None and not self.statuses:  # a pool's parent: count what its workers ran
            self.statuses = self._shared_statuses()
        total = sum(self.statuses.values())
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "nothing to run"
        took = fmt_duration(time.perf_counter() - self.started)
        runs = self.experiment.results_dir() / "runs"
        print(f"peftlab: {total} runs in {took} ({counts}); records in {runs}", flush=True)
        return 1 if self.statuses.get("failed") else 0

    def _shared_statuses(self) -> dict[str, int]:
        from peftlab.records.results import RecordError, read_record, record_path

        assert self.cursor is not None
        statuses: dict[str, int] = {}
        results_dir = self.experiment.results_dir()
        for index, spec in enumerate(self.plan):
            path = record_path(results_dir, spec.run_id)
            if self.cursor.ran[index] and path.is_file():
                try:
                    status = read_record(path).status
                except RecordError:  # unreadable: counted as a failure to retry, like a missing record
                    status = "failed"
                statuses[status] = statuses.get(status, 0) + 1
        return statuses

    def run_ids(self) -> set[str]:
        return {s.run_id for s in self.plan}
