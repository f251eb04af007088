"""Run records: one self-describing JSON file per run, written atomically.

A record is the unit of truth: tables, figures and the paper are derived from records only.
A reader never sees a half-written file, because records are renamed into place. A record is
validated against its model (peftlab/records/record.py, docs/record.md) when it is written and when it
is read; an older `schema_version` is upgraded on read, a newer one refused with one line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from peftlab.records.record import FINISHED, SCHEMA_VERSION, STATUSES, RecordError, RunRecord, jsonable, plain, validate

__all__ = [
    "FINISHED",
    "SCHEMA_VERSION",
    "STATUSES",
    "RecordError",
    "Unreadable",
    "finished_record",
    "load_records",
    "read_record",
    "read_run_record",
    "record_path",
    "records_frame",
    "write_record",
]

# what `load_records` does with a file it cannot read: (path, one-line reason)
Unreadable = Callable[[Path, str], None]


def runs_dir(results_dir: Path) -> Path:
    return results_dir / "runs"


def record_path(results_dir: Path, run_id: str) -> Path:
    return runs_dir(results_dir) / f"{run_id}.json"


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=False, allow_nan=False, default=jsonable)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; records are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish_dir(tmp: Path, target: Path) -> None:
    """Move a finished temporary folder into place in one rename, readable by others like a record.

    mkdtemp makes 0700 folders and some writers (safetensors) 0600 files; an adapter or a model
    folder is meant to be shared. `target` must not exist (or be an empty folder).
    """
    os.chmod(tmp, 0o755)
    for path in tmp.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    os.rename(tmp, target)


def write_record(results_dir: Path, record: RunRecord | dict[str, Any]) -> Path:
    """Validate `record` (RecordError, one line, for a bad one or an unknown key: nothing is written) and
    write it atomically. A record is always written at this schema version: a JSON object handed in
    (a test's, an import's) is read as one, strictly."""
    payload = record.as_json() if isinstance(record, RunRecord) else record
    data = plain(payload)
    data["schema_version"] = SCHEMA_VERSION
    model = validate(data, where=f"record {payload.get('run_id') or '?'}")
    path = record_path(results_dir, model.run_id)
    write_json_atomic(path, model.as_json())
    return path


def read_run_record(path: Path) -> RunRecord:
    """The record at `path`, upgraded to this schema version and validated; RecordError (one line) if it cannot be."""
    try:
        with open(path) as fh:
            raw = json.load(fh)
    except OSError as err:
        raise RecordError(f"{path}: cannot be read ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: not JSON ({err})") from None
    if not isinstance(raw, dict):
        raise RecordError(f"{path}: not a record (a JSON {type(raw).__name__}, not an object)")
    return validate(raw, where=str(path))


def read_record(path: Path) -> RunRecord:
    """The record at `path` as the typed record every reader holds (`record.metrics.test`); see read_run_record."""
    return read_run_record(path)


def finished_record(results_dir: Path, run_id: str) -> RunRecord | None:
    path = record_path(results_dir, run_id)
    if not path.is_file():
        return None
    try:
        record = read_record(path)
    except RecordError:
        return None
    return record if record.finished else None


def skipped_line(path: Path, reason: str) -> None:
    """The default for an unreadable record: one line on stderr naming the file and why it is skipped."""
    reason = reason if reason.startswith(str(path)) else f"{path}: {reason}"
    print(f"peftlab: skipped {reason}", file=sys.stderr)


def load_records(
    results_dirs: Iterable[Path], run_ids: set[str] | None = None, *, unreadable: Unreadable | None = skipped_line
) -> list[RunRecord]:
    """Every readable record under the given experiment folders (optionally only `run_ids`).

    A file that cannot be read (not JSON, an invalid record, a schema version this peftlab does
    not read) is reported to `unreadable` with its one-line reason and left out: by default one
    line on stderr, never a traceback and never silently.
    """
    records = []
    for results_dir in results_dirs:
        for path in sorted(runs_dir(Path(results_dir)).glob("*.json")):
            try:
                record = read_record(path)
            except RecordError as err:
                if unreadable is not None:
                    unreadable(path, str(err))
                continue
            if run_ids is None or record.run_id in run_ids:
                records.append(record)
    return records


def flatten(record: RunRecord | dict[str, Any]) -> dict[str, Any]:
    """A record (or a mapping in it, the config) as one flat row of dotted JSON paths (lists kept as
    values), as `records_frame` has them."""
    return _flat(record.as_json() if isinstance(record, RunRecord) else record)


def _flat(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def records_frame(records: list[RunRecord]) -> Any:
    """One row per record, one column per dotted path (`metrics.test.accuracy`), by `pandas.json_normalize`.

    The one place a record becomes plain data again: the report's table is made of its JSON paths.
    Lists (the curve, label names) stay one cell; a split a record has no scores for is NaN.
    """
    import pandas as pd

    return pd.json_normalize([record.as_json() for record in records], sep=".")
