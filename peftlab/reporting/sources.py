"""Where a report's runs come from: results folders and experiment bundles, combined only where comparable.

`peftlab report A B … --out C` pools the runs of every source into one report. A row of the
summary (experiment × method variant × device type) pools seeds, so runs from different sources
may share a row only when they computed the same thing on the same data: the same `config_hash`
(which hashes everything a run computes except its seed) and the same `data.fingerprint` (the
exact rows). Seeds 0–2 run here and 3–5 elsewhere become one row of six seeds; two folders that
scored on different test sets are refused in one line naming the difference, never pooled
silently. Environments that differ are footnoted by the report (reporting/environments.py).

A source is a results folder (`runs/*.json` + predictions files) or a bundle
(reporting/bundle.py: the same records and predictions as parquet tables).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftlab.errors import UserError
from peftlab.records.results import flatten, load_records

# keys that differ between runs of one row by design (the seed), or that say where/when, not what
_NOT_CONFIG = ("seed",)


@dataclass
class Loaded:
    """The runs of every source, the per-example test outcomes of those that have them, and each run's source."""

    records: list[dict[str, Any]]
    outcomes: dict[str, Any]  # run id -> comparison.Outcome
    origin: dict[str, Path]  # run id -> the folder or bundle it came from


def is_bundle(path: Path) -> bool:
    from peftlab.reporting.bundle import MANIFEST

    return (Path(path) / MANIFEST).is_file()


def missing_sources(paths: Iterable[Path]) -> list[str]:
    """One line per path that is neither a results folder (with runs/) nor a bundle."""
    return [
        f"{p}: neither a results folder (no runs/ folder, expected results/<experiment>) nor a bundle (no bundle.json)"
        for p in map(Path, paths)
        if not (p / "runs").is_dir() and not is_bundle(p)
    ]


def load_sources(paths: Iterable[Path], run_ids: set[str] | None = None, log: Callable[[str], None] = print) -> Loaded:
    """Every run of every source, checked to be comparable where it shares a row (UserError, one line, if not)."""
    from peftlab.reporting.bundle import read_bundle
    from peftlab.reporting.comparison import load_outcomes

    records: list[dict[str, Any]] = []
    outcomes: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    for path in map(Path, paths):
        if is_bundle(path):
            found, found_outcomes = read_bundle(path, run_ids)
        else:
            found = load_records([path], run_ids)
            found_outcomes = load_outcomes([path], found, log)
        for record in found:
            run_id = str(record.get("run_id"))
            if run_id in origin:
                log(f"warning: run {run_id} is in both {origin[run_id]} and {path}; the first is kept")
                continue
            origin[run_id] = path
            records.append(record)
            if run_id in found_outcomes:
                outcomes[run_id] = found_outcomes[run_id]
    if len({*origin.values()}) > 1:
        check_comparable(records, origin)
    return Loaded(records, outcomes, origin)


def _row_key(record: dict[str, Any]) -> tuple[str, str, str]:
    """The summary row a run falls in: experiment, method variant and the device type it ran on."""
    device = (record.get("config") or {}).get("train", {}).get("device")
    return (str(record.get("experiment")), str(record.get("label")), str(device))


def check_comparable(records: list[dict[str, Any]], origin: dict[str, Path]) -> None:
    """Refuse (UserError, one line naming the difference) runs of different sources that would share a row
    or be paired example by example while their data or configuration differ.

    Data: within an experiment every run is paired on the same test examples, so the fingerprint
    must agree across sources for the whole experiment. Config: within a row, the config hash.
    """
    first_of: dict[tuple[str, ...], dict[str, Any]] = {}
    for record in records:
        experiment = str(record.get("experiment"))
        fingerprint = (record.get("data") or {}).get("fingerprint")
        if fingerprint is not None:
            seen = first_of.setdefault(("data", experiment), record)
            theirs = (seen.get("data") or {}).get("fingerprint")
            if theirs != fingerprint and origin[str(seen["run_id"])] != origin[str(record["run_id"])]:
                raise UserError(
                    _difference(
                        seen, record, origin, f"experiment {experiment}: data.fingerprint {theirs} vs {fingerprint}"
                    )
                    + "; runs scored on different data are not combined"
                )
        if record.get("config_hash") is None:
            continue
        seen = first_of.setdefault(("row", *_row_key(record)), record)
        apart = origin[str(seen["run_id"])] != origin[str(record["run_id"])]
        if seen["config_hash"] != record["config_hash"] and apart:
            raise UserError(
                _difference(
                    seen,
                    record,
                    origin,
                    f"{experiment}/{record.get('label')}: config_hash {seen['config_hash']} vs {record['config_hash']}",
                )
                + "; runs of different configurations are not combined into one row"
            )


def _difference(a: dict[str, Any], b: dict[str, Any], origin: dict[str, Path], what: str) -> str:
    """One line: the two sources, what differs, and the first config keys that differ with both values."""
    flat_a, flat_b = flatten(a.get("config") or {}), flatten(b.get("config") or {})
    keys = [
        k
        for k in sorted(set(flat_a) | set(flat_b))
        if k.split(".")[-1] not in _NOT_CONFIG and k != "experiment_file" and flat_a.get(k) != flat_b.get(k)
    ]
    named = ", ".join(f"config.{k} {flat_a.get(k)!r} vs {flat_b.get(k)!r}" for k in keys[:3])
    more = f" (and {len(keys) - 3} more)" if len(keys) > 3 else ""
    where = f"{origin[str(a['run_id'])]} and {origin[str(b['run_id'])]}"
    return f"{where} differ: {what}" + (f" ({named}{more})" if named else "")
