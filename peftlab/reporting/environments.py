"""Which software made the runs of a table, and a footnote when they were not all made by the same.

Pooling runs from different releases of torch, transformers, peft or bitsandbytes is allowed (a
re-run after a refresh of the lock reuses finished records), but never silent: such a release
can change a method's numbers (transformers 5.24 stopped prefix tuning altogether), so the
table names the packages that differ and how many runs each release made.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

# the releases that decide what a method computes; others (pandas, seaborn) only draw it
DECISIVE = ("torch", "transformers", "peft", "bitsandbytes")


def _ok(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status") == "ok"] or records


def environments(records: list[dict[str, Any]]) -> dict[str, Counter]:
    """package (and "lock") -> Counter of the value each run recorded ('?' where a record has none)."""
    out: dict[str, Counter] = {}
    for record in _ok(records):
        env = record.get("env") or {}
        versions = env.get("versions") or {}
        for name in DECISIVE:
            out.setdefault(name, Counter())[str(versions.get(name) or "?")] += 1
        out.setdefault("lock", Counter())[str(env.get("lock") or "none")] += 1
    return out


def environment_note(records: list[dict[str, Any]]) -> str:
    """One sentence for under the table: the environment, or which packages differ between its runs."""
    envs = environments(records)
    if not envs:
        return ""
    differing = {name: counts for name, counts in envs.items() if len(counts) > 1 and name != "lock"}
    if differing:
        parts = [
            f"{name} " + ", ".join(f"{version} ({n} runs)" for version, n in sorted(counts.items()))
            for name, counts in differing.items()
        ]
        return (
            f"**Runs from different environments are pooled in this table**: {'; '.join(parts)}. "
            f"Compare rows made by the same releases, or re-run with `--force` in one environment.\n"
        )
    same = ", ".join(f"{name} {next(iter(envs[name]))}" for name in DECISIVE if name in envs)
    locks = envs.get("lock", Counter())
    lock = (
        f"lock {next(iter(locks))}"
        if len(locks) == 1 and "none" not in locks
        else "lock " + ", ".join(f"{h} ({n} runs)" for h, n in sorted(locks.items()))
    )
    return f"Environment of every run: {same}; {lock}.\n"


def cpu_note(records: list[dict[str, Any]]) -> str:
    """Which CPU the table was measured on (from the records), and what a reproduction elsewhere should expect."""
    cpus: Counter = Counter()
    for record in _ok(records):
        device = (record.get("env") or {}).get("device") or {}
        if device.get("type", "cpu") == "cpu" and device.get("name"):
            cpus[f"{device['name']} ({device.get('cpu_count', '?')} cores)"] += 1
    if not cpus:
        return ""
    where = " and ".join(f"{name}{f' ({n} runs)' if len(cpus) > 1 else ''}" for name, n in sorted(cpus.items()))
    return (
        f"Measured on {where}. On another CPU the scores match to the digit only where its kernels round "
        f"alike (the instruction set: AVX2, AVX-512, AMX); expect each score within its interval, and the speed "
        f"and memory columns to differ. `python scripts/update_readme.py --check <block>` says, cell by cell, "
        f"whether a fresh table matches, lies within the published interval, or lies outside it.\n"
    )
