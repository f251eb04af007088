"""What a record needs to be reproduced: package versions, git state, device and host."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

PACKAGES = (
    "peftlab",
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "datasets",
    "evaluate",
    "optuna",
    "pandas",
    "seaborn",
    "accelerate",
    "scikit-learn",
    "numpy",
)


@cache
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@cache
def lock_digest() -> str | None:
    """The hash of the lock (requirements/*.txt) this environment was installed from, or None.

    The bootstrap stamps it into the virtual environment after installing from the lock, so it
    names what is installed, not what a checkout's lock says today; an environment installed by
    hand (pip install peftlab) has none, and its records say so.
    """
    import sys

    stamp = Path(sys.prefix) / "peftlab-lock.sha256"
    try:
        text = stamp.read_text().strip()
    except OSError:
        return None
    return text if text and text != "none" else None


@cache
def git_state() -> dict[str, Any]:
    """The peftlab checkout's commit and whether it had uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return {"sha": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: str) -> dict[str, Any]:
    import os

    import torch

    info: dict[str, Any] = {
        "type": "cuda" if device.startswith("cuda") else device.split(":")[0],
        "name": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        info.update(
            {
                "name": props.name,
                "gpu_memory_mb": props.total_memory // (1024 * 1024),
                "capability": f"{props.major}.{props.minor}",
                "cuda": torch.version.cuda,
                "bf16": torch.cuda.is_bf16_supported(),
            }
        )
    return info


def device_type(requested: str) -> str:
    """The kind of device (`cpu`, `cuda`, `mps`) a run asking for `requested` runs on; part of its identity.

    `auto` is resolved at plan time, so that a CPU record never counts as finished on a GPU
    machine (nor the reverse), by `auto_device_type`.
    """
    if requested != "auto":
        return "cuda" if requested.startswith("cuda") else requested.split(":")[0]
    return auto_device_type()


@cache
def auto_device_type() -> str:
    """`cuda` if this torch build can see a GPU, else `cpu`; without importing torch where possible.

    The plan (and `--dry-run`) needs the answer, and must neither import torch (seconds) nor
    initialise CUDA in the experiment process (the runs it forks could then not use the GPU). A
    CPU-only build is read off torch's `version.py`; a CUDA build asks NVML, as torch's own
    fork-safe check does; anything else (ROCm, no NVML) asks torch's NVML-first `device_count`.
    """
    build = _torch_build()
    if build == "cpu":
        return "cpu"
    if build == "cuda":
        count = _nvml_visible_device_count()
        if count is not None:
            return "cuda" if count > 0 else "cpu"
    import torch

    return "cuda" if torch.cuda.device_count() > 0 else "cpu"


def _torch_build() -> str:
    """`cpu`, `cuda` or `other` (ROCm, XPU, unreadable), from the installed torch's `version.py` text."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "other"
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return "other"
    built = {m["name"] for m in re.finditer(r"^(?P<name>cuda|hip|xpu)\b.*=\s*'[^']+'", text, re.MULTILINE)}
    if not built:
        return "cpu"
    return "cuda" if built == {"cuda"} else "other"


def _nvml_visible_device_count() -> int | None:
    """GPUs NVML reports, 0 when CUDA_VISIBLE_DEVICES hides them all; None when NVML cannot be asked."""
    import ctypes
    import os

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and (not visible.strip() or visible.strip().startswith("-")):
        return 0
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return None
    count = ctypes.c_uint(0)
    try:
        return int(count.value) if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 else None
    finally:
        nvml.nvmlShutdown()


def resolve_device(requested: str) -> str:
    """The device a run uses; for `auto` the same answer as `device_type`, which named the run."""
    if requested == "auto":
        return device_type("auto")
    import torch

    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available")
    return requested
