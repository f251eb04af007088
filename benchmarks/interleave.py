"""Interleaved repetitions of benchmark variants: the measuring part every benchmark shares.

A noisy machine (other jobs, thermal limits) slows whatever runs at that moment, so variants are
run a b c a b c ... and compared by their median, after one untimed round that warms kernels,
the allocator and caches for every variant. Each variant returns real (non-padding) tokens/s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
from collections.abc import Callable, Mapping
from typing import Any

Variant = Callable[[dict[str, Any], int], float]


def benchmark_parser(doc: str, *, model: str, steps: int, warmup: int, batch: int) -> argparse.ArgumentParser:
    """The options every benchmark takes (model, data, steps, warm-up, repetitions, batch, length, device)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model", default=model)
    parser.add_argument("--data", default="builtin:rotten_tomatoes")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--device", default="auto")
    return parser


def trainer_kwargs(ctx: dict[str, Any], rep: int, output_dir: str) -> dict[str, Any]:
    """The HF Trainer settings every yardstick shares (TrainingArguments and trl's SFTConfig alike):
    the same steps, batch, constant lr and seed as peftlab's side, and nothing logged or saved."""
    import torch

    cuda = ctx["device"].startswith("cuda")
    return {
        "output_dir": output_dir,
        "per_device_train_batch_size": ctx["batch"],
        "max_steps": ctx["steps"],
        "learning_rate": ctx["lr"],
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "max_grad_norm": 1.0,
        "logging_strategy": "no",
        "save_strategy": "no",
        "report_to": [],
        "seed": rep,
        "data_seed": rep,
        "dataloader_num_workers": 0,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "use_cpu": not cuda,
        "disable_tqdm": True,
    }


def _silenced(fn: Variant, ctx: dict[str, Any], rep: int) -> float:
    with contextlib.redirect_stderr(open(os.devnull, "w")), contextlib.redirect_stdout(open(os.devnull, "w")):
        return fn(ctx, rep)


def run_interleaved(variants: Mapping[str, Variant], ctx: dict[str, Any], reps: int, warmup: int) -> dict[str, float]:
    """Median real tokens/s of each variant over `reps` interleaved repetitions; prints each and a ratio table."""
    short = {**ctx, "steps": warmup + 2, "batches": ctx["batches"][: warmup + 2]}
    for fn in variants.values():
        _silenced(fn, short, 0)
    results: dict[str, list[float]] = {k: [] for k in variants}
    width = max(len(k) for k in variants)
    for rep in range(reps):
        for label, fn in variants.items():
            results[label].append(_silenced(fn, ctx, rep))
            print(f"  rep {rep + 1}: {label:<{width}} {results[label][-1]:>10,.0f} real tokens/s", flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    first = next(iter(med.values()))
    print(f"\n| variant | median real tokens/s | {next(iter(med))[:3]} / variant |\n|---|---:|---:|")
    for label, value in med.items():
        print(f"| {label} | {value:,.0f} | {first / value:.2f} |")
    # under a load that changes between repetitions, the ratio within one repetition is steadier
    # than the ratio of medians: print its median too
    head = next(iter(results.values()))
    for label, values in list(results.items())[1:]:
        ratios = [a / b for a, b in zip(head, values, strict=True)]
        shown = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"per-repetition ratio vs {label}: {shown} (median {statistics.median(ratios):.2f})")
    return med
