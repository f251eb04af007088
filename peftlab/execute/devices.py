"""Which GPU each worker of a pool uses: `--devices 0,1,2,3` and `--runs-per-device K`.

A worker is pinned to its GPU by `CUDA_VISIBLE_DEVICES`, set in the forked worker before anything
in it touches CUDA (the experiment process never computes with torch, see isolation.py), so the
run sees its one GPU as `cuda:0` and its memory peak is its own. K workers may share one GPU when
the runs are small; worker w (1-based) gets `devices[(w - 1) // K]`.
"""

from __future__ import annotations

import os

from peftlab.errors import UserError


def visible_gpu_count() -> int:
    """How many CUDA GPUs this process may use (tests replace this)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()  # through NVML: unlike is_available(), it leaves fork safe


def parse_devices(text: str) -> list[str]:
    """`0,1,3` → ['0', '1', '3'], each checked against the GPUs that exist; a one-line error otherwise."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or not all(item.isdigit() for item in items) or len(set(items)) != len(items):
        raise UserError(f"--devices: got {text!r}, expected distinct GPU indices such as 0,1,2,3")
    count = visible_gpu_count()
    missing = [item for item in items if int(item) >= count]
    if missing:
        have = f"GPUs 0-{count - 1}" if count else "no CUDA GPU"
        raise UserError(f"--devices: GPU {', '.join(missing)} does not exist; this machine has {have}")
    return items


def plan_workers(devices: list[str] | None, runs_per_device: int, workers: int | None) -> int:
    """The pool's size: --workers, or every device × --runs-per-device; never more workers than slots."""
    if runs_per_device < 1:
        raise UserError(f"--runs-per-device: got {runs_per_device}, must be at least 1")
    if devices is None:
        if runs_per_device != 1:
            raise UserError("--runs-per-device: needs --devices (which GPUs the runs share)")
        return workers or 1
    slots = len(devices) * runs_per_device
    if workers is not None and workers > slots:
        raise UserError(
            f"--workers: got {workers}, but --devices {','.join(devices)} × --runs-per-device {runs_per_device} "
            f"gives {slots} slots; raise --runs-per-device or lower --workers"
        )
    return workers or slots


def pin_worker(devices: list[str] | None, runs_per_device: int, worker: int) -> str | None:
    """In a forked worker (1-based index): keep only its GPU visible; returns it (None: unpinned)."""
    if devices is None:
        return None
    device = devices[(worker - 1) // runs_per_device % len(devices)]
    already = os.environ.get("CUDA_VISIBLE_DEVICES")  # indices count within a mask the user set
    if already:
        device = [d.strip() for d in already.split(",")][int(device)]
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    return device
