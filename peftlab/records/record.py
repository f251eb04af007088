"""The run record as a typed, versioned model: the one contract every layer shares.

A record is written by the recipe (peftlab/runtime/recipe.py) and read by the planners, the reports and
the paper. Its JSON keys are the public paths every reader uses (`metrics.test.accuracy`,
`config.train.steps`), so the model keeps them as they are and types what each phase produces:

- build info (`params`, `model`, `hyperparameters`, `size`),
- the training outcome (`time.steps`, `metrics.final_train_loss`, `metrics.curve`, `speed`, `memory`),
- the evaluation result (`metrics.<split>`: an open mapping of metric name to value, so that any
  task's metrics and extra splits such as `validation_mismatched` fit),
- probe results (`forgetting`, `learning`), the environment (`env`) and the outcome (`status`, `error`).

Every section is a model that names its keys; an unknown key is refused when a record is written
(a typo, or a measurement that must be added here first). Only what is open by nature stays a
mapping: the scores per split (any task's metrics), the resolved config (its schema is the
experiment's), the method's hyperparameters, a probe's own detail and a tracker's location. A phase
returns a typed part (`BuildInfo`, `Evaluation`, ...) that fills its sections; `assemble` folds the
parts into one `RunRecord`, and a planner's block is derived from that record as one more part,
so nothing patches a record after it is made. `schema_version` says which layout a file has;
`upgrade` reads every older version this peftlab knows through one explicit, pure function per
step, and refuses a newer one.

The model imports nothing heavy (pydantic only), so config, planners and reports may all read it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 5
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
    """A record section: every key named and typed; an unknown key is refused (a typo, or a new
    measurement that must be added here, to docs/record.md and, if it changes a layout, to UPGRADES)."""

    model_config = ConfigDict(extra="forbid")


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
    kind: str | None = None  # an instruction-tuning source's kind (peftlab/data/instructions.py)
    instruction: str | None = None


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
    adalora_pruned: int | None = None  # AdaLoRA: parameters held at init_r in training, masked by the end


class Metrics(BaseModel):
    """The evaluation result and the training outcome's losses.

    `test` and `validation` are the task's scores on each split (None: not evaluated, e.g. a pruned
    trial's test). Further splits (`validation_mismatched`) are the one kind of further key this
    section takes, each holding the same name -> value mapping.
    """

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Scores | None] = Field(init=False)

    test: Scores | None = None
    validation: Scores | None = None
    final_train_loss: float | None = None
    curve: list[dict[str, Any]] = Field(default_factory=list)
    # a sampling task (grpo): each step's rollout (reward, its spread in the groups, correct share, format
    # rate, zero-std share, answer length, entropy, kl), and the base model's probe rollout before step 1
    rollout: list[dict[str, Any]] = Field(default_factory=list)
    base_rollout: dict[str, Any] | None = None

    def splits(self) -> dict[str, Scores | None]:
        """Every evaluated split by name: test, validation and any further one."""
        return {"test": self.test, "validation": self.validation, **(self.model_extra or {})}


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
    # a sampling task (grpo): tokens sampled per second of sampling, and the share of the step it took;
    # train_tokens_per_s is then over the rest of the step (the update)
    generation_tokens_per_s: float | None = None
    generation_share: float | None = None


class TrainingState(_Section):
    """What training itself holds (CPU, peftlab/runtime/measure.py `training_state`), in MB."""

    weights_mb: float | None = None
    gradients_mb: float | None = None
    optimizer_mb: float | None = None
    activations_mb: float | None = None
    total_mb: float | None = None
    measure: str | None = None


class Memory(_Section):
    """Peaks per phase (`MemoryMeter.record`): CPU peak RSS or CUDA allocated/reserved, in MB."""

    device: str | None = None
    peak_mb: float | None = None
    measure: str | None = None
    baseline_rss_mb: float | None = None
    baseline_allocated_mb: float | None = None
    baseline_reserved_mb: float | None = None
    train_peak_rss_mb: float | None = None
    train_peak_allocated_mb: float | None = None
    train_peak_reserved_mb: float | None = None
    eval_peak_rss_mb: float | None = None
    eval_peak_allocated_mb: float | None = None
    eval_peak_reserved_mb: float | None = None
    train_over_baseline_mb: float | None = None
    training_state: TrainingState | None = None
    peak_mb_rank0: float | None = None  # under train.distributed: rank 0's own peak, every rank's below
    per_rank: list[Memory] | None = None


class Timing(_Section):
    """Wall times of the phases (seconds) and the run's start and end (ISO 8601, UTC)."""

    started_at: str | None = None
    finished_at: str | None = None
    total_s: float | None = None
    steps: int | None = None
    build_s: float | None = None
    calibrate_s: float | None = None
    init_from_s: float | None = None
    train_s: float | None = None
    validation_s: float | None = None
    final_eval_s: float | None = None
    forgetting_s: float | None = None


class Size(_Section):
    saved_bytes: int | None = None
    saved_mb: float | None = None
    what: str | None = None


class GitState(_Section):
    sha: str | None = None
    dirty: bool | None = None


class DeviceInfo(_Section):
    """The device the run used (`environment.device_info`)."""

    type: str | None = None
    name: str | None = None
    cpu_count: int | None = None
    torch_threads: int | None = None
    python: str | None = None
    platform: str | None = None
    gpu_memory_mb: int | None = None
    capability: str | None = None
    cuda: str | None = None
    bf16: bool | None = None


class Environment(_Section):
    versions: dict[str, str | None] = Field(default_factory=dict)
    lock: str | None = None
    git: GitState | None = None
    pid: int | None = None
    device: DeviceInfo | None = None


class Distributed(_Section):
    """A run under `train.distributed` (`Ranks.describe`), and the global batch each step saw."""

    mode: str | None = None
    world_size: int | None = None
    backend: str | None = None
    global_batch_size: int | None = None
    per_rank_batch_size: int | None = None
    samples_per_step: list[int] | None = None


class StageSummary(_Section):
    """An `init_from:` stage (`stages.stage_summary`): where its model is, its task-A outcome."""

    checkpoint: str
    accuracy: float | None = None
    steps: int | None = None
    final_train_loss: float | None = None
    build_s: float | None = None


class Samples(_Section):
    """A few test examples with the model's outputs, when the task keeps some."""

    test: list[Any] | dict[str, Any] | None = None


class PredictionsFile(_Section):
    """The per-example outcomes beside the record (`predictions.write_predictions`)."""

    file: str
    sha256: str | None = None
    format: int | str | None = None
    splits: dict[str, int] = Field(default_factory=dict)


class ProbeOutcome(_Section):
    """One forgetting probe: its score before and after fine-tuning, and the loss (`delta`)."""

    before: float | None = None
    after: float | None = None
    delta: float | None = None
    metric: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)  # the probe's own scores, before and after
    before_s: float | None = None
    after_s: float | None = None
    stage_a: StageSummary | None = None  # previous_task after an `init_from:` stage


class Learning(_Section):
    """The target task's chosen metric before and after fine-tuning, and the gain."""

    metric: str | None = None
    base: float | None = None
    after: float | None = None
    gain: float | None = None
    baseline: str | None = None


class Artifacts(_Section):
    adapter: str | None = None
    full_model: str | None = None


class Trial(_Section):
    """A search trial (`optuna_search.trial_block`): the study's facts and the outcome read off the record."""

    number: int
    study: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    state: str | None = None
    values: dict[str, float] | None = None
    value: float | None = None  # one objective's value, as earlier searches wrote it (the report still reads it)
    directions: dict[str, str] = Field(default_factory=dict)
    taken_over: bool | None = None  # the trial was failed and retried while this run went on


class Protocol(_Section):
    """A tuned protocol's final run (`tuned.protocol_block`): how its configuration was chosen."""

    tuned: bool
    why: str | None = None  # not tuned: why
    chosen: dict[str, Any] | None = None
    study: str | None = None
    trials: int | None = None
    best_trial: int | None = None
    objective: str | None = None
    value: float | None = None
    seed: int | None = None
    as_chosen: bool | None = None


class RunRecord(_Section):
    """One run's record (schema version 5). See docs/record.md for every section.

    Strict: a key no section names is refused when written. A file of an older version is read
    through `upgrade`, which keeps what it does not model under `unmodelled` (nothing is lost).
    """

    schema_version: Literal[5] = SCHEMA_VERSION
    run_id: str = Field(min_length=1)
    experiment: str | None = None
    label: str | None = None
    method: str | None = None
    seed: int | None = None
    status: Status
    error: str | None = None
    traceback: str | None = None
    task: TaskInfo = Field(default_factory=TaskInfo)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)  # lr and the method's own params, by name
    config: dict[str, Any] = Field(default_factory=dict)  # the resolved experiment (its schema: peftlab/config)
    config_hash: str | None = None
    data: DataInfo = Field(default_factory=DataInfo)
    model: ModelInfo = Field(default_factory=ModelInfo)
    metrics: Metrics = Field(default_factory=Metrics)
    params: ParamCounts = Field(default_factory=ParamCounts)
    memory: Memory = Field(default_factory=Memory)
    speed: Speed = Field(default_factory=Speed)
    time: Timing = Field(default_factory=Timing)
    size: Size = Field(default_factory=Size)
    env: Environment = Field(default_factory=Environment)
    # present only where the phase ran
    distributed: Distributed | None = None
    init_from: StageSummary | None = None
    samples: Samples | None = None
    predictions: PredictionsFile | None = None
    forgetting: dict[str, ProbeOutcome] | None = None  # probe name -> outcome
    learning: Learning | None = None
    artifacts: Artifacts | None = None
    trackers: dict[str, dict[str, Any]] | None = None  # tracker name -> where it put the run (the sink's own keys)
    trial: Trial | None = None
    protocol: Protocol | None = None
    unmodelled: dict[str, Any] | None = None  # an older file's keys no section names, by dotted path

    @property
    def finished(self) -> bool:
        """Whether a re-run would reproduce this outcome (FINISHED), so the run is not repeated."""
        return self.status in FINISHED

    def as_json(self) -> dict[str, Any]:
        """The record as the JSON object written to disk: the keys that were given, none added."""
        return self.model_dump(mode="json", exclude_unset=True)

    def at(self, path: str) -> Any:
        """The value at a dotted JSON path (`metrics.validation.accuracy`, an objective's); None where absent."""
        node: Any = self.as_json()
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node


# ---------------------------------------------------------------- what each phase returns


def _set(section: BaseModel, /, **changes: Any) -> Any:
    """`section` with `changes` (marked as given, so they are written): how a part fills its sections."""
    return section.model_copy(update=changes)


class Part(BaseModel):
    """What one phase of the recipe produced, typed. `fill` returns the record with the sections this
    part owns filled in: a phase returns its part and writes nothing shared. What a phase hands in is
    made plain JSON first (numpy scalars, paths, NaN as null)."""

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, data: Any) -> Any:
        return plain(data) if isinstance(data, dict) else data

    def fill(self, record: RunRecord) -> RunRecord:
        raise NotImplementedError


class Tracked(Part):
    """Where each tracker (`loggers:`) put the run."""

    trackers: dict[str, dict[str, Any]]

    def fill(self, record: RunRecord) -> RunRecord:
        return _set(record, trackers=self.trackers)


class SetupInfo(Part):
    """The setup phase: the device the run uses, and the launch's ranks under `train.distributed`."""

    device: DeviceInfo
    distributed: Distributed | None = None

    def fill(self, record: RunRecord) -> RunRecord:
        record = _set(record, env=_set(record.env, device=self.device))
        return record if self.distributed is None else _set(record, distributed=self.distributed)


class StartInfo(Part):
    """The start_from phase, when the run starts from an `init_from:` stage: the stage and its cost."""

    init_from: StageSummary
    init_from_s: float

    def fill(self, record: RunRecord) -> RunRecord:
        return _set(record, init_from=self.init_from, time=_set(record.time, init_from_s=self.init_from_s))


class BuildInfo(Part):
    """The build phase: what trains (parameter counts), the model's type and dtype, resolved targets."""

    params: ParamCounts
    model_type: str | None = None
    dtype: str | None = None
    targets: dict[str, Any] = Field(default_factory=dict)  # merged into `hyperparameters`
    build_s: float
    calibrate_s: float | None = None

    def fill(self, record: RunRecord) -> RunRecord:
        time = (
            _set(record.time, build_s=self.build_s)
            if self.calibrate_s is None
            else _set(record.time, calibrate_s=self.calibrate_s, build_s=self.build_s)
        )
        return _set(
            record,
            params=self.params,
            model=_set(record.model, model_type=self.model_type, dtype=self.dtype),
            hyperparameters={**record.hyperparameters, **self.targets},
            time=time,
        )


class Evaluation(Part):
    """The evaluate phase: the task's final scores per split, and where the per-example outcomes went."""

    test: Scores
    validation: Scores | None = None
    final_eval_s: float
    samples: list[Any] | dict[str, Any] | None = None  # the test split's samples, when the task keeps some
    predictions: PredictionsFile | None = None  # the predictions file beside the record
    # scores of the evaluation splits beside test (a preset's, e.g. MNLI's validation_mismatched), by name
    extra: dict[str, Scores] = {}

    def fill(self, record: RunRecord) -> RunRecord:
        metrics = _set(record.metrics, test=self.test, validation=self.validation)
        if self.extra:  # further splits are the metrics section's open keys
            metrics = Metrics.model_validate({**metrics.model_dump(exclude_unset=True), **self.extra})
        record = _set(record, metrics=metrics, time=_set(record.time, final_eval_s=self.final_eval_s))
        if self.samples is not None:
            record = _set(record, samples=Samples(test=self.samples))
        if self.predictions is not None:
            record = _set(record, predictions=self.predictions)
        return record


class ProbeResults(Part):
    """The probes_after phase: what fine-tuning cost elsewhere (`forgetting`) and what it gained (`learning`)."""

    forgetting: dict[str, ProbeOutcome]
    learning: Learning | None = None
    forgetting_s: float
    predictions: PredictionsFile | None = None  # rewritten with the probes' per-example outcomes

    def fill(self, record: RunRecord) -> RunRecord:
        record = _set(record, forgetting=self.forgetting, time=_set(record.time, forgetting_s=self.forgetting_s))
        if self.learning is not None:
            record = _set(record, learning=self.learning)
        if self.predictions is not None:
            record = _set(record, predictions=self.predictions)
        return record


class TrainingOutcome(Part):
    """The measure phase: the training outcome (steps, losses, timing) and what it cost (speed, memory)."""

    steps: int
    final_train_loss: float | None = None
    curve: list[dict[str, Any]] = Field(default_factory=list)
    train_s: float
    validation_s: float | None = None
    speed: Speed
    memory: Memory
    samples_per_step: list[int] | None = None  # the global batch, under `train.distributed`
    rollout: list[dict[str, Any]] = Field(default_factory=list)  # a sampling task's per-step rollouts
    base_rollout: dict[str, Any] | None = None

    def fill(self, record: RunRecord) -> RunRecord:
        metrics = _set(record.metrics, final_train_loss=self.final_train_loss, curve=self.curve)
        if self.rollout or self.base_rollout:
            metrics = _set(metrics, rollout=self.rollout, base_rollout=self.base_rollout)
        record = _set(
            record,
            metrics=metrics,
            speed=self.speed,
            memory=self.memory,
            time=_set(record.time, train_s=self.train_s, validation_s=self.validation_s, steps=self.steps),
        )
        if self.samples_per_step is not None:
            ranks = record.distributed or Distributed()
            record = _set(record, distributed=_set(ranks, samples_per_step=self.samples_per_step))
        return record


class PrunedOutcome(Part):
    """A search trial stopped by its pruner: the last intermediate validation, no test score."""

    validation: Scores | None = None
    final_train_loss: float | None = None
    curve: list[dict[str, Any]] = Field(default_factory=list)
    train_s: float
    steps: int

    def fill(self, record: RunRecord) -> RunRecord:
        metrics = _set(
            record.metrics,
            test=None,
            validation=self.validation,
            final_train_loss=self.final_train_loss,
            curve=self.curve,
        )
        return _set(record, metrics=metrics, time=_set(record.time, train_s=self.train_s, steps=self.steps))


class Saved(Part):
    """The save phase: the size of the saved safetensors and where a kept adapter or model went."""

    size: Size
    artifacts: Artifacts | None = None

    def fill(self, record: RunRecord) -> RunRecord:
        record = _set(record, size=self.size)
        return record if self.artifacts is None else _set(record, artifacts=self.artifacts)


class Outcome(Part):
    """How the run ended, from the recipe itself (or, for a run process that died, from its parent)."""

    status: Status
    error: str | None = None
    traceback: str | None = None
    total_s: float | None = None  # None: not timed (a run process that died without a record)
    finished_at: str | None = None

    def fill(self, record: RunRecord) -> RunRecord:
        record = _set(record, status=self.status, error=self.error)
        if self.traceback is not None:
            record = _set(record, traceback=self.traceback)
        if self.total_s is not None:
            record = _set(record, time=_set(record.time, total_s=self.total_s, finished_at=self.finished_at))
        return record


class TrialPart(Part):
    """A search planner's block, derived from the assembled record (`OnRecord`, peftlab/planners/base.py)."""

    trial: Trial

    def fill(self, record: RunRecord) -> RunRecord:
        return _set(record, trial=self.trial)


class ProtocolPart(Part):
    """A tuned protocol's block, derived from the assembled record (`OnRecord`)."""

    protocol: Protocol

    def fill(self, record: RunRecord) -> RunRecord:
        return _set(record, protocol=self.protocol)


# a planner's hook: its own block, a pure function of the record the phases made
Derive = Callable[[RunRecord], Part]


def assemble(base: RunRecord, parts: list[Part], derive: Derive | None = None) -> RunRecord:
    """The record: `base` (what is known before the run, see recipe.base_record) with each part's
    sections filled in, in the order the phases ran, then the planner's block `derive` makes of that
    record; validated once (RecordError, one line)."""
    record = base
    for part in parts:
        record = part.fill(record)
    if derive is not None:
        record = derive(_checked(record)).fill(record)
    return _checked(record)


def _checked(record: RunRecord) -> RunRecord:
    """`record` validated as written (a part's fill copies without validating): RecordError, one line."""
    return validate(plain(record.as_json()), where=f"record {record.run_id}")


def plain(value: Any) -> Any:
    """`value` as plain JSON: non-finite floats as null (JSON has none), numpy scalars as numbers, paths as text."""
    return json.loads(json.dumps(_finite(value), allow_nan=False, default=jsonable))


def jsonable(value: Any) -> Any:
    """`json.dump`'s fallback for what records hold besides plain JSON."""
    if isinstance(value, BaseModel):  # the keys that were given, as written
        return value.model_dump(mode="json", exclude_unset=True)
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


# the sections of version 4 whose keys are all named, by their path (`*`: any key of a mapping)
_STRICT: dict[str, type[BaseModel]] = {
    "": RunRecord,
    "task": TaskInfo,
    "data": DataInfo,
    "model": ModelInfo,
    "params": ParamCounts,
    "memory": Memory,
    "memory.training_state": TrainingState,
    "speed": Speed,
    "time": Timing,
    "size": Size,
    "env": Environment,
    "env.git": GitState,
    "env.device": DeviceInfo,
    "distributed": Distributed,
    "init_from": StageSummary,
    "samples": Samples,
    "predictions": PredictionsFile,
    "forgetting.*": ProbeOutcome,
    "forgetting.*.stage_a": StageSummary,
    "learning": Learning,
    "artifacts": Artifacts,
    "trial": Trial,
    "protocol": Protocol,
}


def _named_only(node: dict[str, Any], path: str, pattern: str, unmodelled: dict[str, Any]) -> dict[str, Any]:
    """`node` (at `path`, matching `pattern` in _STRICT) with the keys its section lacks moved to `unmodelled`."""
    names = _STRICT[pattern].model_fields
    kept: dict[str, Any] = {}
    for key, value in node.items():
        where = f"{path}.{key}" if path else key
        if key not in names:
            unmodelled[where] = value
            continue
        below = f"{pattern}.{key}" if pattern else key
        if isinstance(value, dict) and below in _STRICT:
            value = _named_only(value, where, below, unmodelled)
        elif isinstance(value, dict) and f"{below}.*" in _STRICT:
            value = {
                k: _named_only(v, f"{where}.{k}", f"{below}.*", unmodelled) if isinstance(v, dict) else v
                for k, v in value.items()
            }
        kept[key] = value
    return kept


def upgrade_3_to_4(record: dict[str, Any]) -> dict[str, Any]:
    """Version 3 -> 4: every section is strict (an unknown key is refused when written).

    The JSON paths are those of version 3. A key an older peftlab or a plugin added that no section
    of version 4 names moves, with its value, to `unmodelled` under its dotted path (`memory.foo`),
    so an older file still reads and nothing in it is lost. Pure: returns a new dict.
    """
    out = copy.deepcopy(record)
    unmodelled: dict[str, Any] = dict(out.pop("unmodelled", None) or {})
    per_rank = (out.get("memory") or {}).get("per_rank") if isinstance(out.get("memory"), dict) else None
    out = _named_only(out, "", "", unmodelled)
    if isinstance(per_rank, list) and "memory" in out:  # each rank's peaks have the memory section's keys
        out["memory"]["per_rank"] = [
            _named_only(r, f"memory.per_rank.{i}", "memory", unmodelled) if isinstance(r, dict) else r
            for i, r in enumerate(per_rank)
        ]
    if unmodelled:
        out["unmodelled"] = unmodelled
    out["schema_version"] = 4
    return out


def upgrade_4_to_5(record: dict[str, Any]) -> dict[str, Any]:
    """Version 4 -> 5: a sampling task's rollouts (`metrics.rollout`, `metrics.base_rollout`) and generation
    speed (`speed.generation_tokens_per_s`, `speed.generation_share`) are named; a version-4 file has none,
    so only the version changes. Pure: returns a new dict."""
    out = copy.deepcopy(record)
    out["schema_version"] = 5
    return out


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: upgrade_1_to_2,
    2: upgrade_2_to_3,
    3: upgrade_3_to_4,
    4: upgrade_4_to_5,
}


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
    "Artifacts",
    "BuildInfo",
    "DataInfo",
    "Derive",
    "DeviceInfo",
    "Distributed",
    "Environment",
    "Evaluation",
    "GitState",
    "Learning",
    "Memory",
    "Metrics",
    "ModelInfo",
    "Outcome",
    "ParamCounts",
    "Part",
    "PredictionsFile",
    "ProbeOutcome",
    "ProbeResults",
    "Protocol",
    "ProtocolPart",
    "PrunedOutcome",
    "RecordError",
    "RunRecord",
    "Samples",
    "Saved",
    "Scores",
    "SetupInfo",
    "Size",
    "Speed",
    "StageSummary",
    "StartInfo",
    "TaskInfo",
    "Timing",
    "Tracked",
    "TrainingOutcome",
    "TrainingState",
    "Trial",
    "TrialPart",
    "assemble",
    "jsonable",
    "plain",
    "task_info",
    "upgrade",
    "upgrade_1_to_2",
    "upgrade_2_to_3",
    "upgrade_3_to_4",
    "validate",
]
