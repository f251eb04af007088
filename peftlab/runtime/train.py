"""The one training loop that every method runs under.

Read it top to bottom: no callbacks, no trainer object. Measurement is explicit lines (step
timer, real-token counter). The same batches, step budget and evaluation code for every method
are what make the comparison fair; only the learning rate and the trainable set differ.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from peftlab.config import TrainConfig
from peftlab.config.optim import OptimizerSpec
from peftlab.runtime.measure import StepAllocations, state_bytes, training_state


class Diverged(RuntimeError):
    """The loss became NaN or infinite: a result to record, not a crash."""


class Pruned(RuntimeError):
    """A search pruner stopped the run on an intermediate validation score; carries the partial outcome."""

    def __init__(self, step: int, outcome: TrainOutcome):
        super().__init__(f"pruned at step {step}")
        self.step, self.outcome = step, outcome


@dataclass
class TrainOutcome:
    steps_done: int = 0
    step_times: list[float] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)  # real (non-padding) tokens per optimiser step
    step_samples: list[int] = field(default_factory=list)
    train_time_s: float = 0.0  # optimiser steps only, evaluation excluded
    eval_time_s: float = 0.0
    curve: list[dict[str, Any]] = field(default_factory=list)
    final_train_loss: float | None = None
    diverged_at: int | None = None
    training_state: dict[str, Any] | None = None  # CPU only: measure.training_state of one warm-up step
    # under a rollout (task grpo): seconds spent sampling and tokens sampled per step (inside step_times),
    # and what each step's rollout measured (reward, its spread, entropy, ...): the reward curve
    generation_times: list[float] = field(default_factory=list)
    generated_tokens: list[int] = field(default_factory=list)
    rollout: list[dict[str, Any]] = field(default_factory=list)


# a method's own optimiser (LoRA+, LoRA-FA): (model, the run's optimiser spec) -> optimiser
OwnOptimizer = Callable[[Any, OptimizerSpec], Any]


@dataclass(frozen=True)
class TrainSpec:
    """What decides the numbers the loop computes, besides the model and its batches.

    Built from the experiment's `train:` section and the run's `OptimizerSpec` (`TrainSpec.of`); the
    optimiser's fields (lr, weight decay, schedule, warm-up, clipping) are read from `optimizer` only.
    """

    steps: int
    optimizer: OptimizerSpec
    device: str
    grad_accum: int = 1
    precision: str = "auto"
    eval_every: int = 50
    timing_warmup_steps: int = 3  # the step profiled on CPU is inside these (measure.StepAllocations)
    own_optimizer: OwnOptimizer | None = None  # the method builds its optimiser itself (the registry's hook)
    on_step: Callable[[Any, int], None] | None = None  # after each optimiser step (AdaLoRA's rank allocation)
    ranks: Any = None  # distributed.Ranks under `train.distributed`
    # a task that samples its own training batches (task grpo, peftlab/tasks/grpo.py `Rollout`): each
    # micro-batch of prompts becomes `rollout.collect(model, batch)`'s batch, scored by `rollout.loss`
    rollout: Any = None

    @classmethod
    def of(cls, cfg: TrainConfig, optimizer: OptimizerSpec, device: str, **hooks: Any) -> TrainSpec:
        """The loop's spec for the `train:` section `cfg` and a run's optimiser spec (hooks: own_optimizer, ...)."""
        return cls(
            steps=cfg.steps,
            optimizer=optimizer,
            device=device,
            grad_accum=cfg.grad_accum,
            precision=cfg.precision,
            eval_every=cfg.eval_every,
            timing_warmup_steps=cfg.timing_warmup_steps,
            **hooks,
        )


@dataclass(frozen=True)
class Watch:
    """What looks on while the loop runs: validation, a search's pruner, the progress bar, the trackers.

    `evaluate()` scores validation every `eval_every` steps; `curve_metrics` are the scores each curve
    point keeps and `primary` the one the progress bar shows (the task's declaration says which,
    peftlab/task_specs: the loop names none). `report(step, scores) -> stop` hands each evaluation to a
    search's pruner. `log(step, values)` streams each step's figures to the trackers (peftlab/loggers).
    """

    evaluate: Callable[[], dict[str, float]] | None = None
    curve_metrics: tuple[str, ...] = ()
    primary: str | None = None
    report: Callable[[int, dict[str, float]], bool] | None = None
    progress: Any = None
    log: Callable[[int, dict[str, float]], None] | None = None


def autocast_factory(device: str, precision: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """bf16 autocast on CUDA when supported (precision auto), plain fp32 on CPU."""
    import torch

    dtype = None
    if precision == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            dtype = torch.bfloat16
    elif precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if dtype is None:
        return contextlib.nullcontext
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    return lambda: torch.autocast(device_type=device_type, dtype=dtype)


def prefer_shape_agnostic_attention(device: str) -> None:
    """Keep attention kernels that need no per-shape planning on CUDA.

    With dynamic padding almost every batch has a new (batch, length) shape. The cuDNN SDPA
    backend plans a kernel per new shape (measured on an H100: 19 ms per attention call, 5–8×
    the whole step), which made step times and latencies depend on how often a shape had been
    seen before. The flash and memory-efficient kernels have no such cost.
    """
    import torch

    if device.startswith("cuda") and hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)


def make_optimizer(
    model: Any, spec: OptimizerSpec, steps: int, device: str, own: OwnOptimizer | None = None
) -> tuple[Any, Any]:
    """The run's optimiser and learning-rate schedule, both from its `OptimizerSpec`, in one call.

    AdamW over the trainable parameters (fused on CUDA, foreach on CPU), unless the method builds
    its own (`own`: LoRA+, LoRA-FA, through the registry's `make_optimizer` hook) from the same spec.
    """
    import torch
    from transformers import get_scheduler

    if own is not None:
        optimizer = own(model, spec)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError("the prepared model has no trainable parameters")
        kwargs: dict[str, Any] = {
            "lr": spec.lr,
            "weight_decay": spec.weight_decay,
            "betas": spec.betas,
            "eps": spec.eps,
        }
        if device.startswith("cuda"):
            kwargs["fused"] = True
        else:
            kwargs["foreach"] = True
        optimizer = torch.optim.AdamW(params, **kwargs)
    scheduler = get_scheduler(
        spec.scheduler, optimizer, num_warmup_steps=spec.warmup_steps(steps), num_training_steps=steps
    )
    return optimizer, scheduler


def step_bar(total: int, desc: str, quiet: bool) -> Any:
    """The progress bar of a training phase: live on a terminal, a line every 30 s in a log file."""
    import sys

    from tqdm.auto import tqdm

    interval = 0.5 if sys.stderr.isatty() else 30
    return tqdm(
        total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True, disable=quiet, mininterval=interval
    )


def train(
    model: Any,
    batches: list[Any],
    collate: Callable[[Any], dict[str, Any]],
    spec: TrainSpec,
    watch: Watch = Watch(),
) -> TrainOutcome:
    """Run `spec.steps` optimiser steps over `batches` (steps × grad_accum micro-batches).

    `collate` turns a micro-batch's indices into tensors. `spec` is everything that decides the
    numbers (the optimiser spec, the device, the method's hooks); `watch` is what looks on: the
    validation every `eval_every` steps, the progress bar, the trackers and a search's pruner,
    whose True answer ends the run as `Pruned`.
    `spec.ranks` (distributed.Ranks, under `train.distributed`): `batches` are the global batches; this
    process trains on its slice of each, and the step's figures are the whole launch's.
    """
    import torch

    device, ranks, on_step = spec.device, spec.ranks, spec.on_step
    evaluate, progress, report, log = watch.evaluate, watch.progress, watch.report, watch.log
    prefer_shape_agnostic_attention(device)
    optimizer, scheduler = make_optimizer(model, spec.optimizer, spec.steps, device, spec.own_optimizer)
    autocast = autocast_factory(device, spec.precision)
    scaler = torch.amp.GradScaler("cuda") if spec.precision == "fp16" and device.startswith("cuda") else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    cuda = device.startswith("cuda")
    out = TrainOutcome()
    loss_window: list[float] = []
    model.train()
    micro = iter(batches)

    # the step whose allocations are profiled (CPU: peak RSS is mostly the runtime): the second, once the
    # optimiser state exists, and only inside the timing warm-up so that its profiling costs no measured speed
    profiled = 2 if device == "cpu" and spec.timing_warmup_steps >= 2 and spec.steps >= 2 and ranks is None else None
    rollout = spec.rollout
    for step in range(1, spec.steps + 1):
        allocations = StepAllocations() if step == profiled else contextlib.nullcontext()
        with allocations:
            started = time.perf_counter()
            step_loss, step_tokens, step_samples = 0.0, 0, 0
            generation_s, generated, measured = 0.0, 0, []
            for micro_step in range(1, spec.grad_accum + 1):
                indices = next(micro)
                if (
                    ranks is not None
                ):  # distributed: this rank's rows; gradients cross ranks on the last micro-batch only
                    indices = ranks.micro_batch(indices, model, last=micro_step == spec.grad_accum)
                host_batch = collate(indices)
                if rollout is not None:  # sample, reward and score this micro-batch's prompts (timed apart)
                    sampling = time.perf_counter()
                    host_batch, stats = rollout.collect(model, host_batch)
                    generation_s += time.perf_counter() - sampling
                    generated += stats["generated_tokens"]
                    measured.append(stats)
                step_tokens += int(host_batch["attention_mask"].sum())  # counted on the host: no device sync
                step_samples += host_batch["input_ids"].shape[0]
                batch = {k: v.to(device, non_blocking=True) for k, v in host_batch.items()}
                with autocast():
                    if rollout is not None:
                        loss, seen = rollout.loss(model, batch)
                        measured[-1] = {**measured[-1], **seen}
                        loss = loss / spec.grad_accum
                    else:
                        loss = model(**batch).loss / spec.grad_accum
                if scaler is not None:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                step_loss += loss.detach()
            if scaler is not None:
                scaler.unscale_(optimizer)
            if spec.optimizer.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(trainable, spec.optimizer.max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            if on_step is not None:
                on_step(model, step)
            held = state_bytes(model, optimizer) if step == profiled else None  # before zero_grad frees the gradients
            optimizer.zero_grad(set_to_none=True)
            step_loss = float(step_loss)  # syncs the device, so the step time below is honest
        if held is not None:
            out.training_state = training_state(held, allocations.peak_bytes)
        if ranks is not None:  # distributed: the global step's mean loss, tokens and samples
            step_loss, step_tokens, step_samples = ranks.reduce_step(step_loss, step_tokens, step_samples)
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started

        out.steps_done = step
        out.step_times.append(elapsed)
        out.step_tokens.append(step_tokens)
        out.step_samples.append(step_samples)
        out.train_time_s += elapsed
        if rollout is not None:
            out.generation_times.append(generation_s)
            out.generated_tokens.append(generated)
            out.rollout.append({"step": step, **_mean_of(measured)})
        if not math.isfinite(step_loss):
            out.diverged_at = step
            raise Diverged(f"loss is {step_loss} at step {step}")
        loss_window.append(step_loss)
        out.final_train_loss = step_loss
        if log is not None:  # the figures measured above, nothing more: a tracker adds no sync of its own
            lr_now = scheduler.get_last_lr()[0]
            log(step, {"train/loss": step_loss, "train/lr": lr_now, "train/tokens_per_s": step_tokens / elapsed})
        if log is not None and rollout is not None:
            log(step, {f"rollout/{k}": v for k, v in out.rollout[-1].items() if k != "step"})
        if progress is not None:
            progress.update(1)
            shown = {"reward": f"{out.rollout[-1]['reward']:.2f}"} if rollout is not None else {}
            progress.set_postfix(loss=f"{step_loss:.3f}", **shown, refresh=False)

        if evaluate is not None and (step % spec.eval_every == 0 or step == spec.steps):
            eval_started = time.perf_counter()
            scores = evaluate()
            out.eval_time_s += time.perf_counter() - eval_started
            point = {"step": step, "train_loss": sum(loss_window) / len(loss_window)}
            point.update({f"val_{k}": v for k, v in scores.items() if k in watch.curve_metrics})
            out.curve.append(point)
            loss_window = []
            if log is not None:
                log(step, {f"validation/{k}": v for k, v in scores.items()})
            primary = watch.primary
            if progress is not None and primary is not None and isinstance(scores.get(primary), (int, float)):
                progress.set_postfix(
                    loss=f"{step_loss:.3f}", **{f"val_{primary}": f"{scores[primary]:.3f}"}, refresh=False
                )
            if report is not None and report(step, scores):
                raise Pruned(step, out)
    return out


def _mean_of(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """A step's rollout figures over its micro-batches: means, and sums of the token counts."""
    if not measured:
        return {}
    out: dict[str, Any] = {}
    for key in measured[0]:
        values = [m[key] for m in measured if m.get(key) is not None]
        out[key] = sum(values) if key == "generated_tokens" else (sum(values) / len(values) if values else None)
    return out
