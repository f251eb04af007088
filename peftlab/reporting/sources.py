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
    sources: list[Path]  # the folder or bundle each record came from, in the order of `records`


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
    sources: list[Path] = []
    seen: dict[tuple[str, str], Path] = {}
    for path in map(Path, paths):
        if is_bundle(path):
            found, found_outcomes = read_bundle(path, run_ids)
        else:
            found = load_records([path], run_ids)
            found_outcomes = load_outcomes([path], found, log)
        for record in found:
            run_id = str(record.get("run_id"))
            key = (str(record.get("experiment")), run_id)  # equal configs in two experiments share a run id
            if key in seen:
                log(f"warning: run {run_id} is in both {seen[key]} and {path}; the first is kept")
                continue
            seen[key] = path
            records.append(record)
            sources.append(path)
            if run_id in found_outcomes:
                outcomes.setdefault(run_id, found_outcomes[run_id])
    if len(set(sources)) > 1:
        check_comparable(records, sources)
    return Loaded(records, outcomes, sources)


def _row_key(record: dict[str, Any]) -> tuple[str, str, str]:
    """The summary row a run falls in: experiment, method variant and the device type it ran on."""
    device = (record.get("config") or {}).get("train", {}).get("device")
    return (str(record.get("experiment")), str(record.get("label")), str(device))


def check_comparable(records: list[dict[str, Any]], sources: list[Path]) -> None:
    """Refuse (UserError, one line naming the difference) runs of different sources that would share a row
    or be paired example by example while their data or configuration differ.

    Data: within an experiment every run is paired on the same test examples, so the fingerprint
    must agree across sources for the whole experiment. Config: within a row, the config hash.
    `sources[i]` is where `records[i]` came from.
    """
    first: dict[tuple[str, ...], int] = {}
    for i, record in enumerate(records):
        experiment = str(record.get("experiment"))
        fingerprint = (record.get("data") or {}).get("fingerprint")
        if fingerprint is not None:
            j = first.setdefault(("data", experiment), i)
            theirs = (records[j].get("data") or {}).get("fingerprint")
            if theirs != fingerprint and sources[j] != sources[i]:
                what = f"experiment {experiment}: data.fingerprint {theirs} vs {fingerprint}"
                raise UserError(
                    _difference(records[j], record, sources[j], sources[i], what)
                    + "; runs scored on different data are not combined"
                )
        if record.get("config_hash") is None:
            continue
        j = first.setdefault(("row", *_row_key(record)), i)
        theirs = records[j]["config_hash"]
        if theirs != record["config_hash"] and sources[j] != sources[i]:
            what = f"{experiment}/{record.get('label')}: config_hash {theirs} vs {record['config_hash']}"
            raise UserError(
                _difference(records[j], record, sources[j], sources[i], what)
                + "; runs of different configurations are not combined into one row"
            )


def _difference(a: dict[str, Any], b: dict[str, Any], where_a: Path, where_b: Path, what: str) -> str:
    """One line: the two sources, what differs, and the first config keys that differ with both values."""
    flat_a, flat_b = flatten(a.get("config") or {}), flatten(b.get("config") or {})
    keys = [
        k
        for k in sorted(set(flat_a) | set(flat_b))
        if k.split(".")[-1] not in _NOT_CONFIG and k != "experiment_file" and flat_a.get(k) != flat_b.get(k)
    ]
    named = ", ".join(f"config.{k} {flat_a.get(k)!r} vs {flat_b.get(k)!r}" for k in keys[:3])
    more = f" (and {len(keys) - 3} more)" if len(keys) > 3 else ""
    return f"{where_a} and {where_b} differ: {what}" + (f" ({named}{more})" if named else "")
