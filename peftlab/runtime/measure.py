"""Measurements that a reviewer can trust: parameters, memory, step times and saved size.

The pitfalls this module exists to avoid: 4-bit parameters counted at half their number
(peft#733), CUDA reserved memory reported as if it were allocated, padding counted as
throughput, and warm-up steps averaged into the speed.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MB = 1024 * 1024


# ------------------------------------------------------------------ parameters


def _numel(param: Any) -> int:
    """Elements a parameter stands for: bitsandbytes' Params4bit packs two 4-bit values per byte."""
    n = param.numel()
    if param.__class__.__name__ == "Params4bit":
        quant_storage = getattr(param, "quant_storage", None)
        bytes_per_item = quant_storage.itemsize if quant_storage is not None else param.element_size()
        n = n * 2 * bytes_per_item
    return n


def count_parameters(model: Any) -> dict[str, Any]:
    """Trainable and total elements; 4-bit aware, and AdaLoRA counted at its final rank budget."""
    trainable = total = 0
    seen: set[int] = set()
    for param in model.parameters():  # parameters() already skips shared (tied) tensors
        if id(param) in seen:
            continue
        seen.add(id(param))
        n = _numel(param)
        total += n
        if param.requires_grad:
            trainable += n
    surplus = _adalora_surplus(model)
    trainable, total = trainable - surplus, total - surplus
    counts = {"trainable": trainable, "total": total, "trainable_pct": 100.0 * trainable / max(total, 1)}
    if surplus:
        counts["adalora_pruned"] = surplus  # held at init_r during training, masked by the end
    return counts


def _adalora_surplus(model: Any) -> int:
    """Trainable elements AdaLoRA holds beyond its final budget of `target_r` ranks per adapted matrix.

    AdaLoRA starts every adapted matrix at `init_r` ranks and prunes them during training down to
    a total of `target_r` ranks per matrix on average; pruned ranks are masked, not removed, so the
    tensors keep their `init_r` size. Counted at that size, AdaLoRA would look init_r/target_r
    times costlier than the LoRA of rank target_r it is compared with. One rank costs in + out + 1
    elements (a row of A, a column of B, its singular value in E). The budget is exact in ranks;
    in elements it is exact when the adapted matrices share a shape (e.g. query and value).
    """
    configs = getattr(model, "peft_config", None) or {}
    surplus = 0
    for module in model.modules():
        singular_values = getattr(module, "lora_E", None)
        if singular_values is None or not hasattr(module, "ranknum"):
            continue
        for adapter, values in singular_values.items():
            target = getattr(configs.get(adapter), "target_r", None)
            if target is None or not values.requires_grad:
                continue
            per_rank = module.lora_A[adapter].shape[1] + module.lora_B[adapter].shape[0] + 1
            surplus += max(values.shape[0] - target, 0) * per_rank
    return surplus


# ------------------------------------------------------------------ saved size


def saved_size_bytes(model: Any, state_dict: dict[str, Any] | None = None) -> int:
    """Bytes on disk as saved with safetensors: the adapter for peft models, the whole model otherwise.

    `state_dict`: what to save in place of the model's own tensors (an FSDP model's gathered whole).
    """
    extra = {"state_dict": state_dict} if state_dict is not None else {}
    with tempfile.TemporaryDirectory(prefix="peftlab-size-") as tmp:
        model.save_pretrained(tmp, safe_serialization=True, **extra)
        return sum(p.stat().st_size for p in Path(tmp).rglob("*.safetensors"))


# ------------------------------------------------------------------ training-state memory

# Peak RSS on a CPU is mostly the Python/torch runtime (about 1 GB for every method), so methods
# that differ by megabytes look alike there, and QLoRA's 4-bit weights do not show. What a method
# changes is its training state: weights (as stored, so 4-bit packed weights count at half a byte),
# gradients, optimiser state, and the activations and temporaries one step allocates. The first
# three are read off the tensors; the last comes from torch.profiler's allocator events over one
# optimiser step (the step is inside the timing warm-up, so its profiling costs no measured speed).


def _tensor_bytes(t: Any) -> int:
    return int(t.numel()) * int(t.element_size())


def state_bytes(model: Any, optimizer: Any) -> dict[str, int]:
    """Bytes held by weights (and buffers), gradients of the trainable set, and the optimiser's state."""
    import torch

    weights = gradients = 0
    seen: set[int] = set()
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        weights += _tensor_bytes(param)  # a Params4bit's storage is packed uint8: its real size
        if param.requires_grad:
            gradients += _tensor_bytes(param)  # the gradient a step allocates (same dtype and shape)
    weights += sum(_tensor_bytes(b) for b in model.buffers())
    optim = sum(
        _tensor_bytes(v)
        for state in optimizer.state.values()
        for v in state.values()
        if torch.is_tensor(v) and v.device.type != "meta"
    )
    return {"weights": weights, "gradients": gradients, "optimizer": optim}


class StepAllocations:
    """The peak of bytes allocated on the CPU during one optimiser step, from torch.profiler's memory events.

    The profiler talks on stderr (kineto's start/stop lines, the allocator's note that blocks made
    before profiling will not show their release), so the profiled step runs with stderr pointed at
    /dev/null: a run's output stays readable. Python exceptions are unaffected; the progress bar
    is drawn after the step.
    """

    def __init__(self) -> None:
        self.peak_bytes: int | None = None
        self._prof: Any = None
        self._saved_fd: int | None = None

    def __enter__(self) -> StepAllocations:
        import os
        import sys

        from torch.profiler import ProfilerActivity, profile

        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._prof.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        import os

        try:
            self._prof.__exit__(*exc)
        finally:
            if self._saved_fd is not None:
                os.dup2(self._saved_fd, 2)
                os.close(self._saved_fd)
                self._saved_fd = None
        if exc[0] is not None:
            return
        try:  # kineto's event list (checked in tests/test_training_state.py)
            events = [e for e in self._prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        except AttributeError:
            return
        running = peak = 0
        for event in sorted(events, key=lambda e: e.start_ns()):
            running += int(event.nbytes())
            peak = max(peak, running)
        self.peak_bytes = peak


def training_state(held: dict[str, int], step_peak_bytes: int | None) -> dict[str, Any]:
    """The record's `memory.training_state`: MB per part and their total (None parts where unmeasured).

    The profiled step begins with gradients freed (zero_grad(set_to_none)) and the optimiser state
    allocated, so what it allocates at its peak is the gradients plus activations and temporaries.
    """
    out: dict[str, Any] = {f"{k}_mb": round(v / MB, 6) for k, v in held.items()}
    if step_peak_bytes is None:
        out["activations_mb"] = None
        out["total_mb"] = None
    else:
        out["activations_mb"] = round(max(step_peak_bytes - held["gradients"], 0) / MB, 6)
        out["total_mb"] = round((held["weights"] + held["optimizer"] + max(step_peak_bytes, held["gradients"])) / MB, 6)
    out["measure"] = (
        "weights (as stored: 4-bit packed at half a byte), gradients and optimiser state from the tensors; "
        "activations and temporaries = torch.profiler's peak CPU allocation over one warm-up step less the gradients"
    )
    return out


# ------------------------------------------------------------------ memory


def _rss_kb(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_rss_peak() -> bool:
    """Linux resets the resident high-water mark when "5" is written to clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class MemoryMeter:
    """Peak memory per phase (build, train, eval).

    CUDA: peak allocated and peak reserved, counters reset at each phase start.
    CPU: peak resident set size of this process, reset through /proc (falls back to the
    process-lifetime peak, flagged, where that is not possible).
    """

    def __init__(self, device: str):
        self.device = device
        self.cuda = device.startswith("cuda")
        self.figures: dict[str, float] = {}
        self.rss_resettable = True

    def start(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.empty_cache()  # so a phase's reserved peak is its own, not the last phase's cache
            torch.cuda.reset_peak_memory_stats()
        else:
            self.rss_resettable = _reset_rss_peak() and self.rss_resettable

    def baseline(self) -> None:
        """What is resident before the phase that is measured: the weights, mostly."""
        if self.cuda:
            import torch

            self.figures["baseline_allocated_mb"] = torch.cuda.memory_allocated() / MB
            self.figures["baseline_reserved_mb"] = torch.cuda.memory_reserved() / MB
        else:
            rss = _rss_kb("VmRSS")
            if rss is not None:
                self.figures["baseline_rss_mb"] = rss / 1024

    def stop(self, phase: str) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.figures[f"{phase}_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / MB
            self.figures[f"{phase}_peak_reserved_mb"] = torch.cuda.max_memory_reserved() / MB
        else:
            peak = _rss_kb("VmHWM")
            if peak is not None:
                self.figures[f"{phase}_peak_rss_mb"] = peak / 1024

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": "cuda" if self.cuda else "cpu"}
        out.update({k: round(v, 1) for k, v in self.figures.items()})
        if self.cuda:
            out["peak_mb"] = out.get("train_peak_allocated_mb")
            out["measure"] = "torch.cuda max_memory_allocated/reserved, reset after the model is built"
        else:
            out["peak_mb"] = out.get("train_peak_rss_mb")
            if "train_peak_rss_mb" in out and "baseline_rss_mb" in out:
                out["train_over_baseline_mb"] = round(out["train_peak_rss_mb"] - out["baseline_rss_mb"], 1)
            out["measure"] = (
                "peak RSS (VmHWM) of the run's own process, reset after the model is built"
                if self.rss_resettable
                else "peak RSS of the run's process since it started (reset unavailable)"
            )
        return out


def per_rank_memory(ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """A distributed run's memory entry: rank 0's figures, `peak_mb` the largest rank's, every rank's kept.

    The largest rank decides whether a run fits the devices, so it is the headline; ranks differ
    by their rows' lengths, FSDP's also by their shards' sizes, and rank 0 by what it writes.
    """
    peaks = [r.get("peak_mb") for r in ranks]
    known = [p for p in peaks if p is not None]
    return {
        **ranks[0],
        "peak_mb": max(known) if known else None,
        "peak_mb_rank0": peaks[0],
        "per_rank": ranks,
        "measure": f"{ranks[0].get('measure')}; peak_mb: the largest of the {len(ranks)} ranks",
    }


# ------------------------------------------------------------------ speed


def step_time_stats(step_times: list[float], warmup: int) -> dict[str, Any]:
    """Median and p90 of optimiser-step times, the first `warmup` steps left out."""
    steady = step_times[warmup:] if len(step_times) > warmup else step_times
    if not steady:
        return {"step_time_median_s": None, "step_time_p90_s": None, "timed_steps": 0}
    arr = np.asarray(steady)
    return {
        "step_time_median_s": float(np.median(arr)),
        "step_time_p90_s": float(np.percentile(arr, 90)),
        "timed_steps": len(steady),
    }
