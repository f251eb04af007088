"""Per-example predictions beside each run record, so two methods can be compared paired.

A run's record holds its scores; the predictions file holds what they were computed from: for
each evaluated split (validation at the end of training, and test), one line per example with a
stable example id, the gold answer, the prediction and whether it was correct (for task sft the
generated answer is the prediction). Statistics pair runs on these ids (peftlab/stats/crossed.py).

Format: `runs/<run_id>.predictions.jsonl.gz`, gzip (mtime 0, so equal content gives an equal
file) of JSON lines `{"split", "id", ...}` with the per-example outputs the task declares
(peftlab/task_specs, `per_example`): `"gold", "prediction", "correct"` for classification and
sft, `"gold", "prediction"` (numbers) for regression. JSON lines need no
dependency, stay readable with `zcat`, and hold text answers as well as label ids; ~1000 test
examples compress to a few kB. The record points to the file and carries its sha256, so a reader
knows the file belongs to that record. Records written before this module have no `predictions`
entry; readers treat them as "no predictions" (never an error).

Example ids hash the example's content (text + gold, or the conversation + answer for sft), not
its row position: a subset drawn differently or a reshuffled split still gives every example the
same id, in every method and seed of an experiment. Duplicate rows get `#2`, `#3`... in order, so a
file never repeats an id; one that does is refused on reading (a UserError naming file and id).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SUFFIX = ".predictions.jsonl.gz"
FORMAT = "jsonl.gz/v1"
ID_CHARS = 16  # hex digits of sha1 kept: 64 bits, no collision among millions of examples


def example_ids(contents: Iterable[Any]) -> list[str]:
    """Stable ids for a split's examples, from their content (any JSON-able value per example)."""
    seen: dict[str, int] = {}
    ids = []
    for content in contents:
        text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
        digest = hashlib.sha1(text.encode()).hexdigest()[:ID_CHARS]
        seen[digest] = seen.get(digest, 0) + 1
        ids.append(digest if seen[digest] == 1 else f"{digest}#{seen[digest]}")
    return ids


def outcomes(ids: Sequence[str], gold: Sequence[Any], prediction: Sequence[Any], correct: Sequence[bool]) -> dict:
    """The per-example block a task's evaluate returns under the key `examples` (columns, not rows)."""
    return {
        "id": list(ids),
        "gold": [_plain(g) for g in gold],
        "prediction": [_plain(p) for p in prediction],
        "correct": [bool(c) for c in correct],
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def predictions_path(results_dir: Path, run_id: str) -> Path:
    return Path(results_dir) / "runs" / f"{run_id}{SUFFIX}"


def write_predictions(results_dir: Path, run_id: str, splits: dict[str, dict | None]) -> dict[str, Any] | None:
    """Write the file atomically; return the record's `predictions` entry (None when nothing was kept)."""
    splits = {name: block for name, block in splits.items() if block}
    if not splits:
        return None
    lines = []
    for name, block in splits.items():
        outputs = [k for k in block if k != "id"]  # the task's per-example outputs, in its order
        for row_values in zip(block["id"], *(block[k] for k in outputs), strict=True):
            row = {"split": name, "id": row_values[0], **dict(zip(outputs, row_values[1:], strict=True))}
            if "correct" in row:
                row["correct"] = bool(row["correct"])
            lines.append(json.dumps(row, ensure_ascii=False))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(("\n".join(lines) + "\n").encode())
    payload = buffer.getvalue()
    path = predictions_path(results_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {
        "file": path.name,  # beside the record, in runs/
        "sha256": hashlib.sha256(payload).hexdigest(),
        "format": FORMAT,
        "splits": {name: len(block["id"]) for name, block in splits.items()},
    }


@dataclass(frozen=True)
class SplitPredictions:
    """One split of one run, aligned on `ids`: every per-example column the file holds.

    `columns` has each key of the lines besides `split` and `id`, as the task declared them
    (task_specs `per_example`): `gold`, `prediction`, `correct`, and e.g. BLEU's list-valued
    `matches`/`totals` or `rouge_l`. `correct` is also kept as a float array (NaN where the task has
    none, e.g. regression), `gold` and `prediction` as lists ([] when absent), for the readers that
    only compare correctness.
    """

    ids: np.ndarray  # str objects
    correct: np.ndarray  # float 0/1
    gold: list[Any]
    prediction: list[Any]
    columns: dict[str, list[Any]] = field(default_factory=dict)


class PredictionsError(ValueError):
    """The file a record points to is missing, altered or unreadable (the caller falls back)."""


def _refuse_duplicate_ids(path: Path, blocks: dict[str, dict[str, list]]) -> None:
    """One line per example and split: a repeated id is a UserError naming the file and the id.

    Pairing aligns runs on ids; with two lines for one id a reader would silently keep one (the
    last won before), so the same example would count differently in different runs. The file's
    sha256 matched its record, so it is not damage to fall back from: it is wrong, and says where.
    """
    from peftlab.errors import UserError

    for split, block in blocks.items():
        seen: set[str] = set()
        for example in block["id"]:
            key = str(example)
            if key in seen:
                raise UserError(
                    f"{path}: example id {key!r} appears more than once in split {split!r}; "
                    "a predictions file holds one line per example (regenerate it by re-running that run)"
                )
            seen.add(key)


def read_predictions(runs_dir: Path, record: dict[str, Any], *, verify: bool = True) -> dict[str, SplitPredictions]:
    """{split: SplitPredictions} of a record, {} when the record predates predictions files."""
    entry = record.get("predictions")
    if not isinstance(entry, dict) or not entry.get("file"):
        return {}
    path = Path(runs_dir) / entry["file"]
    try:
        payload = path.read_bytes()
    except OSError as err:
        raise PredictionsError(f"{path}: cannot read ({err.strerror or err})") from None
    if verify and entry.get("sha256") and hashlib.sha256(payload).hexdigest() != entry["sha256"]:
        raise PredictionsError(f"{path}: sha256 differs from the record's; the file was changed or replaced")
    blocks: dict[str, dict[str, list]] = {}
    try:
        for line in gzip.decompress(payload).decode().splitlines():
            if not line:
                continue
            row = json.loads(line)
            block = blocks.setdefault(row["split"], {"id": []})
            k = len(block["id"])
            block["id"].append(row["id"])
            for key, value in row.items():
                if key not in ("split", "id"):
                    # a column first seen late (or missing in a line) is None there, never misaligned
                    block.setdefault(key, [None] * k).append(value)
            for values in block.values():
                if len(values) == k:
                    values.append(None)
    except (OSError, EOFError, ValueError, KeyError, AttributeError) as err:
        raise PredictionsError(f"{path}: unreadable predictions file ({type(err).__name__})") from None
    _refuse_duplicate_ids(path, blocks)
    out = {}
    for name, block in blocks.items():
        n = len(block["id"])
        columns = {k: v for k, v in block.items() if k != "id"}
        correct = columns.get("correct", [None] * n)
        out[name] = SplitPredictions(
            ids=np.asarray(block["id"], dtype=object),
            correct=np.asarray([math.nan if c is None else float(c) for c in correct], dtype=float),
            gold=columns.get("gold", []),
            prediction=columns.get("prediction", []),
            columns=columns,
        )
    return out
