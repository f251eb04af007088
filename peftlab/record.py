"""The run record as a typed, versioned model: the one contract every layer shares.

A record is written by the recipe (peftlab/recipe.py) and read by the planners, the reports and
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
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 2
# outcomes that a re-run would reproduce; `failed` and `killed` (a SIGKILL with no sign of the OOM
# killer, see peftlab/oom.py) are retried. `pruned`: a search trial stopped early by its pruner on
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
    """What the run was scored by (new in version 2): the task and its primary metric with its direction."""

    name: str | None = None
    primary: str | None = None
    direction: Literal["max", "min"] | None = None


class DataInfo(_Section):
    source: str | None = None
    name: str | None = None
    citation: str | None = None
    fingerprint: str | None = None
    sizes: dict[str, int] = Field(default_factory=dict)
    num_labels: int | None = None
    label_names: list[str] = Field(default_factory=list)
    max_length: int | None = None


class ModelInfo(_Section):
    """Where the weights came from (`ModelSource.as_dict`) and what was built from them."""

    spec: str | None = None
    kind: str | None = None
    location: str | None = None
    origin: str | None = None
    model_type: str | None = None
    dtype: str | None = None


class ParamCounts(_Section):
    trainable: int | None = None
    total: int | None = None
    trainable_pct: float | None = None


class BuildInfo(BaseModel):
    """What the build phase produced: the parameter counts, the model's type and dtype, resolved targets."""

    params: ParamCounts
    model_type: str | None = None
    dtype: str | None = None
    targets: dict[str, Any] = Field(default_factory=dict)  # merged into `hyperparameters`
    build_s: float
    calibrate_s: float | None = None


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

    schema_version: Literal[2] = SCHEMA_VERSION
    run_id: str = Field(min_length=1)
    experiment: str | None = None
    label: str | None = None
    method: str
    seed: int
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


# ---------------------------------------------------------------- versions


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


def upgrade_1_to_2(record: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: add the `task` block, derived from `config.task` and `config.data.metric`.

    Pure: returns a new dict, the input is left as it was. Every other key keeps its place and value.
    """
    out = copy.deepcopy(record)
    config = out.get("config") or {}
    data = config.get("data") or {}
    out["task"] = task_info(config.get("task"), data.get("metric") if isinstance(data, dict) else None)
    out["schema_version"] = 2
    return out


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: upgrade_1_to_2}


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
    "Metrics",
    "ModelInfo",
    "ParamCounts",
    "RecordError",
    "RunRecord",
    "Scores",
    "Size",
    "Speed",
    "TaskInfo",
    "Timing",
    "task_info",
    "upgrade",
    "upgrade_1_to_2",
    "validate",
]
