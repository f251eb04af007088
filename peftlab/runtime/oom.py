"""Was a SIGKILLed run killed by the kernel's out-of-memory killer? Only the kernel's counters can say.

A SIGKILL also comes from a scheduler's time limit, a user's `kill -9` or a container being
stopped. Recording every one as `oom` made such a run look like a reproducible outcome (an `oom`
record counts as finished and is never retried) and put a false reason in the tables. So the
OOM-kill counters the kernel keeps are read before the run and after its death: a SIGKILL is
`oom` only if one of them rose; otherwise, or where none can be read, it is `killed`, which the
next invocation runs again.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def oom_kill_count() -> int | None:
    """OOM kills the kernel has counted where this process can see them, summed; None if none is readable.

    Sources: `/proc/vmstat` (`oom_kill`, system-wide, kernel 4.13+), this process's cgroup v2
    `memory.events` and cgroup v1 `memory.oom_control` (`oom_kill`). A rise in the sum between
    two readings means the OOM killer acted in between.
    """
    counts = [_field(path, "oom_kill") for path in [PROC / "vmstat", *_cgroup_files()]]
    found = [c for c in counts if c is not None]
    return sum(found) if found else None


def killed_status(sig: int, oom_kills_before: int | None) -> tuple[str, str]:
    """(status, error) of a run process that died by signal `sig` without writing its record."""
    name = signal.Signals(sig).name
    if sig != signal.SIGKILL:
        return "failed", f"run process killed by signal {name}"
    after = oom_kill_count()
    if oom_kills_before is not None and after is not None and after > oom_kills_before:
        return "oom", f"run process killed by {name}: the kernel's OOM-kill count rose ({oom_kills_before} → {after})"
    evidence = "its OOM-kill counters did not rise" if after is not None else "no OOM-kill counter is readable"
    return (
        "killed",
        f"run process killed by {name}, not known to be out of memory ({evidence}); it runs again next time",
    )


def _field(path: Path, key: str) -> int | None:
    """The integer after `key` in a `key value` per line file, or None (missing file or key)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    match = re.search(rf"^{re.escape(key)}\s+(\d+)\s*$", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _cgroup_files() -> list[Path]:
    """This process's cgroup v2 `memory.events` and v1 `memory.oom_control`, where they exist.

    Inside a container /proc/self/cgroup may name the host's path; the mount's own root is then
    the container's cgroup, so it is the fallback.
    """
    try:
        lines = (PROC / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    files: list[Path] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates = [CGROUP_ROOT / path.lstrip("/") / "memory.events", CGROUP_ROOT / "memory.events"]
        elif "memory" in controllers.split(","):
            mount = CGROUP_ROOT / "memory"
            candidates = [mount / path.lstrip("/") / "memory.oom_control", mount / "memory.oom_control"]
        else:
            continue
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            files.append(found)
    return files
