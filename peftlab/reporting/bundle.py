"""An experiment as a dataset: `peftlab report results/EXP --bundle OUT`.

A bundle is a folder others can load with `datasets` and report from:

- `records.parquet`: one row per run, one column per dotted record path (`metrics.test.accuracy`,
  `config.train.steps`), and `record`, the whole record as JSON (what the report reads back);
- `predictions.parquet`: one row per (run, split, example): `experiment`, `run_id`, `split`, `id` and the
  per-example outputs the task declares (`gold`, `prediction`, `correct`, …);
- `README.md`: a dataset card (huggingface_hub's `DatasetCard`) saying what was run, where, with
  which lock, and how to load it;
- `bundle.json`: the format and which columns hold JSON text.

Both tables load with `datasets.load_dataset("parquet", data_files=...)`. A column whose values
are not all of one plain type (numbers, text, booleans), such as a list or a column mixing
label ids with text answers, is stored as JSON text and listed in `bundle.json`, so it reads back
exactly. `peftlab report OUT` reads a bundle as it reads a results folder, and gives the same report.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from peftlab.errors import UserError
from peftlab.records.record import RunRecord, jsonable

MANIFEST = "bundle.json"
FORMAT = "peftlab-bundle/v1"
RECORDS = "records.parquet"
PREDICTIONS = "predictions.parquet"


def _plain_type(values: list[Any]) -> type | None:
    """The one plain type of a column's non-null values (bool, int, float, str), or None when they are not."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {int, float}:
        return None  # would read back as floats: label ids must stay ints
    if len(kinds) == 1 and next(iter(kinds)) in (bool, int, float, str):
        return next(iter(kinds))
    return None if kinds else str


def _table(rows: list[dict[str, Any]]) -> tuple[Any, list[str]]:
    """A pyarrow table of `rows` (columns in first-seen order) and the names of the columns stored as JSON."""
    import pyarrow as pa

    names = list(dict.fromkeys(k for row in rows for k in row))
    columns, as_json = {}, []
    for name in names:
        values = [row.get(name) for row in rows]
        kind = _plain_type(values)
        if kind is None:
            as_json.append(name)
            values = [None if v is None else json.dumps(v, default=jsonable, ensure_ascii=False) for v in values]
            kind = str
        arrow = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}[kind]
        columns[name] = pa.array(values, type=arrow)
    return pa.table(columns), as_json


def _read(path: Path, as_json: Iterable[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    decode = [c for c in as_json if rows and c in rows[0]]
    for row in rows:
        for column in decode:
            if row[column] is not None:
                row[column] = json.loads(row[column])
    return rows


def _prediction_rows(results_dir: Path, records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every split of every record's predictions file as rows (a file that is missing or altered is left out)."""
    from peftlab.records.predictions import PredictionsError, read_predictions

    rows = []
    for record in records:
        try:
            splits = read_predictions(Path(results_dir) / "runs", record)
        except PredictionsError:
            continue
        for split, block in splits.items():
            names = list(block.columns)
            for i, example in enumerate(block.ids):
                row = {"experiment": record.experiment, "run_id": record.run_id, "split": split}
                row["id"] = str(example)
                row.update({name: block.columns[name][i] for name in names})
                rows.append(row)
    return rows


def write_bundle(loaded: Any, sources: list[Path], out: Path) -> Path:
    """Write the runs `loaded` from `sources` (reporting/sources.py: load_sources) as a bundle at `out`.

    `out` must not exist; the bundle is written all or nothing. The caller loads the sources, so that
    reading a bundle (here) and combining sources (sources.py) do not import each other.
    """
    from peftlab.records.results import flatten, publish_dir

    out = Path(out).expanduser().resolve()
    if out.exists():
        raise UserError(f"--bundle {out}: already exists; a bundle is written into a new folder")
    if not loaded.records:
        raise UserError(f"{', '.join(map(str, sources))}: no run records; nothing to bundle")
    record_rows = [
        {**flatten(record), "record": json.dumps(record, ensure_ascii=False, default=jsonable)}
        for record in loaded.records
    ]
    prediction_rows = []
    for source in dict.fromkeys(loaded.sources):
        mine = [r for r, s in zip(loaded.records, loaded.sources, strict=True) if s == source]
        if (source / MANIFEST).is_file():  # a bundle re-bundled: its rows as they are
            manifest = json.loads((source / MANIFEST).read_text())
            wanted = {(r.experiment, r.run_id) for r in mine}
            rows = _read(source / PREDICTIONS, manifest["json_columns"].get("predictions", []))
            prediction_rows += [r for r in rows if (r.get("experiment"), r["run_id"]) in wanted]
        else:
            prediction_rows += _prediction_rows(source, mine)
    import pyarrow.parquet as pq

    from peftlab.reporting.cards import dataset_card

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        records_table, records_json = _table(record_rows)
        pq.write_table(records_table, tmp / RECORDS)
        predictions_table, predictions_json = _table(prediction_rows)
        pq.write_table(predictions_table, tmp / PREDICTIONS)
        manifest = {
            "format": FORMAT,
            "runs": len(record_rows),
            "prediction_rows": len(prediction_rows),
            "json_columns": {"records": records_json, "predictions": predictions_json},
            "sources": [str(s) for s in dict.fromkeys(loaded.sources)],
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        dataset_card(loaded.records, manifest).save(tmp / "README.md")
        publish_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_bundle(bundle: Path, run_ids: set[str] | None = None) -> tuple[list[RunRecord], dict[str, Any]]:
    """(records, {run id: test Outcome}) of a bundle: what a results folder's records and predictions files give."""
    from peftlab.records.record import RecordError, validate
    from peftlab.reporting.comparison import Outcome

    bundle = Path(bundle)
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{bundle / MANIFEST}: not a peftlab bundle manifest ({err})") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"{bundle / MANIFEST}: format {manifest.get('format')!r}; this peftlab reads {FORMAT}")
    records = []
    for row in _read(bundle / RECORDS, []):
        try:
            record = validate(json.loads(row["record"]), where=f"{bundle / RECORDS} run {row.get('run_id')}")
        except RecordError as err:
            raise UserError(str(err)) from None
        if run_ids is None or record.run_id in run_ids:
            records.append(record)
    import numpy as np

    ok = {(r.experiment, r.run_id): r for r in records if r.status == "ok"}
    blocks: dict[tuple[Any, str], dict[str, list[Any]]] = {}
    for row in _read(bundle / PREDICTIONS, manifest["json_columns"].get("predictions", [])):
        key = (row.get("experiment"), row["run_id"])
        if row["split"] != "test" or key not in ok:
            continue
        block = blocks.setdefault(key, {})
        for name, value in row.items():
            if name not in ("experiment", "run_id", "split"):
                block.setdefault(name, []).append(value)
    outcomes: dict[str, Any] = {}
    for key, block in blocks.items():
        ids = block.pop("id")
        columns = {k: v for k, v in block.items() if any(x is not None for x in v)}  # another task's column
        seed = ok[key].seed or 0
        outcomes.setdefault(key[1], Outcome(seed, np.asarray(ids, dtype=object), columns))
    return records, outcomes
