"""One run, end to end: model → method → the loop → evaluation → measurements → record.

Runs execute in a forked child of the experiment process: the parent has imported the heavy
libraries and tokenised the data once, each child inherits both for free, and its memory peak,
crash or OOM belongs to that run alone. Where fork is unavailable, runs execute in-process.

The invariant that makes fork safe: the experiment process itself never computes with torch
(an OpenMP thread pool alive at fork time can deadlock the child). Code that has already run
torch in its own process should call the runner with `--in-process` semantics instead.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peftlab.config import Experiment
from peftlab.plan import RunSpec, computed_config
from peftlab.results import read_record, record_path, write_record


@dataclass
class Workspace:
    """What every run of an experiment shares: model source, tokenizer, data, tokenised splits."""

    experiment: Experiment
    model_source: Any  # models.ModelSource
    tokenizer: Any
    data: Any  # data.ClassificationData (task sft: data.InstructionData)
    splits: dict[str, Any]  # split name -> the task's tokenised split
    results_dir: Path
    task: Any = None  # tasks.Task; from experiment.task when not given
    forgetting: Any = None  # forgetting.Forgetting: the experiment's probes, data loaded once

    def __post_init__(self) -> None:
        if self.task is None:
            from peftlab.tasks import get_task

            self.task = get_task(self.experiment.task)

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)


# Set by a search worker when several share the machine and `train.threads` is unset: each run then
# uses its share of the cores. N workers × all cores of OpenMP threads on a small CPU spin against
# each other (measured: 2 workers on 2 cores, 3.5-6 s per step instead of ~0.6 s).
SHARED_CORES_THREADS: int | None = None


def prepare_workspace(experiment: Experiment) -> Workspace:
    """Resolve the model and data sources and tokenise once; user mistakes surface here, before any run."""
    from peftlab.models import load_tokenizer, quiet_transformers, resolve_model_source
    from peftlab.tasks import get_task

    if _uses_hub(experiment):
        from peftlab.hub import go_offline_if_unreachable

        go_offline_if_unreachable()
    quiet_transformers()
    _quiet_library_warnings()
    source = resolve_model_source(experiment.model, experiment.search_dirs())
    tokenizer = load_tokenizer(source)
    task = get_task(experiment.task)
    data, splits = task.prepare_data(experiment, tokenizer, _data_base_dir(experiment))
    from peftlab.metrics import load_metric

    for name in ("accuracy", "f1"):  # loaded once here, inherited by every forked run
        load_metric(name)
    forgetting = None
    if experiment.forgetting:
        from peftlab.forgetting import Forgetting

        forgetting = Forgetting(experiment, tokenizer)
    return Workspace(
        experiment, source, tokenizer, data, splits, experiment.results_dir(), task=task, forgetting=forgetting
    )


def _uses_hub(experiment: Experiment) -> bool:
    """Whether a source is neither builtin nor an existing local path (so it would come from the hub)."""
    for spec in (experiment.model, experiment.data.source):
        if spec.startswith("builtin:"):
            continue
        if not any((folder / spec).exists() for folder in experiment.search_dirs()):
            return True
    return False


def _data_base_dir(experiment: Experiment) -> Path | None:
    source = experiment.data.source
    if source.startswith("builtin:"):
        return None
    for folder in experiment.search_dirs():
        if (folder / source).exists():
            return folder
    return None


# ---------------------------------------------------------------- the record


def base_record(ws: Workspace, spec: RunSpec) -> dict[str, Any]:
    from peftlab.environment import git_state, package_versions

    exp = ws.experiment
    return {
        "run_id": spec.run_id,
        "experiment": exp.name,
        "label": spec.label,
        "method": spec.method,
        "seed": spec.seed,
        "status": "failed",
        "error": None,
        "hyperparameters": {"lr": spec.lr, **spec.params},
        "config": {
            **computed_config(exp),
            "method": spec.method,
            "lr": spec.lr,
            "params": spec.params,
            "seed": spec.seed,
            "experiment_file": str(exp.source_path) if exp.source_path else None,
            "report": {"reference": exp.report.reference},  # issue 12: the report's paired reference
        },
        "config_hash": spec.config_hash,
        "data": {
            "source": ws.data.source,
            "fingerprint": ws.data.fingerprint,
            "sizes": ws.data.sizes(),
            "num_labels": ws.data.num_labels,
            "label_names": list(ws.data.label_names),
            "max_length": exp.data.max_length,
            **({"kind": ws.data.kind, "instruction": ws.data.instruction} if hasattr(ws.data, "kind") else {}),
        },
        "model": {**ws.model_source.as_dict()},
        "metrics": {},
        "params": {},
        "memory": {},
        "speed": {},
        "time": {"started_at": datetime.now(UTC).isoformat(timespec="seconds")},
        "size": {},
        "env": {"versions": package_versions(), "git": git_state(), "pid": os.getpid()},
    }


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(err).lower()


Report = Callable[[int, dict[str, float]], bool]
OnRecord = Callable[[dict[str, Any]], None]


def execute_run(
    ws: Workspace,
    spec: RunSpec,
    position: tuple[int, int] = (1, 1),
    quiet: bool = False,
    *,
    report: Report | None = None,
    on_record: OnRecord | None = None,
) -> dict:
    """Train and measure one run; always writes a record (status ok / diverged / oom / pruned / failed).

    `report` is handed to the loop (a search's pruner); `on_record` may add to the record just
    before it is written, so that a search trial's record is complete in one atomic write.
    """
    from peftlab.train import Diverged, Pruned

    record = base_record(ws, spec)
    started = time.perf_counter()
    try:
        _train_and_measure(ws, spec, record, position, quiet, report)
        record["status"] = "ok"
    except Diverged as err:
        record["status"], record["error"] = "diverged", str(err)
    except Pruned as err:
        record["status"], record["error"] = "pruned", str(err)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failing run is a result; the experiment goes on
        record["status"] = "oom" if _is_oom(err) else "failed"
        record["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        record["traceback"] = traceback.format_exc(limit=12)
    record["time"]["total_s"] = time.perf_counter() - started
    record["time"]["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if on_record is not None:
        on_record(record)
    write_record(ws.results_dir, record)
    return record


def _quiet_library_warnings() -> None:
    """Deprecation chatter from inside peft/transformers, printed once per run, says nothing about the run."""
    import warnings

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # peft's soft-prompt models drop position ids in generate (they shift with the virtual tokens)
    warnings.filterwarnings("ignore", message="Position ids are not supported for parameter efficient tuning")


def _train_and_measure(
    ws: Workspace,
    spec: RunSpec,
    record: dict[str, Any],
    position: tuple[int, int],
    quiet: bool,
    report: Report | None = None,
) -> None:
    import numpy as np
    import torch
    from transformers import set_seed

    from peftlab.environment import device_info, resolve_device
    from peftlab.measure import MemoryMeter, count_parameters, step_time_stats
    from peftlab.methods import ModelContext, get_method
    from peftlab.tasks import EvalContext
    from peftlab.tasks.batching import train_batches
    from peftlab.train import Pruned, TrainOutcome, autocast_factory, step_bar, train

    cfg = ws.experiment.train
    task = ws.task
    method = get_method(spec.method)
    params = method.params(**spec.params)
    if cfg.threads or SHARED_CORES_THREADS:
        torch.set_num_threads(cfg.threads or SHARED_CORES_THREADS)
    device = resolve_device(cfg.device)
    record["env"]["device"] = device_info(device)
    meter = MemoryMeter(device)
    forgetting = ws.forgetting.for_run(spec.seed, device, quiet=quiet) if ws.forgetting else None
    source = forgetting.model_source(ws.model_source) if forgetting else ws.model_source  # may train stage A
    set_seed(spec.seed)

    # -- model: load (quantised where the method says so), then let the method prepare it
    build_started = time.perf_counter()
    keep = task.unquantized_modules(source, ws.data) if method.load_kwargs else ()
    load_kwargs = method.load_kwargs(params, device, keep) if method.load_kwargs else {}
    model = task.load_model(source, ws.data, load_kwargs, ws.pad_id)
    ctx = ModelContext(
        task_type=task.peft_task_type,
        model_type=model.config.model_type,
        total_steps=cfg.steps,
        head_modules=task.head_modules(model),
    )
    if cfg.gradient_checkpointing and method.trains:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = method.prepare(model, params, ctx)
    if not load_kwargs.get("device_map"):
        model.to(device)
    record["params"] = count_parameters(model)
    record["model"]["model_type"] = model.config.model_type if hasattr(model, "config") else None
    record["model"]["dtype"] = str(next(model.parameters()).dtype)
    peft_config = getattr(model, "peft_config", {}).get("default")
    if peft_config is not None:
        targets = getattr(peft_config, "target_modules", None)
        record["hyperparameters"]["resolved_target_modules"] = sorted(targets) if targets else None
    record["time"]["build_s"] = time.perf_counter() - build_started
    forward_model = torch.compile(model) if cfg.compile else model

    # -- training, with validation every eval_every steps
    batches = train_batches(
        ws.splits["train"], cfg.batch_size, cfg.steps * cfg.grad_accum, spec.seed, cfg.length_grouping
    )
    autocast = autocast_factory(device, cfg.precision)
    padding_side = getattr(ws.tokenizer, "padding_side", "right")
    eval_ctx = EvalContext(
        batch_size=cfg.eval_batch_size,
        device=device,
        pad_id=ws.pad_id,
        autocast=autocast,
        padding_side=padding_side,
        tokenizer=ws.tokenizer,
        label_names=tuple(ws.data.label_names),
        max_new_tokens=ws.experiment.data.max_new_tokens,
    )

    kept: dict[str, Any] = {}  # issue 12: the latest per-example outcomes of each split, for the predictions file

    def evaluate(split: str, on: Any = forward_model) -> dict[str, Any]:
        scores = task.evaluate(on, ws.splits[split], eval_ctx)
        kept[split] = scores.pop("examples", None)  # issue 12
        return scores

    # ---- the model is built and prepared by its method; nothing has trained yet.
    if forgetting is not None:  # the base model's scores (adapter disabled), before any step
        forgetting.before(model, load_kwargs, lambda base: evaluate("test", base))

    index, total = position
    bar = step_bar(cfg.steps, f"[{index}/{total}] {spec.label} s{spec.seed}", quiet)
    meter.baseline()
    meter.start()
    try:
        if method.trains:
            outcome = train(
                forward_model,
                batches,
                cfg,
                spec.lr,
                device,
                collate=lambda idx: task.collate(ws.splits["train"], idx, ws.pad_id, padding_side),
                evaluate=lambda: evaluate("validation"),
                on_step=method.on_step,
                progress=bar,
                report=report,
            )
        else:  # a reference row (zero-shot): measured and recorded like any run, nothing trained
            outcome = TrainOutcome()
    except Pruned as err:  # keep what was measured before the pruner stopped it
        curve = err.outcome.curve
        last = {k.removeprefix("val_"): v for k, v in curve[-1].items() if k.startswith("val_")} if curve else None
        record["metrics"] = {"test": None, "validation": last, "final_train_loss": err.outcome.final_train_loss}
        record["metrics"]["curve"] = curve
        record["time"].update({"train_s": err.outcome.train_time_s, "steps": err.outcome.steps_done})
        raise
    finally:
        bar.close()
    if method.trains:
        meter.stop("train")

    # ---- training has finished (or was skipped); the model is the trained model.
    # Measurements of the trained model (e.g. forgetting probes' "after") belong here.

    # -- final evaluation on validation and test
    meter.start()
    eval_started = time.perf_counter()
    test = evaluate("test")
    validation = outcome.curve[-1] if outcome.curve and outcome.curve[-1]["step"] == cfg.steps else None
    validation = (
        {k.removeprefix("val_"): v for k, v in validation.items() if k.startswith("val_")}
        if validation
        else evaluate("validation")
    )
    eval_s = time.perf_counter() - eval_started
    meter.stop("eval")
    samples = test.pop("samples", None)
    if isinstance(validation, dict):
        validation.pop("samples", None)
    if samples is not None:
        record["samples"] = {"test": samples}
    if forgetting is not None:
        forgetting.after(model, test, record)
    from peftlab.predictions import write_predictions  # issue 12: per-example outcomes beside the record

    record["predictions"] = write_predictions(ws.results_dir, spec.run_id, kept)  # issue 12

    warm = cfg.timing_warmup_steps
    steady_time = float(np.sum(outcome.step_times[warm:])) if len(outcome.step_times) > warm else outcome.train_time_s
    steady_tokens = (
        int(np.sum(outcome.step_tokens[warm:])) if len(outcome.step_times) > warm else int(np.sum(outcome.step_tokens))
    )
    steady_samples = (
        int(np.sum(outcome.step_samples[warm:]))
        if len(outcome.step_times) > warm
        else int(np.sum(outcome.step_samples))
    )
    record["metrics"] = {
        "test": test,
        "validation": validation,
        "final_train_loss": outcome.final_train_loss,
        "curve": outcome.curve,
    }
    record["speed"] = {
        "train_tokens_per_s": steady_tokens / steady_time if steady_time > 0 else None,
        "train_samples_per_s": steady_samples / steady_time if steady_time > 0 else None,
        **step_time_stats(outcome.step_times, warm),
        "warmup_steps_excluded": min(warm, len(outcome.step_times)),
        "eval_samples_per_s": test.get("samples_per_s"),
        "eval_tokens_per_s": test.get("tokens_per_s"),
        "padding_fraction": None,
    }
    record["memory"] = meter.record()
    record["time"].update(
        {
            "train_s": outcome.train_time_s,
            "validation_s": outcome.eval_time_s,
            "final_eval_s": eval_s,
            "steps": outcome.steps_done,
        }
    )
    record["speed"].update(
        _inference_latency(model, ws, device, autocast, padding_side, method.full_model, ws.task.latency_examples)
    )
    record["size"] = _save_outputs(model, ws, spec, method, record)


def _save_outputs(model: Any, ws: Workspace, spec: RunSpec, method: Any, record: dict[str, Any]) -> dict[str, Any]:
    """Save what the experiment's `save:` asks for (atomically) and return the record's `size` entry.

    The size is that of the saved safetensors whether or not they are kept: an adapter method's
    adapter (with a trained head, if any), a full fine-tune's whole model.
    """
    import shutil
    import tempfile

    from peftlab.measure import MB, saved_size_bytes
    from peftlab.results import publish_dir

    if not method.trains:
        return {"saved_bytes": 0, "saved_mb": 0.0, "what": "nothing (the base model as loaded)"}
    what = "full model" if method.full_model else "adapter (incl. trained head)"
    save = ws.experiment.save
    keep = save.full_models if method.full_model else save.adapters
    if not keep:
        size = saved_size_bytes(model)
        return {"saved_bytes": size, "saved_mb": size / MB, "what": what}
    folder = ws.results_dir / save.dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.run_id
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.run_id}.", suffix=".tmp", dir=folder))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if method.full_model:
            ws.tokenizer.save_pretrained(tmp)
        size = sum(p.stat().st_size for p in tmp.rglob("*.safetensors"))
        if target.exists():  # a --force re-run replaces the run's earlier output
            shutil.rmtree(target)
        publish_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    record["artifacts"] = {"full_model" if method.full_model else "adapter": str(target)}
    return {"saved_bytes": size, "saved_mb": size / MB, "what": what}


def _inference_latency(
    model: Any, ws: Workspace, device: str, autocast: Any, padding_side: str, full_model: bool, n: int = 32
) -> dict[str, Any]:
    """Median per-example latency at batch size 1, adapter attached and (LoRA family) merged.

    Merging happens on a copy, after everything else is measured; quantised bases are not
    merged (that would dequantise and requantise the weights).
    """
    import copy

    import numpy as np
    import torch

    split = ws.splits["test"]
    indices = [np.array([i]) for i in range(min(n, len(split)))]

    def measure(m: Any) -> float:
        m.eval()
        times = []
        with torch.inference_mode(), autocast():
            for i, idx in enumerate(indices):
                batch = {k: v.to(device) for k, v in ws.task.collate(split, idx, ws.pad_id, padding_side).items()}
                batch.pop("labels")
                start = time.perf_counter()
                m(**batch)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                if i >= 3:  # warm-up excluded
                    times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times)) if times else float("nan")

    out: dict[str, Any] = {"latency_ms_bs1": measure(model), "latency_ms_bs1_merged": None}
    mergeable = hasattr(model, "merge_and_unload") and not full_model
    quantized = getattr(getattr(model, "base_model", model), "is_loaded_in_4bit", False) or any(
        p.__class__.__name__ == "Params4bit" for p in model.parameters()
    )
    if mergeable and not quantized:
        try:
            merged = copy.deepcopy(model).merge_and_unload()
        except (ValueError, TypeError, AttributeError, NotImplementedError):
            merged = None  # prompt/prefix tuning cannot be merged into the weights
        if merged is not None:
            out["latency_ms_bs1_merged"] = measure(merged)
            del merged
    return out


# ---------------------------------------------------------------- isolation


def die_with_parent(parent_pid: int) -> None:
    """Make a forked child die when its parent does (Linux): an orphan would go on writing a record
    for a run that the re-run is about to start again. Other systems rely on the results lock."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(137)


def execute_isolated(
    ws: Workspace,
    spec: RunSpec,
    position: tuple[int, int],
    quiet: bool = False,
    *,
    report: Report | None = None,
    on_record: OnRecord | None = None,
) -> dict:
    """Run in a forked child; a child that dies without a record gets one written for it here."""
    path = record_path(ws.results_dir, spec.run_id)
    before = path.stat().st_mtime_ns if path.exists() else None
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            die_with_parent(parent)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            execute_run(ws, spec, position, quiet, report=report, on_record=on_record)
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
    except KeyboardInterrupt:
        os.waitpid(pid, 0)
        raise
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130:
        raise KeyboardInterrupt
    if path.exists() and path.stat().st_mtime_ns != before:
        return read_record(path)
    record = base_record(ws, spec)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        record["status"] = "oom" if sig == signal.SIGKILL else "failed"
        record["error"] = f"run process killed by signal {signal.Signals(sig).name}" + (
            " (likely the kernel's out-of-memory killer)" if sig == signal.SIGKILL else ""
        )
    else:
        record["error"] = f"run process exited with code {os.WEXITSTATUS(status)} without writing a record"
    if on_record is not None:
        on_record(record)
    write_record(ws.results_dir, record)
    return record


def can_fork() -> bool:
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def summary_line(record: dict[str, Any], position: tuple[int, int]) -> str:
    index, total = position
    head = f"[{index}/{total}] {record['label']} s{record['seed']}"
    if record["status"] != "ok":
        return f"✗ {head}: {record['status']} — {record.get('error')}"
    test = record["metrics"]["test"]
    mem = record["memory"].get("peak_mb")
    speed = record["speed"].get("train_tokens_per_s")
    f1 = f"  F1 {test['f1_macro']:.3f}" if test.get("f1_macro") is not None else ""
    ppl = f"  ppl {test['perplexity']:.2f}" if test.get("perplexity") is not None else ""
    return (
        f"✓ {head}: test acc {test['accuracy']:.3f}{f1}{ppl} | "
        f"trainable {record['params']['trainable_pct']:.2f}% | "
        + (f"{speed:,.0f} tok/s | peak {mem:,.0f} MB | " if speed is not None and mem is not None else "no training | ")
        + f"saved {record['size']['saved_mb']:.2f} MB | {record['time']['total_s']:.0f}s"
    )


# ---------------------------------------------------------------- one owner per results folder


def hold_results_lock(results_dir: Path, wait_s: float = 5.0) -> Any:
    """Take `results/<exp>/.lock` for this process, or fail with one line naming the owner.

    An flock, not a pid file: the kernel releases it when the owner and every forked child that
    inherited it are gone, so a SIGKILLed sweep never leaves a stale lock, and a re-run cannot
    start while an orphaned run from the killed sweep is still writing. A killed sweep's processes
    take a moment to exit, hence the short wait. Keep the returned file open.
    """
    import fcntl

    from peftlab.errors import UserError

    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / ".lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the life of the process
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise UserError(
                f"{results_dir} is in use by pid {owner}; wait for it to finish or stop it, then run again"
            ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    for tmp in (results_dir / "runs").glob(".*.tmp"):  # a record write cut short by a kill
        tmp.unlink(missing_ok=True)
    return handle
