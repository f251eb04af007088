"""The tuned protocol as a planner: tune each method on validation, then run the chosen configuration at every seed.

A comparison whose learning rates were hand-picked per method measures the picking as much as
the methods. Here every method gets the same budget: phase 1 is one small seeded TPE study per
method entry (`OptunaSearch` on a one-method copy of the experiment: its lr, log-uniform around
the file's value, plus any space the file declares), trained at `seeds[0]` and scored on
the task's primary validation metric only; phase 2 is the grid plan (`GridPlanner`) of each method's best
trial's configuration × every seed, evaluated on test. Both phases are ordinary runs: trials
leave records with their `trial` block, final runs a `protocol` block that names the chosen
values, so the report states them from records alone. Re-running resumes: finished trials and
final runs are skipped by the machinery each phase already has.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from peftlab.config.search import primary_objective
from peftlab.planners.base import Assignment, OnRecord
from peftlab.planners.grid import GridPlanner, SharedCursor
from peftlab.planners.optuna_search import (
    OptunaSearch,
    _describe_dimension,
    storage_url,
    study_name,
)

if TYPE_CHECKING:
    from peftlab.config import Experiment, MethodEntry


def study_experiment(experiment: Experiment, entry: MethodEntry) -> Experiment:
    """A one-method copy of the experiment whose `search:` is the protocol's study for `entry`."""
    search = experiment.protocol.searches[entry.label]
    return dataclasses.replace(experiment, methods=[entry], search=search, protocol=None)


def chosen_entry(entry: MethodEntry, choices: dict[str, Any]) -> MethodEntry:
    """The entry with a trial's values written in, so the grid plan names and runs exactly that configuration."""
    params = {k: v for k, v in choices.items() if k not in ("lr", "alpha_ratio")}
    return dataclasses.replace(
        entry,
        lr=choices.get("lr", entry.lr),
        params=dataclasses.replace(entry.params, **params),
        alpha_ratio=choices.get("alpha_ratio", entry.alpha_ratio),
    )


def best_of(search: OptunaSearch) -> dict[str, Any] | None:
    """The study's best trial by validation, as the `protocol` block a final run records; None if none finished."""
    from optuna.trial import TrialState

    study = search._open()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    block = None
    if complete:
        best = study.best_trial
        block = {
            "tuned": True,
            "chosen": dict(best.params),
            "study": study.study_name,
            "trials": len(complete),
            "best_trial": best.number,
            "objective": search.experiment.search.objectives[0][0],
            "value": best.value,
            "seed": search.experiment.seeds[0],
        }
    search.close()
    return block


def stamp(block: dict[str, Any]) -> OnRecord:
    """The final run's record hook: its `protocol` block says how its configuration was chosen (a pure
    function of the finished record, run in the run's process)."""

    def on_record(record: dict[str, Any]) -> dict[str, Any]:
        return {"protocol": protocol_block(block, record)}

    return on_record


def protocol_block(block: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The record's `protocol` block: how the configuration was chosen (the study's facts, known before
    the run) and, read off the record itself, whether this final run used exactly the chosen values."""
    if "chosen" not in block:
        return dict(block)
    used = record.get("hyperparameters") or {}
    return {**block, "as_chosen": all(used.get(k) == v for k, v in block["chosen"].items())}


class TunedProtocol:
    """Phase 1: each method's study in turn (ask → trial run, tell ← record); phase 2: the chosen grid.

    The planner protocol is in peftlab/planners/base.py; runs are serial (one study at a time).
    """

    def __init__(
        self, experiment: Experiment, only: list[str] | None = None, force: bool = False, joining: bool = False
    ) -> None:
        self.experiment, self.force, self.only, self.joining = experiment, force, only, joining
        self.entries = [e for e in experiment.methods if not only or e.label in only or e.method in only]
        tuned = [e for e in self.entries if e.label in experiment.protocol.searches]
        self.searches = {e.label: OptunaSearch(study_experiment(experiment, e), joining=joining) for e in tuned}
        self.pending = list(self.searches)
        self.blocks: dict[str, dict[str, Any]] = {}  # label -> the final runs' `protocol` block
        self.grid: Any = None  # GridPlanner, or with `joining` a RunQueue
        self.cursor: SharedCursor | None = None  # phase 2 across a worker pool (share())
        self.owner: dict[str, Any] = {}  # run_id -> the planner that handed it out
        self.code = 0
        self.started = 0.0

    def describe(self) -> list[str]:
        exp, proto = self.experiment, self.experiment.protocol
        lines = [
            f"experiment {exp.name}: tuned protocol → {exp.results_dir()}",
            f"model {exp.model} | data {exp.data.source} | {exp.train.steps} steps × "
            f"batch {exp.train.batch_size} × accum {exp.train.grad_accum} | seeds {exp.seeds}",
            f"phase 1: per method, {proto.trials} TPE trials (sampler seed {proto.seed}) at seed {exp.seeds[0]}, "
            f"scored on {primary_objective(exp.task_choice)[0]} (validation); studies in {self._storage()}"
            if self.searches
            else "phase 1: nothing to tune",
        ]
        for entry in self.entries:
            if entry.label not in self.searches:
                lines.append(f"  {entry.label} ({entry.method}): not trained, runs as written")
                continue
            sub = self.searches[entry.label].experiment
            dims = "; ".join(f"{k} {_describe_dimension(d)}" for k, d in sub.search.space[entry.label].items())
            lines.append(f"  {entry.label} ({entry.method}): {dims} | study {study_name(sub)}")
        lines.append(
            f"phase 2: each method's best trial × seeds {exp.seeds} ({len(self.entries) * len(exp.seeds)} runs), "
            "evaluated on test; the tables show these runs only"
        )
        return lines

    def _storage(self) -> str:
        return storage_url(next(iter(self.searches.values())).experiment)

    def start(self) -> list[str]:
        self.started = time.perf_counter()
        return [note for search in self.searches.values() for note in search.start()]

    def share(self) -> None:
        """Before a worker pool forks: phase 2's runs go through one shared cursor (phase 1 through the studies)."""
        if self.joining:
            return  # joiners' phase 2 is a shared queue already
        hand_written = dataclasses.replace(self.experiment, protocol=None)
        self.cursor = SharedCursor(len(GridPlanner(hand_written, self.only).plan))

    def for_worker(self, index: int) -> TunedProtocol:
        """In a forked worker: its own storage connection per study (a sampler salted by the worker)."""
        self.searches = {label: search.for_worker(index) for label, search in self.searches.items()}
        return self

    def next(self) -> Assignment | None:
        while self.pending:
            search = self.searches[self.pending[0]]
            assignment = search.next()
            if assignment is not None:
                self.owner[assignment.spec.run_id] = search
                return assignment
            self._choose(self.pending.pop(0))
        if self.grid is None:
            self.grid = self._final_grid()
            for note in self.grid.start():
                print(f"peftlab: {note}", flush=True)
        assignment = self.grid.next()
        if assignment is not None:
            block = self.blocks.get(assignment.spec.label, {"tuned": False, "why": "not trained: nothing to tune"})
            assignment.on_record = stamp(block)
            self.owner[assignment.spec.run_id] = self.grid
        return assignment

    def _choose(self, label: str) -> None:
        search = self.searches[label]
        self.code = max(self.code, search.code)
        block = best_of(search)
        if block is None:
            print(f"peftlab: {label}: no tuning trial finished; it has no final runs", flush=True)
            self.code = 1
            return
        self.blocks[label] = block
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in block["chosen"].items())
        print(
            f"peftlab: {label}: chose {shown} (trial {block['best_trial']}, {block['objective']} {block['value']:.4f})"
        )

    def _final_grid(self) -> GridPlanner:
        """The chosen configuration of every tuned method (and every untrained one as written) × every seed."""
        entries = [
            chosen_entry(e, self.blocks[e.label]["chosen"]) if e.label in self.blocks else e
            for e in self.entries
            if e.label in self.blocks or e.label not in self.searches
        ]
        final = dataclasses.replace(self.experiment, methods=entries, protocol=None)
        if self.joining:
            from peftlab.planners.queue import RunQueue

            return RunQueue(final)
        grid = GridPlanner(final, force=self.force)
        grid.cursor = self.cursor  # the same plan in every worker (the studies agree), so positions agree
        return grid

    def tell(self, assignment: Assignment, record: dict[str, Any]) -> str:
        return self.owner.pop(assignment.spec.run_id).tell(assignment, record)

    def abandon(self, assignment: Assignment) -> None:
        owner = self.owner.pop(assignment.spec.run_id, None)
        if owner is not None:
            owner.abandon(assignment)

    def finish(self) -> int:
        for search in self.searches.values():
            search.close()
        if self.grid is None and (self.cursor is not None or self.joining):
            self._settle()  # a worker pool's parent: its workers ran both phases
        code = self.grid.finish() if self.grid is not None else 1
        return max(code, self.code)

    def _settle(self) -> None:
        """After a worker pool: read each study's choice and name the final grid, so finish and run_ids see it."""
        for label in self.pending:
            self._choose(label)
        self.pending = []
        if self.blocks or any(e.label not in self.searches for e in self.entries):
            self.grid = self._final_grid()
            self.grid.started = self.started

    def run_ids(self) -> set[str]:
        """The final runs only: the tuning trials stay on disk (with their `trial` block) but out of the tables."""
        return self.grid.run_ids() if self.grid is not None else set()
