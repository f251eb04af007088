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


def make_optimizer(model: Any, lr: float, weight_decay: float, device: str) -> Any:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("the prepared model has no trainable parameters")
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if device.startswith("cuda"):
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = True
    return torch.optim.AdamW(params, **kwargs)


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
    cfg: TrainConfig,
    lr: float,
    device: str,
    collate: Callable[[Any], dict[str, Any]],
    evaluate: Callable[[], dict[str, float]] | None = None,
    on_step: Callable[[Any, int], None] | None = None,
    progress: Any = None,
    report: Callable[[int, dict[str, float]], bool] | None = None,
    ranks: Any = None,
    optimizer_factory: Callable[[Any, float, float], Any] | None = None,
    curve_metrics: tuple[str, ...] = (),
    primary: str | None = None,
    log: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainOutcome:
    """Run `cfg.steps` optimiser steps over `batches` (steps × grad_accum micro-batches).

    `report(step, validation_scores) -> stop` sees every intermediate evaluation: a search uses
    it to hand scores to its pruner, and a True answer ends the run as `Pruned`.
    `ranks` (distributed.Ranks, under `train.distributed`): `batches` are the global batches; this
    process trains on its slice of each, and the step's figures are the whole launch's.
    `optimizer_factory(model, lr, weight_decay)` replaces AdamW for a method with its own optimiser.
    `curve_metrics` are the validation scores each curve point keeps and `primary` the one the
    progress bar shows: the task's declaration says which (peftlab/task_specs); the loop names none.
    `log(step, values)` streams each step's figures and each evaluation to the trackers (peftlab/loggers).
    """
    import torch
    from transformers import get_scheduler

    prefer_shape_agnostic_attention(device)
    if optimizer_factory is not None:  # a method's own optimiser (LoRA+, LoRA-FA: the registry's hook)
        optimizer = optimizer_factory(model, lr, cfg.weight_decay)
    else:
        optimizer = make_optimizer(model, lr, cfg.weight_decay, device)
    scheduler = get_scheduler(
        cfg.scheduler, optimizer, num_warmup_steps=int(cfg.warmup_ratio * cfg.steps), num_training_steps=cfg.steps
    )
    autocast = autocast_factory(device, cfg.precision)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" and device.startswith("cuda") else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    cuda = device.startswith("cuda")
    out = TrainOutcome()
    loss_window: list[float] = []
    model.train()
    micro = iter(batches)

    # the step whose allocations are profiled (CPU: peak RSS is mostly the runtime): the second, once the
    # optimiser state exists, and only inside the timing warm-up so that its profiling costs no measured speed
    profiled = 2 if device == "cpu" and cfg.timing_warmup_steps >= 2 and cfg.steps >= 2 and ranks is None else None
    for step in range(1, cfg.steps + 1):
        allocations = StepAllocations() if step == profiled else contextlib.nullcontext()
        with allocations:
            started = time.perf_counter()
            step_loss, step_tokens, step_samples = 0.0, 0, 0
            for micro_step in range(1, cfg.grad_accum + 1):
                indices = next(micro)
                if (
                    ranks is not None
                ):  # distributed: this rank's rows; gradients cross ranks on the last micro-batch only
                    indices = ranks.micro_batch(indices, model, last=micro_step == cfg.grad_accum)
                host_batch = collate(indices)
                step_tokens += int(host_batch["attention_mask"].sum())  # counted on the host: no device sync
                step_samples += host_batch["input_ids"].shape[0]
                batch = {k: v.to(device, non_blocking=True) for k, v in host_batch.items()}
                with autocast():
                    loss = model(**batch).loss / cfg.grad_accum
                if scaler is not None:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                step_loss += loss.detach()
            if scaler is not None:
                scaler.unscale_(optimizer)
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
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
        if not math.isfinite(step_loss):
            out.diverged_at = step
            raise Diverged(f"loss is {step_loss} at step {step}")
        loss_window.append(step_loss)
        out.final_train_loss = step_loss
        if log is not None:  # the figures measured above, nothing more: a tracker adds no sync of its own
            lr_now = scheduler.get_last_lr()[0]
            log(step, {"train/loss": step_loss, "train/lr": lr_now, "train/tokens_per_s": step_tokens / elapsed})
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{step_loss:.3f}", refresh=False)

        if evaluate is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            eval_started = time.perf_counter()
            scores = evaluate()
            out.eval_time_s += time.perf_counter() - eval_started
            point = {"step": step, "train_loss": sum(loss_window) / len(loss_window)}
            point.update({f"val_{k}": v for k, v in scores.items() if k in curve_metrics})
            out.curve.append(point)
            loss_window = []
            if log is not None:
                log(step, {f"validation/{k}": v for k, v in scores.items()})
            if progress is not None and primary is not None and isinstance(scores.get(primary), (int, float)):
                progress.set_postfix(
                    loss=f"{step_loss:.3f}", **{f"val_{primary}": f"{scores[primary]:.3f}"}, refresh=False
                )
            if report is not None and report(step, scores):
                raise Pruned(step, out)
    return out
