"""The run record as a typed, versioned model: the one contract every layer shares.

A record is written by the recipe (peftlab/runtime/recipe.py) and read by the planners, the reports and
the paper. Its JSON keys are the public paths every reader uses (`metrics.test.accuracy`,
`config.train.steps`), so the model keeps them as they are and types what each phase produces:

- build info (`params`, `model`, `hyperparameters`, `size`),
- the training outcome (`time.steps`, `metrics.final_train_loss`, `metrics.curve`, `speed`, `memory`),
- the evaluation result (`metrics.<split>`: an open mapping of metric name to value, so that any
  task's metrics and extra splits such as `validation_mismatched` fit),
- probe results (`forgetting`, `learning`), the environment (`env`) and the outcome (`status`, `error`).

Sections whose sub-structure is open (the config, a probe's detail) are typed dictionaries, or
models that allow extra keys: a new measurement adds a key without a schema change, a key of the
wrong type is refused. `schema_version` says which layout a file has; `upgrade` reads every older
version this peftlab knows through one explicit, pure function per step, and refuses a newer one.

The model imports nothing heavy (pydantic only), so config, planners and reports may all read it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 3
# outcomes that a re-run would reproduce; `failed` and `killed` (a SIGKILL with no sign of the OOM
# killer, see peftlab/runtime/oom.py) are retried. `pruned`: a search trial stopped early by its pruner on
# an intermediate validation score (a decision, so not repeated).
FINISHED = ("ok", "diverged", "oom", "pruned")
STATUSES = ("ok", "diverged", "oom", "pruned", "failed", "killed")
Status = Literal["ok", "diverged", "oom", "pruned", "failed", "killed"]

# one value of a split's scores: a number, a count, a label, or a small nested value (a
# confusion matrix, per-class scores) that a task may add
Score = float | int | bool | str | None | list[Any] | dict[str, Any]
Scores = dict[str, Score]


class RecordError(ValueError):
    """A record that cannot be read or written: the message is one line naming the file and the reason."""


class _Section(BaseModel):
    """A record section: its known keys typed, further keys kept as they are (a new measurement)."""

    model_config = ConfigDict(extra="allow")


class TaskInfo(_Section):
    """What the run was scored by, as config resolved it (peftlab/task_specs `TaskChoice`): the task, its
    chosen primary metric with its direction (version 2), the metric's resampling statistic and the
    `data.metric` choice behind it (version 3). Every reader takes task, metric and direction from here."""

    name: str | None = None
    primary: str | None = None
    direction: Literal["max", "min"] | None = None
    statistic: str | None = None  # how peftlab/stats/crossed.py resamples `primary` (None: not resampled)
    choice: str | None = None  # `data.metric` as written (None: the task's default)


class DataInfo(_Section):
    source: str | None = None
    name: str | None = None
    citation: str | None = None
    fingerprint: str | None = None
    sizes: dict[str, int] = Field(default_factory=dict)
    num_labels: int | None = None
    label_names: list[str] | None = Field(default_factory=list)  # none for a task without classes
    max_length: int | None = None


class ModelInfo(_Section):
    """Where the weights came from (`ModelSource.as_dict`) and what was built from them."""

    spec: str | None = None
    kind: str | None = None
    location: str | None = None
    origin: str | None = None
    # the hub identity (a builtin's repository, or the hub id as given): what a saved adapter and its
    # card name as the base model, while `location` (this machine's folder) stays in the record only
    hub_id: str | None = None
    revision: str | None = None
    model_type: str | None = None
    dtype: str | None = None


class ParamCounts(_Section):
    trainable: int | None = None
    total: int | None = None
    trainable_pct: float | None = None


class Metrics(_Section):
    """The evaluation result and the training outcome's losses.

    `test` and `validation` are the task's scores on each split (None: not evaluated, e.g. a pruned
    trial's test); further splits (`validation_mismatched`) are extra keys holding the same mapping.
    """

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Scores | None] = Field(init=False)

    test: Scores | None = None
    validation: Scores | None = None
    final_train_loss: float | None = None
    curve: list[dict[str, Any]] = Field(default_factory=list)


class Speed(_Section):
    train_tokens_per_s: float | None = None
    train_samples_per_s: float | None = None
    step_time_median_s: float | None = None
    step_time_p90_s: float | None = None
    timed_steps: int | None = None
    warmup_steps_excluded: int | None = None
    eval_samples_per_s: float | None = None
    eval_tokens_per_s: float | None = None
    padding_fraction: float | None = None
    latency_ms_bs1: float | None = None
    latency_ms_bs1_merged: float | None = None


class Timing(_Section):
    """Wall times of the phases (seconds) and the run's start and end (ISO 8601, UTC)."""

    started_at: str | None = None
    finished_at: str | None = None
    total_s: float | None = None
    steps: int | None = None
    build_s: float | None = None
    train_s: float | None = None
    validation_s: float | None = None
    final_eval_s: float | None = None


class Size(_Section):
    saved_bytes: int | None = None
    saved_mb: float | None = None
    what: str | None = None


class Environment(_Section):
    versions: dict[str, str | None] = Field(default_factory=dict)
    lock: str | None = None
    git: dict[str, Any] | None = None
    pid: int | None = None
    device: dict[str, Any] | None = None


class RunRecord(BaseModel):
    """One run's record (schema version 2). See docs/record.md for every section."""

    model_config = ConfigDict(extra="allow")  # a planner's or a plugin's own block (trial, protocol, ...)

    schema_version: Literal[3] = SCHEMA_VERSION
    run_id: str = Field(min_length=1)
    experiment: str | None = None
    label: str | None = None
    method: str | None = None
    seed: int | None = None
    status: Status
    error: str | None = None
    traceback: str | None = None
    task: TaskInfo = Field(default_factory=TaskInfo)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    config_hash: str | None = None
    data: DataInfo = Field(default_factory=DataInfo)
    model: ModelInfo = Field(default_factory=ModelInfo)
    metrics: Metrics = Field(default_factory=Metrics)
    params: ParamCounts = Field(default_factory=ParamCounts)
    memory: dict[str, Any] = Field(default_factory=dict)
    speed: Speed = Field(default_factory=Speed)
    time: Timing = Field(default_factory=Timing)
    size: Size = Field(default_factory=Size)
    env: Environment = Field(default_factory=Environment)
    # present only where the phase ran
    distributed: dict[str, Any] | None = None
    init_from: dict[str, Any] | None = None
    samples: dict[str, Any] | None = None
    predictions: dict[str, Any] | None = None
    forgetting: dict[str, Any] | None = None
    learning: dict[str, Any] | None = None
    artifacts: dict[str, str] | None = None
    trackers: dict[str, Any] | None = None
    trial: dict[str, Any] | None = None  # a search trial (peftlab/planners/optuna_search.py)
    protocol: dict[str, Any] | None = None  # a tuned protocol's run (peftlab/planners/tuned.py)

    def as_json(self) -> dict[str, Any]:
        """The record as the JSON object written to disk: the keys that were given, none added."""
        return self.model_dump(mode="json", exclude_unset=True)


# ---------------------------------------------------------------- what each phase returns


class Part(BaseModel):
    """What one phase of the recipe produced. `fragment` is the part of the record it fills (nested
    keys, merged into the record by `assemble`): a phase returns its part and writes nothing shared.
    What a phase hands in is made plain JSON first (numpy scalars, paths, NaN as null)."""

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, data: Any) -> Any:
        return plain(data) if isinstance(data, dict) else data

    def fragment(self) -> dict[str, Any]:
        raise NotImplementedError


class Tracked(Part):
    """Where each tracker (`loggers:`) put the run."""

    trackers: dict[str, Any]

    def fragment(self) -> dict[str, Any]:
        return {"trackers": self.trackers}


class SetupInfo(Part):
    """The setup phase: the device the run uses, and the launch's ranks under `train.distributed`."""

    device: dict[str, Any]
    distributed: dict[str, Any] | None = None

    def fragment(self) -> dict[str, Any]:
        out: dict[str, Any] = {"env": {"device": self.device}}
        if self.distributed is not None:
            out["distributed"] = self.distributed
        return out


class StartInfo(Part):
    """The start_from phase, when the run starts from an `init_from:` stage: the stage and its cost."""

    init_from: dict[str, Any]
    init_from_s: float

    def fragment(self) -> dict[str, Any]:
        return {"init_from": self.init_from, "time": {"init_from_s": self.init_from_s}}


class BuildInfo(Part):
    """The build phase: what trains (parameter counts), the model's type and dtype, resolved targets."""

    params: ParamCounts
    model_type: str | None = None
    dtype: str | None = None
    targets: dict[str, Any] = Field(default_factory=dict)  # merged into `hyperparameters`
    build_s: float
    calibrate_s: float | None = None

    def fragment(self) -> dict[str, Any]:
        time = (
            {"build_s": self.build_s}
            if self.calibrate_s is None
            else {"calibrate_s": self.calibrate_s, "build_s": self.build_s}
        )
        return {
            "params": self.params.model_dump(),
            "model": {"model_type": self.model_type, "dtype": self.dtype},
            "hyperparameters": self.targets,
            "time": time,
        }


class Evaluation(Part):
    """The evaluate phase: the task's final scores per split, and where the per-example outcomes went."""

    test: Scores
    validation: Scores | None = None
    final_eval_s: float
    samples: list[Any] | dict[str, Any] | None = None  # the test split's samples, when the task keeps some
    predictions: dict[str, Any] | None = None  # the predictions file beside the record
    # scores of the evaluation splits beside test (a preset's, e.g. MNLI's validation_mismatched), by name
    extra: dict[str, Scores] = {}

    def fragment(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metrics": {"test": self.test, "validation": self.validation, **self.extra},
            "time": {"final_eval_s": self.final_eval_s},
        }
        if self.samples is not None:
            out["samples"] = {"test": self.samples}
        if self.predictions is not None:
            out["predictions"] = self.predictions
        return out


class ProbeResults(Part):
    """The probes_after phase: what fine-tuning cost elsewhere (`forgetting`) and what it gained (`learning`)."""

    forgetting: dict[str, Any]
    learning: dict[str, Any] | None = None
    forgetting_s: float
    predictions: dict[str, Any] | None = None  # rewritten with the probes' per-example outcomes

    def fragment(self) -> dict[str, Any]:
        out: dict[str, Any] = {"forgetting": self.forgetting, "time": {"forgetting_s": self.forgetting_s}}
        if self.learning is not None:
            out["learning"] = self.learning
        if self.predictions is not None:
            out["predictions"] = self.predictions
        return out


class TrainingOutcome(Part):
    """The measure phase: the training outcome (steps, losses, timing) and what it cost (speed, memory)."""

    steps: int
    final_train_loss: float | None = None
    curve: list[dict[str, Any]] = Field(default_factory=list)
    train_s: float
    validation_s: float | None = None
    speed: Speed
    memory: dict[str, Any]
    samples_per_step: list[int] | None = None  # the global batch, under `train.distributed`

    def fragment(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metrics": {"final_train_loss": self.final_train_loss, "curve": self.curve},
            "speed": self.speed.model_dump(),
            "memory": self.memory,
            "time": {"train_s": self.train_s, "validation_s": self.validation_s, "steps": self.steps},
        }
        if self.samples_per_step is not None:
            out["distributed"] = {"samples_per_step": self.samples_per_step}
        return out


class PrunedOutcome(Part):
    """A search trial stopped by its pruner: the last intermediate validation, no test score."""

    validation: Scores | None = None
    final_train_loss: float | None = None
    curve: list[dict[str, Any]] = Field(default_factory=list)
    train_s: float
    steps: int

    def fragment(self) -> dict[str, Any]:
        metrics = {"test": None, "validation": self.validation, "final_train_loss": self.final_train_loss}
        return {"metrics": {**metrics, "curve": self.curve}, "time": {"train_s": self.train_s, "steps": self.steps}}


class Saved(Part):
    """The save phase: the size of the saved safetensors and where a kept adapter or model went."""

    size: Size
    artifacts: dict[str, str] | None = None

    def fragment(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": self.size.model_dump(exclude_unset=True)}
        if self.artifacts is not None:
            out["artifacts"] = self.artifacts
        return out


class Outcome(Part):
    """How the run ended, from the recipe itself."""

    status: Status
    error: str | None = None
    traceback: str | None = None
    total_s: float | None = None  # None: not timed (a run process that died without a record)
    finished_at: str | None = None

    def fragment(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "error": self.error}
        if self.traceback is not None:
            out["traceback"] = self.traceback
        if self.total_s is not None:
            out["time"] = {"total_s": self.total_s, "finished_at": self.finished_at}
        return out


def _merge(into: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key] = _merge(dict(into[key]), value)
        else:
            into[key] = value
    return into


def assemble(base: dict[str, Any], parts: list[Part]) -> RunRecord:
    """The record: `base` (what is known before the run, see recipe.base_record) with each part's
    fragment merged in, in the order the phases ran; validated (RecordError, one line)."""
    record = copy.deepcopy(base)
    for part in parts:
        _merge(record, part.fragment())
    record["schema_version"] = SCHEMA_VERSION
    return validate(plain(record), where=f"record {record.get('run_id')}")


def plain(value: Any) -> Any:
    """`value` as plain JSON: non-finite floats as null (JSON has none), numpy scalars as numbers, paths as text."""
    return json.loads(json.dumps(_finite(value), allow_nan=False, default=jsonable))


def jsonable(value: Any) -> Any:
    """`json.dump`'s fallback for what records hold besides plain JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return _finite(value.item())
        except (TypeError, ValueError):
            return value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---------------------------------------------------------------- versions


LEGACY_TASK = "classification"  # the task of every record written before `config.task` existed


def task_info(task: str | None, metric: str | None = None) -> dict[str, Any]:
    """The `task` block for a task name and its `data.metric` (nulls for a task this peftlab does not know)."""
    from peftlab.task_specs import get_task_spec

    if not task:
        return {"name": None, "primary": None, "direction": None}
    try:
        spec = get_task_spec(task, metric)
    except KeyError:
        return {"name": task, "primary": None, "direction": None}
    return {"name": task, "primary": spec.primary, "direction": spec.primary_metric.direction}


def _known_choice(task: str | None, metric: str | None) -> Any:
    """The TaskChoice for a record's task and `data.metric`, or None for a task (or choice) this peftlab lacks."""
    from peftlab.task_specs import resolve_task

    if not task:
        return None
    try:
        return resolve_task(task, metric)
    except KeyError:
        return None


def _config_task(record: dict[str, Any]) -> tuple[str | None, str | None]:
    config = record.get("config") or {}
    data = config.get("data") or {}
    return config.get("task"), data.get("metric") if isinstance(data, dict) else None


def upgrade_1_to_2(record: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: add the `task` block, derived from `config.task` and `config.data.metric`.

    Pure: returns a new dict, the input is left as it was. Every other key keeps its place and value.
    """
    out = copy.deepcopy(record)
    config = out.get("config") or {}
    data = config.get("data") or {}
    # a record from before `config.task` existed is a classification run: there was no other task then
    task = config.get("task") or LEGACY_TASK
    out["task"] = task_info(task, data.get("metric") if isinstance(data, dict) else None)
    out["schema_version"] = 2
    return out


def upgrade_2_to_3(record: dict[str, Any]) -> dict[str, Any]:
    """Version 2 -> 3: the `task` block also names its metric's resampling `statistic` and the `data.metric`
    `choice` behind it (from `config.data.metric`), so readers need no second look-up of the task.

    Pure: returns a new dict. The block's `name`, `primary` and `direction` keep their values; the
    statistic is the declared one of `primary` (None for a task or metric this peftlab does not know).
    """
    out = copy.deepcopy(record)
    block = dict(out.get("task") or {})
    task, choice = _config_task(out)
    known = _known_choice(block.get("name") or task, choice)
    same = known is not None and known.metric == block.get("primary")
    block["statistic"] = known.statistic if same else None
    block["choice"] = choice
    out["task"] = block
    out["schema_version"] = 3
    return out


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: upgrade_1_to_2, 2: upgrade_2_to_3}


def upgrade(record: dict[str, Any], where: str = "record") -> dict[str, Any]:
    """`record` at SCHEMA_VERSION, through each step of UPGRADES; RecordError (one line) for a version not read here."""
    version = record.get("schema_version", 1)  # the first records carried no version
    if not isinstance(version, int) or isinstance(version, bool):
        reads = f"this peftlab reads 1..{SCHEMA_VERSION}"
        raise RecordError(f"{where}: schema_version {version!r} is not a number; {reads}")
    if version > SCHEMA_VERSION or (version < SCHEMA_VERSION and version not in UPGRADES):
        raise RecordError(
            f"{where}: schema_version {version} is not one this peftlab reads (1..{SCHEMA_VERSION}); "
            "read it with the peftlab that wrote it (its env.versions.peftlab)"
        )
    while version < SCHEMA_VERSION:
        record = UPGRADES[version](record)
        version = record["schema_version"]
    return record


def validate(record: dict[str, Any], where: str = "record") -> RunRecord:
    """The record at the current version as a model; RecordError (one line) naming the first bad key."""
    try:
        return RunRecord.model_validate(upgrade(record, where))
    except ValidationError as err:
        raise RecordError(f"{where}: {_first_error(err)}") from None


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {first['msg']}, got {first.get('input')!r:.60}{more}"


__all__ = [
    "FINISHED",
    "SCHEMA_VERSION",
    "STATUSES",
    "BuildInfo",
    "DataInfo",
    "Environment",
    "Evaluation",
    "Metrics",
    "ModelInfo",
    "Outcome",
    "ParamCounts",
    "Part",
    "ProbeResults",
    "PrunedOutcome",
    "RecordError",
    "RunRecord",
    "Saved",
    "Scores",
    "SetupInfo",
    "Size",
    "Speed",
    "StartInfo",
    "TaskInfo",
    "Timing",
    "Tracked",
    "TrainingOutcome",
    "assemble",
    "jsonable",
    "plain",
    "task_info",
    "upgrade",
    "upgrade_1_to_2",
    "upgrade_2_to_3",
    "validate",
]
