"""One run as a recipe: setup → start_from → build → probes before → train → evaluate → probes after → measure → save.

Each phase is a short function over `Run`, the run in progress, and the recipe is the list of
phases read top to bottom (torchtune-style). A phase returns what it produced as a typed part
(peftlab/records/record.py: `BuildInfo`, `Evaluation`, `ProbeResults`, `TrainingOutcome`, ...) or None;
`Run` carries only what later phases need (the model, the device, the scores). The recipe
assembles the typed record (`RunRecord`) from its base and the parts at the end, with the planner's
block derived from it, validated once, whatever the outcome; nothing patches it afterwards.
The training loop itself stays in train.py; the plugins a phase uses are found in their
registries: methods/, tasks/, probes/.

`execute_run` always writes a record, whatever happens (status ok / diverged / oom / pruned /
failed): a failing run is a result, and the experiment goes on.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peftlab.config import computed_config
from peftlab.records.record import (
    Artifacts,
    BuildInfo,
    DataInfo,
    Environment,
    Evaluation,
    Memory,
    Metrics,
    ModelInfo,
    Outcome,
    ParamCounts,
    Part,
    PredictionsFile,
    ProbeResults,
    PrunedOutcome,
    RecordError,
    RunRecord,
    Saved,
    SetupInfo,
    Size,
    Speed,
    StartInfo,
    TaskInfo,
    Timing,
    Tracked,
    TrainingOutcome,
    assemble,
    plain,
)
from peftlab.records.results import write_record

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from torch import nn

    from peftlab.config.entries import TrainConfig
    from peftlab.loggers.base import Trackers
    from peftlab.methods.registry import Method
    from peftlab.planners.base import OnRecord, Report, RunSpec
    from peftlab.probes.suite import RunProbes
    from peftlab.runtime.distributed import Ranks
    from peftlab.runtime.measure import MemoryMeter
    from peftlab.runtime.models import ModelSource
    from peftlab.runtime.train import TrainOutcome
    from peftlab.runtime.workspace import Workspace
    from peftlab.tasks import EvalContext


def execute_run(
    ws: Workspace,
    spec: RunSpec,
    position: tuple[int, int] = (1, 1),
    quiet: bool = False,
    *,
    report: Report | None = None,
    on_record: OnRecord | None = None,
    threads: int | None = None,
) -> RunRecord:
    """Make one run through the phases and write its record, whatever the outcome.

    `report` is handed to the loop (a search's pruner); `on_record` derives the planner's own
    block (a trial's, a protocol's) from the record the phases made, one more part of its assembly;
    `threads` is the executor's share of the cores when `train.threads` is unset.
    """
    base = base_record(ws, spec)
    started = time.perf_counter()
    trackers, parts = _open_trackers(ws, spec, base), []
    if trackers is not None:
        parts.append(Tracked(trackers=trackers.where()))  # where to find the run in each tracker
    try:
        run = Run(ws, spec, position, quiet, report, threads, trackers)
        for phase in PHASES:
            part = phase(run)
            if part is not None:
                parts.append(part)
        status, error, trace = "ok", None, None
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failing run is a result; the experiment goes on
        status, error, trace, part = _ending(err)
        if part is not None:
            parts.append(part)
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    total_s = time.perf_counter() - started
    ended = Outcome(status=status, error=error, traceback=trace, total_s=total_s, finished_at=finished)
    record = _assembled(base, parts, ended, on_record)
    _publish(ws, record, trackers)
    _stop_launch_on_failure(ws, record)
    return record


def _assembled(base: RunRecord, parts: list[Part], ended: Outcome, derive: OnRecord | None) -> RunRecord:
    """The record from its base and the phases' parts; a run whose parts make no valid record failed, saying why."""
    try:
        return assemble(base, [*parts, ended], derive)
    except RecordError as err:
        failed = Outcome(status="failed", error=str(err), total_s=ended.total_s, finished_at=ended.finished_at)
        return assemble(base, [failed], derive)


def ended_record(ws: Workspace, spec: RunSpec, ended: Outcome, derive: OnRecord | None = None) -> RunRecord:
    """The record of a run that ended before its phases made one (its process was killed or exited):
    what was known before it started, how it ended, and the planner's block; a valid typed record."""
    return _assembled(base_record(ws, spec), [], ended, derive)


def _ending(err: Exception) -> tuple[str, str | None, str | None, Part | None]:
    """How an exception ends a run: (status, error, traceback, the part measured before it, if any)."""
    from peftlab.runtime.train import Diverged, Pruned

    if isinstance(err, Diverged):
        return "diverged", str(err), None, None
    if isinstance(err, Pruned):  # keep what was measured before the pruner stopped it
        return "pruned", str(err), None, pruned_outcome(err.outcome)
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return "oom" if _is_oom(err) else "failed", f"{type(err).__name__}: {first}", traceback.format_exc(limit=12), None


@dataclass
class Run:
    """One run in progress: what each phase hands on to the next."""

    ws: Workspace
    spec: RunSpec
    position: tuple[int, int]
    quiet: bool
    report: Report | None = None
    threads: int | None = None
    trackers: Trackers | None = None  # when the experiment has a `loggers:` list (rank 0 only)
    # each field below is set by the phase named, and read only by later ones
    method: Method = field(init=False)  # setup
    params: DataclassInstance = field(init=False)  # setup: the method's params dataclass
    device: str = "cpu"  # setup
    meter: MemoryMeter = field(init=False)  # setup
    eval_ctx: EvalContext = field(init=False)  # setup
    ranks: Ranks | None = None  # setup, under train.distributed (docs/distributed.md)
    source: ModelSource = field(init=False)  # start_from: the model source the run starts from
    checkpoint: Path | None = None  # start_from: the `init_from:` stage's folder, when the run starts from one
    load_kwargs: dict[str, Any] = field(default_factory=dict)  # build
    model: nn.Module = field(init=False)  # build
    forward_model: nn.Module = field(init=False)  # build: the model, compiled when train.compile
    train_model: nn.Module | None = None  # build: under train.distributed, DDP's wrapper or FSDP's sharded model
    probes: RunProbes | None = None  # probes_before, when the experiment has a `forgetting:` list
    outcome: TrainOutcome = field(init=False)  # train
    test: dict[str, Any] = field(default_factory=dict)  # evaluate
    validation: dict[str, Any] | None = None  # evaluate
    eval_s: float = 0.0  # evaluate
    kept: dict[str, Any] = field(default_factory=dict)  # the latest per-example outcomes of each split
    base_rollout: dict[str, Any] | None = None  # train: a sampling task's probe rollout of the base model

    @property
    def cfg(self) -> TrainConfig:
        return self.ws.experiment.train

    def evaluate(self, split: str, model: nn.Module | None = None) -> dict[str, Any]:
        """The task's evaluation of `model` (default: the model being trained) on a tokenised split."""
        on = model if model is not None else self.forward_model
        scores = self.ws.task.evaluate(on, self.ws.splits[split], self.eval_ctx)
        self.kept[split] = scores.pop("examples", None)  # for the predictions file beside the record
        return scores


# ---------------------------------------------------------------- the phases


def setup(run: Run) -> SetupInfo:
    """Method, device, memory meter, evaluation context."""
    import torch

    from peftlab.methods import get_method
    from peftlab.records.environment import device_info, resolve_device
    from peftlab.runtime.measure import MemoryMeter
    from peftlab.runtime.train import autocast_factory
    from peftlab.tasks import EvalContext

    ws, cfg = run.ws, run.cfg
    run.method = get_method(run.spec.method)
    run.params = run.method.params(**run.spec.params)
    if cfg.threads or run.threads:
        torch.set_num_threads(cfg.threads or run.threads)
    run.device = resolve_device(cfg.device)
    distributed = None
    if cfg.distributed:  # one run over every process of the launch; every rank has planned before any writes
        from peftlab.runtime.distributed import start

        run.ranks = start(cfg.distributed, run.device)
        run.device = run.ranks.device
        run.ranks.barrier()
        distributed = run.ranks.describe(cfg.batch_size)
    run.meter = MemoryMeter(run.device)
    run.eval_ctx = EvalContext(
        batch_size=cfg.eval_batch_size,
        device=run.device,
        pad_id=ws.pad_id,
        autocast=autocast_factory(run.device, cfg.precision),
        padding_side=getattr(ws.tokenizer, "padding_side", "right"),
        tokenizer=ws.tokenizer,
        label_names=tuple(ws.data.label_names),
        max_new_tokens=ws.experiment.data.max_new_tokens,
        metric=run.spec.task.choice,  # `data.metric`, as resolved into the run spec
        answer_extractor=ws.experiment.data.answer_extractor,
        rl=ws.experiment.rl,
    )
    return SetupInfo(device=device_info(run.device), distributed=distributed)


def start_from(run: Run) -> StartInfo | None:
    """The model source: the experiment's model, or the `init_from:` stage's (trained by the first run that needs it).

    The run's own seed is set after the stage, so a run that trained stage A computes exactly
    what a run that read it from the cache computes.
    """
    from transformers import set_seed

    from peftlab.runtime.stages import stage_summary

    ws = run.ws
    run.source, started = ws.model_source, None
    if ws.stage is not None:
        t0 = time.perf_counter()
        run.source, run.checkpoint = ws.stage.start(ws.model_source, run.spec.seed, run.device, quiet=run.quiet)
        started = StartInfo(init_from=stage_summary(run.checkpoint), init_from_s=time.perf_counter() - t0)
    set_seed(run.spec.seed)
    return started


def build(run: Run) -> BuildInfo:
    """Load the model (quantised where the method says so), let the method prepare it, count what trains."""
    import torch

    from peftlab.methods import ModelContext
    from peftlab.runtime.measure import count_parameters
    from peftlab.tasks import model_task_type

    ws, cfg, method = run.ws, run.cfg, run.method
    started = time.perf_counter()
    keep = ws.task.unquantized_modules(run.source, ws.data) if method.load_kwargs else ()
    run.load_kwargs = method.load_kwargs(run.params, run.device, keep) if method.load_kwargs else {}
    model = ws.task.load_model(run.source, ws.data, run.load_kwargs, ws.pad_id)
    ctx = ModelContext(
        task_type=model_task_type(ws.task, model),
        model_type=model.config.model_type,
        total_steps=cfg.steps,
        head_modules=ws.task.head_modules(model),
    )
    if cfg.gradient_checkpointing and method.trains:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = method.prepare(model, run.params, ctx)
    sharded_later = run.ranks is not None and run.ranks.mode == "fsdp" and method.trains  # each rank moves its shard
    if not run.load_kwargs.get("device_map") and not sharded_later:
        model.to(run.device)
    # data-aware initialisation (EVA, LoRA-GA), before anything is counted
    calibrate_s = _calibrate(run, model, ctx) if method.calibrate is not None else None
    built = BuildInfo(
        params=count_parameters(model),
        model_type=model.config.model_type if hasattr(model, "config") else None,
        dtype=str(next(model.parameters()).dtype),
        targets=_targets(model),
        calibrate_s=calibrate_s,
        build_s=time.perf_counter() - started,
    )
    run.model = model
    run.forward_model = torch.compile(model) if cfg.compile else model
    if run.ranks is not None and method.trains:  # DDP wraps the model; FSDP shards it in place
        wrapped = run.ranks.wrap(model, method.full_model)
        run.train_model = torch.compile(wrapped) if cfg.compile else wrapped
    return built


def _targets(model: Any) -> dict[str, Any]:
    """A peft model's resolved layers, and whether a fused q/k/v projection is one; nothing for others."""
    if not getattr(model, "peft_config", None):
        return {}
    from peftlab.methods.targets import describe_targets

    return describe_targets(model)


class _DeviceBatches(Sequence[dict[str, Any]]):
    """The run's training batches, collated and moved to the device only when read (a calibration reads a few)."""

    def __init__(self, indices: list[Any], collate: Any, device: str) -> None:
        self.indices, self.collate, self.device = indices, collate, device

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return {k: v.to(self.device) for k, v in self.collate(self.indices[i]).items()}


def _calibrate(run: Run, model: Any, ctx: Any) -> float:
    """The method's calibration pass over the batches training starts with (same seed, same order); seconds taken."""
    from peftlab.tasks.batching import train_batches

    ws, cfg, spec = run.ws, run.cfg, run.spec
    split, padding_side = ws.splits["train"], run.eval_ctx.padding_side
    started = time.perf_counter()
    indices = train_batches(split, cfg.batch_size, cfg.steps * cfg.grad_accum, spec.seed, cfg.length_grouping)
    batches = _DeviceBatches(indices, lambda idx: ws.task.collate(split, idx, ws.pad_id, padding_side), run.device)
    run.method.calibrate(model, batches, run.params, ctx)
    return time.perf_counter() - started


def _method_optimizer(run: Run) -> Any:
    """The method's own optimiser builder (the registry's `make_optimizer` hook), as the loop calls it; else None."""
    make = run.method.make_optimizer
    return None if make is None else (lambda model, optimizer: make(model, run.params, optimizer))


def probes_before(run: Run) -> None:
    """The base model's scores (adapter disabled), before any step: what "forgotten" is measured against."""
    ws = run.ws
    if ws.forgetting is not None:
        run.probes = ws.forgetting.for_run(run.spec.seed, run.device, quiet=run.quiet, checkpoint=run.checkpoint)
        run.probes.before(run.model, run.load_kwargs, lambda base: run.evaluate("test", base))


def train(run: Run) -> None:
    """The one training loop (train.py), validation every eval_every steps; skipped for a reference row."""
    from peftlab.runtime.train import TrainOutcome, TrainSpec, step_bar
    from peftlab.runtime.train import train as train_loop
    from peftlab.tasks.batching import train_batches

    ws, cfg, spec = run.ws, run.cfg, run.spec
    split, padding_side = ws.splits["train"], run.eval_ctx.padding_side
    index, total = run.position
    rollout = _rollout(run) if run.method.trains else None  # task grpo: the loop samples its own batches
    bar = step_bar(cfg.steps, f"[{index}/{total}] {spec.label} s{spec.seed}", run.quiet or not _writes(ws))
    run.meter.baseline()
    run.meter.start()
    try:
        if not run.method.trains:  # a reference row (zero-shot): measured and recorded like any run
            run.outcome = TrainOutcome()
            return
        # the run's optimiser spec, as its planner built it, and the method's hooks: all that decides the numbers
        loop = TrainSpec.of(
            cfg,
            spec.optimizer,
            run.device,
            own_optimizer=_method_optimizer(run),
            on_step=_on_step(run),
            rollout=rollout,
        )
        per_batch = cfg.batch_size if rollout is None else rollout.prompts_per_batch(cfg.batch_size)
        run.outcome = train_loop(
            run.train_model or run.forward_model,
            train_batches(split, per_batch, cfg.steps * cfg.grad_accum, spec.seed, cfg.length_grouping),
            (lambda idx: ws.task.collate(split, idx, ws.pad_id, padding_side)) if rollout is None else rollout.collate,
            loop,
            _watch(run, bar),
        )
        run.meter.stop("train")
    finally:
        bar.close()


def _rollout(run: Run) -> Any:
    """A sampling task's hooks for this run (task grpo), after a probe rollout of the base model; else None.

    The probe samples the first `rl.probe_prompts` train prompts before any step, outside the
    measured training: its reward is the base model's, in the record as `metrics.base_rollout`, and
    a reward constant in every group (nothing for GRPO to learn) is warned about here, with the figure.
    """
    import copy

    ws = run.ws
    make = getattr(ws.task, "rollout", None)
    if make is None:
        return None
    rl = ws.experiment.rl
    model = run.train_model or run.forward_model
    # full fine-tuning has no adapter to disable: the KL term's base model is a frozen copy
    reference = None
    if rl.beta > 0 and not getattr(run.model, "peft_config", None):
        reference = copy.deepcopy(run.model).eval().requires_grad_(False)
    rollout = make(ws.splits["train"], rl, ws.tokenizer, ws.pad_id, run.device, reference)
    run.base_rollout = rollout.probe(model, rl.probe_prompts, run.cfg.batch_size)
    warning = rollout.warning(run.base_rollout)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return rollout


def _watch(run: Run, bar: Any) -> Any:
    """What looks on while the loop runs: validation, the pruner, the bar, the trackers (train.Watch)."""
    from peftlab.runtime.train import Watch

    return Watch(
        evaluate=lambda: run.evaluate("validation"),
        curve_metrics=run.spec.task.spec.curve_metrics(),  # the task's declared metrics (peftlab/task_specs)
        primary=run.spec.task.metric,  # the chosen metric, carried in the run spec
        report=run.report,
        progress=bar,
        log=run.trackers.log if run.trackers is not None else None,
    )


def pruned_outcome(outcome: Any) -> PrunedOutcome:
    """What a trial stopped by its pruner measured: its last intermediate validation, losses and time."""
    curve = outcome.curve
    last = {k.removeprefix("val_"): v for k, v in curve[-1].items() if k.startswith("val_")} if curve else None
    return PrunedOutcome(
        validation=last,
        final_train_loss=outcome.final_train_loss,
        curve=curve,
        train_s=outcome.train_time_s,
        steps=outcome.steps_done,
    )


def evaluate(run: Run) -> Evaluation:
    """Final scores on test (per-example samples kept) and validation (the loop's last one when at the end)."""
    curve, steps = run.outcome.curve, run.cfg.steps
    run.meter.start()
    started = time.perf_counter()
    _attach_base_model(run)
    run.test = run.evaluate("test")
    last = curve[-1] if curve and curve[-1]["step"] == steps else None
    run.validation = (
        {k.removeprefix("val_"): v for k, v in last.items() if k.startswith("val_")}
        if last
        else run.evaluate("validation")
    )
    extra = _extra_splits(run)  # a preset's further evaluation splits (MNLI mismatched)
    run.eval_s = time.perf_counter() - started
    run.meter.stop("eval")
    samples = run.test.pop("samples", None)
    if isinstance(run.validation, dict):
        run.validation.pop("samples", None)
    from peftlab.records.predictions import (
        write_predictions,  # per-example outcomes beside the record, for paired stats
    )

    predictions = write_predictions(run.ws.results_dir, run.spec.run_id, run.kept) if _writes(run.ws) else None
    return Evaluation(
        test=run.test,
        validation=run.validation,
        final_eval_s=run.eval_s,
        samples=samples,
        predictions=predictions,
        extra=extra,
    )


def _attach_base_model(run: Run) -> None:
    """A task that measures divergence from the base model (task grpo: KL on the test answers) gets it here.

    An adapter is disabled for it; full fine-tuning has none, so the base is loaded again, now that
    training's memory is measured; a reference row (zero-shot) is its own base.
    """
    ws = run.ws
    if not getattr(ws.task, "compares_with_base", False) or getattr(run.model, "peft_config", None):
        return
    import dataclasses

    base = run.model
    if run.method.trains:
        base = ws.task.load_model(run.source, ws.data, run.load_kwargs, ws.pad_id).to(run.device).eval()
    run.eval_ctx = dataclasses.replace(run.eval_ctx, reference=base)


def _extra_splits(run: Run) -> dict[str, Any]:
    """Scores of the evaluation splits beside test (a preset's: MNLI's validation_mismatched), by name.

    They land in the record as `metrics.<name>` and their per-example outcomes in the predictions file.
    """
    extra = [name for name in run.ws.splits if name not in ("train", "validation", "test")]
    scores = {name: run.evaluate(name) for name in extra}
    for value in scores.values():
        value.pop("samples", None)  # samples are kept for the test split only
    return scores


def probes_after(run: Run) -> ProbeResults | None:
    """The same probes on the tuned model: what was forgotten, and what was learned."""
    if run.probes is None:
        return None
    results = run.probes.after(run.model, run.test)
    if run.probes.examples and _writes(run.ws):  # lm_eval's per-example outcomes join the predictions file
        from peftlab.records.predictions import write_predictions

        run.kept.update(run.probes.examples)
        written = write_predictions(run.ws.results_dir, run.spec.run_id, run.kept)
        results = results.model_copy(update={"predictions": PredictionsFile.model_validate(written)})
    return results


def measure(run: Run) -> TrainingOutcome:
    """Scores, speed (warm-up steps excluded), memory and time into the record; latency at batch size 1."""
    import numpy as np

    from peftlab.runtime.measure import step_time_stats

    outcome, warm = run.outcome, run.cfg.timing_warmup_steps
    past_warmup = len(outcome.step_times) > warm
    steady = slice(warm, None) if past_warmup else slice(None)
    steady_time = float(np.sum(outcome.step_times[steady])) if past_warmup else outcome.train_time_s
    steady_tokens = int(np.sum(outcome.step_tokens[steady]))
    steady_samples = int(np.sum(outcome.step_samples[steady]))
    speed = {
        "train_tokens_per_s": steady_tokens / steady_time if steady_time > 0 else None,
        "train_samples_per_s": steady_samples / steady_time if steady_time > 0 else None,
        **step_time_stats(outcome.step_times, warm),
        "warmup_steps_excluded": min(warm, len(outcome.step_times)),
        "eval_samples_per_s": run.test.get("samples_per_s"),
        "eval_tokens_per_s": run.test.get("tokens_per_s"),
        "padding_fraction": None,
    }
    if outcome.generation_times:  # a sampling task: generation apart from training (the step minus its sampling)
        speed.update(_generation_speed(outcome, steady, steady_time, steady_tokens))
    memory = run.meter.record()
    if outcome.training_state is not None:  # CPU: what the method itself holds, beside the process's peak RSS
        memory["training_state"] = outcome.training_state
    samples_per_step = None
    if run.ranks is not None:  # every rank's peaks, gathered (collective)
        from peftlab.runtime.measure import per_rank_memory

        memory = per_rank_memory(run.ranks.gather(memory))
        samples_per_step = sorted(set(outcome.step_samples))  # the global batch
    return TrainingOutcome(
        steps=outcome.steps_done,
        final_train_loss=outcome.final_train_loss,
        curve=outcome.curve,
        train_s=outcome.train_time_s,
        validation_s=outcome.eval_time_s,
        speed=Speed.model_validate(plain({**speed, **_inference_latency(run)})),
        memory=Memory.model_validate(plain(memory)),
        samples_per_step=samples_per_step,
        rollout=outcome.rollout,
        base_rollout=run.base_rollout,
    )


def _generation_speed(outcome: Any, steady: slice, steady_time: float, steady_tokens: int) -> dict[str, Any]:
    """A sampling task's speeds over the timed steps: tokens sampled per second of sampling, its share of
    the step, and training tokens per second over the rest of the step (the update)."""
    import numpy as np

    sampled = float(np.sum(outcome.generation_times[steady]))
    tokens_sampled = int(np.sum(outcome.generated_tokens[steady]))
    updating = steady_time - sampled
    return {
        "train_tokens_per_s": steady_tokens / updating if updating > 0 else None,
        "generation_tokens_per_s": tokens_sampled / sampled if sampled > 0 else None,
        "generation_share": sampled / steady_time if steady_time > 0 else None,
    }


def save(run: Run) -> Saved:
    """What `save:` asks for, atomically; the record's `size` is the saved safetensors' size either way."""
    state = run.ranks.full_state_dict(run.model) if run.ranks is not None and run.method.trains else None
    if _writes(run.ws):  # FSDP's whole state dict was gathered on every rank above; rank 0 saves it
        return _save_outputs(run.model, run.ws, run.spec, run.method, state, base_model=_portable_base(run))
    # another rank's record is never written; its summary line goes nowhere
    return Saved(size=Size(saved_bytes=0, saved_mb=0.0, what="saved by rank 0"))


PHASES = (setup, start_from, build, probes_before, train, evaluate, probes_after, measure, save)


# ---------------------------------------------------------------- the record and the phases' helpers


def base_record(ws: Workspace, spec: RunSpec) -> RunRecord:
    """What is known of a run before it starts: who it is, its config, data, model and environment.

    Its status is `failed` until the run's `Outcome` says otherwise, so a run that never ends is
    never mistaken for a finished one.
    """
    from peftlab.records.environment import git_state, lock_digest, package_versions
    from peftlab.records.record import GitState

    exp = ws.experiment
    return RunRecord(
        run_id=spec.run_id,
        experiment=exp.name,
        label=spec.label,
        method=spec.method,
        seed=spec.seed,
        status="failed",
        error=None,
        task=TaskInfo.model_validate(spec.task.record_block()),  # what the run is scored by, as config resolved it
        hyperparameters={"lr": spec.lr, **spec.params},
        config=_resolved_config(exp, spec),
        config_hash=spec.config_hash,
        data=_data_info(ws),
        model=ModelInfo.model_validate(ws.model_source.as_dict()),
        metrics=Metrics(),
        params=ParamCounts(),
        memory=Memory(),
        speed=Speed(),
        time=Timing(started_at=datetime.now(UTC).isoformat(timespec="seconds")),
        size=Size(),
        env=Environment(versions=package_versions(), lock=lock_digest(), git=GitState(**git_state()), pid=os.getpid()),
    )


def _resolved_config(exp: Any, spec: RunSpec) -> dict[str, Any]:
    """The run's resolved config as the record keeps it: what it computes, plus its method, lr and seed."""
    return plain(
        {
            **computed_config(exp),
            "method": spec.method,
            "lr": spec.lr,
            "params": spec.params,
            "seed": spec.seed,
            "experiment_file": str(exp.source_path) if exp.source_path else None,
            "report": {"reference": exp.report.reference},  # the report's paired reference
        }
    )


def _data_info(ws: Workspace) -> DataInfo:
    """The record's data section: where the rows came from, their fingerprint and sizes."""
    data = ws.data
    instructions = {"kind": data.kind, "instruction": data.instruction} if hasattr(data, "kind") else {}
    return DataInfo.model_validate(
        plain(
            {
                "source": data.source,
                "name": getattr(data, "name", None),  # what the rows exactly are (a builtin's title)
                "citation": getattr(data, "citation", None),
                "fingerprint": data.fingerprint,
                "sizes": data.sizes(),
                "num_labels": data.num_labels,
                "label_names": list(data.label_names),
                "max_length": ws.experiment.data.max_length,
                **instructions,
            }
        )
    )


def _open_trackers(ws: Workspace, spec: RunSpec, record: RunRecord) -> Trackers | None:
    """The run's trackers (`loggers:`), in the process that writes files only; None, and nothing imported, without."""
    if not getattr(ws.experiment, "loggers", None) or not _writes(ws):
        return None
    from peftlab.loggers import open_trackers, run_info

    return open_trackers(ws.experiment.loggers, run_info(ws.experiment, spec, record))


def _publish(ws: Workspace, record: RunRecord, trackers: Trackers | None) -> None:
    """The record on disk (rank 0 only), then its metrics and costs to the run's trackers, as written."""
    if _writes(ws):
        write_record(ws.results_dir, record)
    if trackers is not None:
        trackers.finish(record)


def _writes(ws: Workspace) -> bool:
    """Whether this process writes files: always, except on the ranks other than 0 of a distributed launch."""
    from peftlab.runtime.distributed import launch_from_env

    return ws.experiment.train.distributed is None or launch_from_env().writes


def _stop_launch_on_failure(ws: Workspace, record: RunRecord) -> None:
    """A run that failed on one rank leaves the others waiting in a collective: end this process, and the
    launcher (torchrun, accelerate) ends them all. A re-run retries the run; a divergence is seen by every
    rank alike (the loss is all-reduced) and is a result, not a failure."""
    if ws.experiment.train.distributed is not None and record.status in ("failed", "oom"):
        from peftlab.runtime.distributed import launch_from_env

        where = f"on rank {launch_from_env().rank}"
        raise SystemExit(f"peftlab: run {record.run_id} {record.status} {where}: {record.error}")


def _on_step(run: Run) -> Any:
    """The method's per-step hook, handed the model itself rather than the loop's DDP wrapper."""
    hook = run.method.on_step
    return hook if hook is None or run.train_model is None else (lambda _, step: hook(run.model, step))


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(err).lower()


def _portable_base(run: Run) -> str | None:
    """The name a saved adapter gives its base model (runtime/portable.py); None for an `init_from:` stage's
    model, which exists on this machine only (peft's local path is kept)."""
    source = run.source or run.ws.model_source
    return None if run.checkpoint is not None else source.portable_name


def _save_outputs(
    model: Any, ws: Workspace, spec: RunSpec, method: Method, state: dict | None = None, base_model: str | None = None
) -> Saved:
    """Save what the experiment's `save:` asks for (atomically): the record's `size`, and where it went.

    The size is that of the saved safetensors whether or not they are kept: an adapter method's
    adapter (with a trained head, if any), a full fine-tune's whole model. `state`: the whole
    state dict to save in place of the model's own (FSDP's gathered one). `base_model`: the portable
    name an adapter names as its base (runtime/portable.py), in place of this machine's path.
    """
    import shutil
    import tempfile

    from peftlab.records.results import publish_dir
    from peftlab.runtime.measure import MB, saved_size_bytes

    extra = {"state_dict": state} if state is not None else {}

    if not method.trains:
        return Saved(size=Size(saved_bytes=0, saved_mb=0.0, what="nothing (the base model as loaded)"))
    what = "full model" if method.full_model else "adapter (incl. trained head)"
    save = ws.experiment.save
    keep = save.full_models if method.full_model else save.adapters
    if not keep:
        size = saved_size_bytes(model, **extra)
        return Saved(size=Size(saved_bytes=size, saved_mb=size / MB, what=what))
    folder = ws.results_dir / save.dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.run_id
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.run_id}.", suffix=".tmp", dir=folder))
    try:
        _write_model(model, tmp, method, ws.tokenizer, extra, base_model)
        size = sum(p.stat().st_size for p in tmp.rglob("*.safetensors"))
        if target.exists():  # a --force re-run replaces the run's earlier output
            shutil.rmtree(target)
        publish_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    artifacts = Artifacts(full_model=str(target)) if method.full_model else Artifacts(adapter=str(target))
    return Saved(size=Size(saved_bytes=size, saved_mb=size / MB, what=what), artifacts=artifacts)


def _write_model(
    model: Any, folder: Path, method: Any, tokenizer: Any, extra: dict[str, Any], base_model: str | None
) -> None:
    """The adapter (named after its portable base model) or the whole model with its tokenizer, into `folder`."""
    if method.save_adapter is not None:  # an initialisation that moved the base saves a plain LoRA
        method.save_adapter(model, folder)
    else:
        model.save_pretrained(folder, safe_serialization=True, **extra)
    if method.full_model:
        tokenizer.save_pretrained(folder)
    elif base_model is not None:
        from peftlab.runtime.portable import name_base_model

        name_base_model(folder, base_model)


def _inference_latency(run: Run) -> dict[str, Any]:
    """Median per-example latency at batch size 1, adapter attached and (LoRA family) merged.

    Merging happens on a copy, after everything else is measured; quantised bases are not
    merged (that would dequantise and requantise the weights).
    """

    import numpy as np
    import torch

    ws, model, device, full_model = run.ws, run.model, run.device, run.method.full_model
    autocast, padding_side = run.eval_ctx.autocast, run.eval_ctx.padding_side
    split = ws.splits["test"]
    indices = [np.array([i]) for i in range(min(ws.task.latency_examples, len(split)))]

    def measure(m: Any) -> float:
        m.eval()
        times = []
        with torch.inference_mode(), autocast():
            for i, idx in enumerate(indices):
                batch = {k: v.to(device) for k, v in ws.task.collate(split, idx, ws.pad_id, padding_side).items()}
                batch.pop("labels", None)  # a sampling task's batches are prompts only
                start = time.perf_counter()
                m(**batch)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                if i >= 3:  # warm-up excluded
                    times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times)) if times else float("nan")

    out: dict[str, Any] = {"latency_ms_bs1": measure(model), "latency_ms_bs1_merged": None}
    sharded = run.ranks is not None and run.ranks.mode == "fsdp"  # a sharded model is not copied whole
    merged = None if sharded else _merged_copy(model, full_model)
    if merged is not None:
        out["latency_ms_bs1_merged"] = measure(merged)
        del merged
    return out


def _merged_copy(model: Any, full_model: bool) -> Any:
    """A LoRA-family model with its adapter merged into a copy of the weights; None where that cannot be."""
    import copy

    mergeable = hasattr(model, "merge_and_unload") and not full_model
    quantized = getattr(getattr(model, "base_model", model), "is_loaded_in_4bit", False) or any(
        p.__class__.__name__ == "Params4bit" for p in model.parameters()
    )
    if not mergeable or quantized:
        return None
    try:
        return copy.deepcopy(model).merge_and_unload()
    except (ValueError, TypeError, AttributeError, NotImplementedError):
        return None  # prompt/prefix tuning cannot be merged into the weights
