"""Run records: one self-describing JSON file per run, written atomically.

A record is the unit of truth: tables, figures and the paper are derived from records only.
A reader never sees a half-written file, because records are renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
# outcomes that a re-run would reproduce; `failed` and `killed` (a SIGKILL with no sign of the OOM
# killer, see peftlab/oom.py) are retried. `pruned`: a search trial stopped early by its pruner on
# an intermediate validation score (a decision, so not repeated).
FINISHED = ("ok", "diverged", "oom", "pruned")
STATUSES = ("ok", "diverged", "oom", "pruned", "failed", "killed")


def runs_dir(results_dir: Path) -> Path:
    return results_dir / "runs"


def record_path(results_dir: Path, run_id: str) -> Path:
    return runs_dir(results_dir) / f"{run_id}.json"


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=False, allow_nan=False, default=_jsonable)
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


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    """JSON has no NaN: store non-finite floats as null so every reader can parse the record."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_record(results_dir: Path, record: dict[str, Any]) -> Path:
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    path = record_path(results_dir, record["run_id"])
    write_json_atomic(path, _finite({"schema_version": SCHEMA_VERSION, **record}))
    return path


def read_record(path: Path) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)


def finished_record(results_dir: Path, run_id: str) -> dict[str, Any] | None:
    path = record_path(results_dir, run_id)
    if not path.is_file():
        return None
    try:
        record = read_record(path)
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("status") in FINISHED else None


def load_records(results_dirs: Iterable[Path], run_ids: set[str] | None = None) -> list[dict[str, Any]]:
    """Every readable record under the given experiment folders (optionally only `run_ids`)."""
    records = []
    for results_dir in results_dirs:
        for path in sorted(runs_dir(Path(results_dir)).glob("*.json")):
            try:
                record = read_record(path)
            except (OSError, json.JSONDecodeError):
                continue
            if run_ids is None or record.get("run_id") in run_ids:
                records.append(record)
    return records


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested record -> flat dict with dotted keys (lists are kept as values)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def records_frame(records: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame([flatten(r) for r in records])
