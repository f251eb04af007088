"""Multiple-choice data: a context, its choices and the index of the correct one, in three fixed splits.

The canonical frame has columns `text` (the context or question), `choices` (a list of at least
two non-empty strings) and `label` (the 0-based index of the correct choice). A source gives the
choices either as one column holding a list per row (a hub dataset's sequence feature, a parquet
or jsonl list; a CSV cell holding a JSON list) or as several columns, one choice each
(`choices_column: [sol1, sol2]`, PIQA's layout). Rows may have different numbers of choices.

Every bad row is a one-line DataSourceError naming the source, the split, the row and the column:
an answer index outside the row's choices, a row with fewer than two choices, a missing column.
Splits are carved, hash-ordered and limited as for classification data (peftlab/data/loading.py),
and the fingerprint hashes text, choices and answer of every row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from peftlab.data.builtin import load_builtin
from peftlab.data.frames import BUILTIN_PREFIX, DataSourceError
from peftlab.data.loading import (
    SPLIT_ALIASES,
    SPLITS,
    apply_limit,
    carve_missing,
    check_limits,
    default_carve_sizes,
    hash_order,
    hub_dataset_dict,
    local_path,
    read_raw_table,
    reference,
    split_files,
)

DEFAULT_CHOICES_COLUMN = "choices"


@dataclass(frozen=True, repr=False)
class ChoiceData:
    """Three splits of (text, choices, label) rows and the fingerprint that names them."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    source: str
    fingerprint: str
    name: str | None = None
    citation: str | None = None
    label_names: tuple[str, ...] = ()  # the answer is an index into each row's own choices: no class names

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {name: len(self.split(name)) for name in SPLITS}

    @property
    def num_labels(self) -> int:
        """The most choices any row has (what the record's `num_labels` holds for this task)."""
        return max((len(c) for name in SPLITS for c in self.split(name)["choices"]), default=0)

    def __repr__(self) -> str:
        return f"ChoiceData(source={self.source!r}, sizes={self.sizes()}, fingerprint={self.fingerprint!r})"


def load_choice_data(
    source: str,
    *,
    text_column: str = "text",
    choices_column: str | Sequence[str] | None = None,
    label_column: str = "label",
    base_dir: Path | None = None,
    limits: Mapping[str, int | None] | None = None,
) -> ChoiceData:
    """Resolve `source` (builtin, local file/folder or hub id) into fixed multiple-choice splits.

    `choices_column`: one column of lists, or a list of columns with one choice each; None is
    `"choices"`. A builtin multiple-choice dataset already has the canonical columns.
    """
    if not isinstance(source, str) or not source.strip():
        raise DataSourceError(f"data source must be a non-empty string, got {source!r}")
    checked = check_limits(source, limits)
    spec = source.strip()
    columns = choices_column if choices_column is not None else DEFAULT_CHOICES_COLUMN
    if spec.startswith(BUILTIN_PREFIX):
        raw, _, carve = load_builtin(spec[len(BUILTIN_PREFIX) :], "multiple_choice")
        frames = {name: choice_frame(spec, name, df, "text", "choices", "label") for name, df in raw.items()}
    else:
        path = local_path(spec, base_dir)
        if path is not None:
            files = split_files(path) if path.is_dir() else {"train": path}
            tables = {name: (str(file), read_raw_table(file)) for name, file in files.items()}
        else:
            dataset = hub_dataset_dict(spec)
            tables = {}
            for name, aliases in SPLIT_ALIASES.items():
                hub_split = next((a for a in aliases if a in dataset), None)
                if hub_split is not None:
                    tables[name] = (f"{spec}[{hub_split}]", dataset[hub_split].to_pandas())
            if "train" not in tables:
                raise DataSourceError(f"{spec}: hub dataset has no train split (splits: {', '.join(dataset)})")
        frames = {
            name: choice_frame(where, name, df, text_column, columns, label_column)
            for name, (where, df) in tables.items()
        }
        carve = None
    return choice_data_from_frames(spec, frames, checked, carve, source)


def choice_data_from_frames(
    spec: str,
    frames: Mapping[str, pd.DataFrame],
    limits: Mapping[str, int | None] | None = None,
    carve: Mapping[str, int] | None = None,
    source: str | None = None,
) -> ChoiceData:
    """Canonical frames (`choice_frame`) of some splits -> three fixed, limited, fingerprinted splits.

    What a preset that builds the canonical columns itself hands over: missing splits are carved
    off train (`carve` row counts, or 10% each), every split is in content-hash order before a
    limit takes its first rows (stratified by answer position).
    """
    ordered = {name: _hash_ordered(df) for name, df in frames.items()}
    splits = carve_missing(spec, ordered, dict(carve) if carve is not None else default_carve_sizes(spec, ordered))
    splits = {name: apply_limit(df, (limits or {}).get(name)) for name, df in splits.items()}
    title, citation = reference(spec)
    return ChoiceData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        source=source or spec,
        fingerprint=choice_fingerprint(splits),
        name=title,
        citation=citation,
    )


def choice_frame(
    where: str,
    split: str,
    df: pd.DataFrame,
    text_column: str,
    choices_column: str | Sequence[str],
    label_column: str,
) -> pd.DataFrame:
    """The canonical (text, choices, label) frame of one raw split; one line naming the first bad row."""
    present = [str(c) for c in df.columns]
    listed = [choices_column] if isinstance(choices_column, str) else list(choices_column)
    for role, column in [("text", text_column), *(("choices", c) for c in listed), ("label", label_column)]:
        if column not in df.columns:
            raise DataSourceError(
                f"{where}: no {role} column {column!r}; columns are: {', '.join(present) or '(none)'}"
                f" (choose with data.{role}_column)"
            )
    texts, labels = df[text_column].tolist(), df[label_column].tolist()
    if isinstance(choices_column, str):
        rows = [_as_list(where, split, i, choices_column, v) for i, v in enumerate(df[choices_column].tolist())]
    else:
        rows = [list(r) for r in zip(*(df[c].tolist() for c in listed), strict=True)]
    what = repr(choices_column) if isinstance(choices_column, str) else f"[{', '.join(listed)}]"
    out_choices, out_labels = [], []
    for i, (text, choices, label) in enumerate(zip(texts, rows, labels, strict=True)):
        at = f"{where}: {split} row {i}"
        if _missing(text):
            raise DataSourceError(f"{at}: column {text_column!r} is empty; fill or drop the row")
        if any(_missing(c) or not str(c).strip() for c in choices):
            raise DataSourceError(f"{at}: an empty choice in {what}; every choice must be a non-empty text")
        if len(choices) < 2:
            raise DataSourceError(f"{at}: {len(choices)} choice(s) in {what}; multiple choice needs at least 2")
        index = _answer_index(label)
        if index is None or not 0 <= index < len(choices):
            raise DataSourceError(
                f"{at}: answer {label!r} in column {label_column!r} is not a choice index; "
                f"allowed: 0..{len(choices) - 1} (the 0-based index of the correct one of its {len(choices)} choices)"
            )
        out_choices.append([str(c) for c in choices])
        out_labels.append(index)
    frame = pd.DataFrame({"text": [str(t) for t in texts], "choices": out_choices, "label": out_labels})
    frame["label"] = frame["label"].astype("int64")
    return frame


def choice_fingerprint(splits: Mapping[str, pd.DataFrame]) -> str:
    """sha256 over every (text, choices, answer) row of every split, in order."""
    digest = hashlib.sha256(b"multiple_choice")
    for name in SPLITS:
        df = splits[name]
        digest.update(json.dumps(["split", name, len(df)]).encode())
        for text, choices, label in zip(df["text"], df["choices"], df["label"], strict=True):
            digest.update(b"\n" + json.dumps([text, list(choices), int(label)], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def _hash_ordered(df: pd.DataFrame) -> pd.DataFrame:
    keys = [f"{t}\x1f{chr(30).join(c)}" for t, c in zip(df["text"], df["choices"], strict=True)]
    return df.iloc[hash_order(keys)].reset_index(drop=True)


def _as_list(where: str, split: str, row: int, column: str, value: Any) -> list[Any]:
    """A cell of a choices column as a list: a list/array, or a JSON list written into a CSV cell."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if isinstance(value, list | tuple | np.ndarray):
        return list(value)
    raise DataSourceError(
        f"{where}: {split} row {row}: column {column!r} does not hold a list of choices; give one column of "
        "lists, or one column per choice (data.choices_column: [a, b])"
    )


def _answer_index(value: Any) -> int | None:
    """An integer answer (int, integral float, or digits as text), else None."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if float(value).is_integer() else None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
