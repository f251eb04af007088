"""What planners and executors share: a run's spec, an assignment of it, and the planner protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from peftlab.config import computed_config
from peftlab.config.identity import json_digest
from peftlab.config.optim import OptimizerSpec
from peftlab.task_specs import TaskChoice

if TYPE_CHECKING:
    from peftlab.config import Experiment, MethodEntry
    from peftlab.records.record import Part, RunRecord


@dataclass(frozen=True)
class RunSpec:
    """One run to make, named by what it computes; built by `run_spec` only."""

    experiment: str
    label: str  # variant label: entry label plus grid values, e.g. "lora" or "lora[r=4]"
    method: str
    seed: int
    optimizer: OptimizerSpec  # the learning rate and its friends, as the runtime builds AdamW from them
    params: dict[str, Any]
    config_hash: str  # hash of everything the run computes except the seed
    run_id: str
    # the task and the metric the run is scored by, resolved once by config (Experiment.task_choice);
    # the recipe writes it as the record's `task` block. Not hashed: config_hash covers task and data.metric
    task: TaskChoice
    study: str | None = None  # a search trial's study and number (its trackers log it as a child run)
    trial: int | None = None

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items() if v is not None)
        return f"{self.label:<24} seed={self.seed:<3} lr={self.lr:<9.3g} {shown}"


def run_spec(
    experiment: Experiment,
    entry: MethodEntry,
    choices: Mapping[str, Any],
    seed: int,
    *,
    label: str | None = None,
    trial: tuple[str, int] | None = None,
    shared: dict[str, Any] | None = None,
) -> RunSpec:
    """The spec of one run of `entry` with `choices` applied (a grid point's or a search trial's), at `seed`.

    Every planner builds its runs here, so a run's hash and id are made one way. `label` names a grid
    variant (default: the entry's label); `trial` is (study name, trial number) for a search trial,
    whose id names the study and trial instead of the seed. `shared` is `computed_config(experiment)`,
    when the caller has it already.
    """
    lr, params = entry.choose(choices)
    shared = computed_config(experiment) if shared is None else shared
    config_hash = json_digest({**shared, "method": entry.method, "lr": lr, "params": params})
    if trial is None:
        label = label or entry.label
        slug = label.replace("[", "-").replace("]", "").replace(",", "-").replace("=", "")
        run_id, study, number = f"{slug}-s{seed}-{config_hash[:8]}", None, None
    else:
        study, number = trial
        label = f"{entry.label}[t{number}]"
        run_hash = json_digest({"study": study, "trial": number, "config": config_hash})
        run_id = f"{entry.label}-t{number:04d}-{run_hash[:8]}"
    return RunSpec(
        experiment=experiment.name,
        label=label,
        method=entry.method,
        seed=seed,
        optimizer=experiment.train.optimizer(lr),
        params=params,
        config_hash=config_hash[:16],
        run_id=run_id,
        task=experiment.task_choice,
        study=study,
        trial=number,
    )


# (step, validation scores) -> stop now? Called in the planner's process, never in the run's.
Report = Callable[[int, dict[str, float]], bool]
# The planner's own block of a run's record (`trial`, `protocol`), derived from the record the phases
# made: a pure function of that record (it runs in the run's process, which must not open the
# planner's storage), returning a typed part (`TrialPart`, `ProtocolPart`) that assembly adds before
# the record is validated and written once (records.record.assemble's `derive`).
OnRecord = Callable[["RunRecord"], "Part"]


@dataclass
class Assignment:
    """One run to make: its spec, where it stands in the plan, and the planner's hooks for it."""

    spec: RunSpec
    position: tuple[int, int]  # (index, total) as shown in progress lines
    report: Report | None = None
    on_record: OnRecord | None = None
    remaining: int | None = None  # runs left after this one, when the planner knows (for an ETA)


class Planner(Protocol):
    def describe(self) -> list[str]: ...  # the plan, for --dry-run

    def start(self) -> list[str]: ...  # before any run (holding the results lock): notes to print

    def for_worker(self, index: int) -> Planner: ...  # the planner a worker process uses

    def next(self) -> Assignment | None: ...  # the next run, or None when the plan is done

    def tell(self, assignment: Assignment, record: RunRecord) -> str: ...  # a note for the run's line

    def abandon(self, assignment: Assignment) -> None: ...  # interrupted: the run must be made again later

    def finish(self) -> int: ...  # after every run: print the outcome, return the exit code

    def run_ids(self) -> set[str]: ...  # the records the report of this plan reads


def fmt_duration(seconds: float) -> str:
    """12s, 3m05s: how progress lines and summaries show a duration."""
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
