"""Turn one user-supplied source string into a fixed, fingerprinted classification dataset.

Every PEFT method in a comparison must see exactly the same rows, so this module owns the
whole path from "what the user typed" to three frozen splits: which kind of source it is,
how missing splits are carved, how labels are numbered, and the fingerprint that is recorded
next to every result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from peftlab.data.builtin import BUILTINS, load_builtin
from peftlab.data.frames import BUILTIN_PREFIX, DataSourceError, make_frame
from peftlab.data.loading import (
    SPLIT_ALIASES,
    SPLITS,
    apply_limit,
    carve_missing,
    check_limits,
    class_label_names,
    compute_fingerprint,
    default_carve_sizes,
    hub_dataset_dict,
    local_path,
    read_raw_table,
    reference,
    shuffle_splits,
    split_files,
    test_split,
)
from peftlab.data.presets import find_preset


@dataclass(frozen=True, repr=False)
class ClassificationData:
    """Three label-aligned splits plus the fingerprint that identifies exactly the rows used.

    Equality and hashing go by fingerprint (and label names): DataFrames cannot be compared
    or hashed as dataclass fields, and two loads of the same rows are the same data even when
    they were named differently (a path vs. a builtin copy).
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    label_names: tuple[str, ...]
    source: str
    fingerprint: str
    name: str | None = None  # what the rows are (a builtin's exact title), for records, tables and papers
    citation: str | None = None  # where they come from; None for a user's own file or a hub id
    # evaluation splits beside test (a preset's, e.g. MNLI's validation_mismatched), scored into
    # the record's `metrics.<name>`; empty for every other source
    extra: Mapping[str, pd.DataFrame] = field(default_factory=dict)

    def split(self, name: str) -> pd.DataFrame:
        """Look up a split by name so callers can loop over SPLITS without getattr tricks."""
        if name in self.extra:
            return self.extra[name]
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {', '.join([*SPLITS, *self.extra])}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        """Row counts per split (and extra evaluation split), for logs and result records."""
        return {name: len(self.split(name)) for name in (*SPLITS, *self.extra)}

    @property
    def num_labels(self) -> int:
        """Size of the classification head the model needs."""
        return len(self.label_names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassificationData):
            return NotImplemented
        return (self.fingerprint, self.label_names) == (other.fingerprint, other.label_names)

    def __hash__(self) -> int:
        return hash((self.fingerprint, self.label_names))

    def __repr__(self) -> str:
        return (
            f"ClassificationData(source={self.source!r}, sizes={self.sizes()}, "
            f"label_names={self.label_names!r}, fingerprint={self.fingerprint!r})"
        )


@dataclass(frozen=True)
class TextData:
    """Three fixed splits of unlabelled text (documents), fingerprinted like classification data.

    General-domain prose for LM-loss probes: which documents were scored is part of the result.
    """

    train: list[str]
    validation: list[str]
    test: list[str]
    source: str
    fingerprint: str
    name: str | None = None
    citation: str | None = None

    def split(self, name: str) -> list[str]:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {name: len(self.split(name)) for name in SPLITS}


# --------------------------------------------------------------------------- public API


def describe_builtin_sources() -> dict[str, str]:
    """Name -> one-line description, so error messages and docs never drift from the table.

    The generated builtins (peftlab/data/procedural.py: prompt/answer problems) follow the packaged ones.
    """
    from peftlab.data.procedural import GENERATORS, describe

    described = {f"{BUILTIN_PREFIX}{name}": spec.description for name, spec in BUILTINS.items()}
    return described | {f"{BUILTIN_PREFIX}{name}": describe(name) for name in GENERATORS}


def load_classification_data(
    source: str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    base_dir: Path | None = None,
    limits: Mapping[str, int | None] | None = None,
    text_pair_column: str | None = None,
    targets: str = "classes",
    test_source: str | None = None,
) -> ClassificationData:
    """Resolve ``source`` (builtin, local file/dir, or hub id) into fixed, fingerprinted splits.

    One string key covers every kind so configs and CLIs stay a single field; the kind is
    decided here, in this order: ``builtin:`` prefix, existing (or path-looking) local path,
    otherwise a Hugging Face hub id. ``text_pair_column`` adds a second text per row (sentence
    pairs, column ``text_pair``); ``targets="numbers"`` keeps the labels as float targets
    (regression, no label names) instead of numbering classes. ``test_source`` (a local or hub
    source, or a preset) supplies the test split instead of ``source``: train on one set, score on
    another (the same columns in both).
    """
    if not isinstance(source, str) or not source.strip():
        raise DataSourceError(f"data source must be a non-empty string, got {source!r}")
    checked_limits = check_limits(source, limits)
    spec = source.strip()

    if spec.startswith(BUILTIN_PREFIX):
        if test_source is not None:
            raise DataSourceError(f"{spec}: test_source needs a local or hub source, not a builtin")
        if text_pair_column is not None:
            raise DataSourceError(
                f"{spec}: a builtin has one text per row; text_pair_column needs a local or hub source"
            )
        kind = "regression" if targets == "numbers" else "classification"
        raw, label_names, carve_sizes = _load_builtin(spec[len(BUILTIN_PREFIX) :], kind)
        splits = carve_missing(spec, shuffle_splits(raw), carve_sizes)
    else:
        path = local_path(spec, base_dir)
        if path is not None:
            raw_splits = _load_local(path, text_column, label_column, text_pair_column)
        else:
            raw_splits = _load_hub(spec, text_column, label_column, text_pair_column)
        if test_source is not None:
            raw_splits["test"] = test_split(
                test_source,
                base_dir,
                lambda s, p: (
                    _load_local(p, text_column, label_column, text_pair_column)
                    if p is not None
                    else _load_hub(s, text_column, label_column, text_pair_column)
                ),
            )
        if targets == "numbers":
            splits, label_names = numeric_targets(spec, label_column, raw_splits), ()
        else:
            splits, label_names = _encode_labels(spec, raw_splits)
        splits = shuffle_splits(splits)
        splits = carve_missing(spec, splits, default_carve_sizes(spec, splits))

    # an extra evaluation split (MNLI mismatched) is cut like test
    splits = {
        name: apply_limit(df, checked_limits.get(name if name in SPLITS else "test")) for name, df in splits.items()
    }
    title, citation = reference(spec)
    return ClassificationData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        label_names=tuple(label_names),
        source=source,
        fingerprint=compute_fingerprint(label_names, splits),
        name=title,
        citation=citation,
        extra={name: df for name, df in splits.items() if name not in SPLITS},
    )


def load_text_data(
    source: str,
    *,
    text_column: str = "text",
    base_dir: Path | None = None,
    limits: Mapping[str, int | None] | None = None,
) -> TextData:
    """Resolve ``source`` into fixed splits of unlabelled documents, the same way as classification data.

    ``builtin:NAME`` (a text builtin such as ``builtin:news_articles``), a local ``.txt`` file
    (documents separated by blank lines), a table file or folder with a text column, or a hub
    dataset's text column. Missing validation/test splits are carved off train by content hash.
    """
    if not isinstance(source, str) or not source.strip():
        raise DataSourceError(f"text source must be a non-empty string, got {source!r}")
    checked_limits = check_limits(source, limits)
    spec = source.strip()
    if spec.startswith(BUILTIN_PREFIX):
        raw, _, carve_sizes = _load_builtin(spec[len(BUILTIN_PREFIX) :], kind="text")
        splits = carve_missing(spec, shuffle_splits(raw), carve_sizes)
    else:
        path = local_path(spec, base_dir)
        if path is not None and path.suffix.lower() == ".txt":
            documents = [" ".join(d.split()) for d in path.read_text(errors="replace").split("\n\n")]
            raw = {"train": pd.DataFrame({"text": [d for d in documents if d]})}
        elif path is not None:
            raw = {split: df for split, (df, _) in _load_local(path, text_column, None).items()}
        else:
            raw = {split: df for split, (df, _) in _load_hub(spec, text_column, None).items()}
        raw = shuffle_splits({split: df.assign(text=df["text"].astype(str)) for split, df in raw.items()})
        splits = carve_missing(spec, raw, default_carve_sizes(spec, raw))
    splits = {name: apply_limit(df, checked_limits.get(name)) for name, df in splits.items()}
    texts = {name: splits[name]["text"].astype(str).tolist() for name in SPLITS}
    title, citation = reference(spec)
    return TextData(**texts, source=source, fingerprint=compute_fingerprint((), splits), name=title, citation=citation)


# --------------------------------------------------------------------------- labels


def _encode_labels(
    source: str, raw_splits: Mapping[str, tuple[pd.DataFrame, tuple[str, ...] | None]]
) -> tuple[dict[str, pd.DataFrame], tuple[str, ...]]:
    """Number labels over ALL splits together, so an id means the same class in every split.

    A split may arrive already encoded with known names (a hub ClassLabel); then those names
    win and the ids are kept as they are.
    """
    known = {names for _, names in raw_splits.values() if names is not None}
    if known:
        names = known.pop()
        return {
            split: _with_pairs(make_frame(df["text"], df["label"]), df.get("text_pair"))
            for split, (df, _) in raw_splits.items()
        }, names

    labels = pd.concat([df["label"] for df, _ in raw_splits.values()], ignore_index=True)
    numeric = _integer_labels(source, labels) is not None
    pairs = {split: df["text_pair"] for split, (df, _) in raw_splits.items() if "text_pair" in df.columns}
    values = sorted(set(_label_keys(source, labels, numeric).tolist()))
    names = tuple(str(v) for v in values)
    if len(names) < 2:
        raise DataSourceError(
            f"{source}: label column has {len(names)} distinct value(s) {list(names)}; classification needs at least 2"
        )
    mapping = {v: i for i, v in enumerate(values)}
    return {
        split: _with_pairs(
            make_frame(df["text"], _label_keys(source, df["label"], numeric).map(mapping)), pairs.get(split)
        )
        for split, (df, _) in raw_splits.items()
    }, names


def _with_pairs(frame: pd.DataFrame, pairs: pd.Series | None) -> pd.DataFrame:
    """The canonical frame with the second text of each pair (column ``text_pair``) when there is one."""
    if pairs is not None:
        frame.insert(1, "text_pair", pairs.astype(str).to_numpy())
    return frame


def numeric_targets(
    source: str, label_column: str, raw_splits: Mapping[str, tuple[pd.DataFrame, Any]]
) -> dict[str, pd.DataFrame]:
    """Regression targets as float64, every split; a label that is not a number is one line naming it."""
    out = {}
    for split, (df, _) in raw_splits.items():
        values = pd.to_numeric(df["label"], errors="coerce") if not pd.api.types.is_bool_dtype(df["label"]) else None
        bad = df["label"] if values is None else df["label"][values.isna()]
        if len(bad):
            raise DataSourceError(
                f"{source}: label column {label_column!r} holds values that are not numbers (e.g. {bad.iloc[0]!r} "
                f"in {split}); task regression needs numeric targets"
            )
        frame = pd.DataFrame({"text": df["text"].astype(str).to_numpy(), "label": values.astype("float64").to_numpy()})
        out[split] = _with_pairs(frame, df["text_pair"] if "text_pair" in df.columns else None)
    return out


def _label_keys(source: str, labels: pd.Series, numeric: bool) -> pd.Series:
    """The sortable key each raw label is numbered by: int64 for numeric labels, else str."""
    if numeric:
        as_int = _integer_labels(source, labels)
        if as_int is None:  # cannot happen when the concatenation of all splits was numeric
            raise DataSourceError(f"{source}: label column mixes numbers and strings across splits")
        return as_int
    return labels.astype(str)


def _integer_labels(source: str, labels: pd.Series) -> pd.Series | None:
    """Labels as int64 if they are integers (incl. integral floats from CSV), else None.

    Non-integral floats are rejected rather than stringified: they are regression targets,
    and "0.5" as a class name would hide that mistake.
    """
    if pd.api.types.is_bool_dtype(labels):
        return None
    if pd.api.types.is_integer_dtype(labels):
        return labels.astype("int64")
    if pd.api.types.is_float_dtype(labels):
        if not (labels == labels.round()).all():
            raise DataSourceError(
                f"{source}: label column holds non-integer numbers (regression targets?); "
                "classification needs integer or string labels"
            )
        return labels.astype("int64")
    return None


# --------------------------------------------------------------------------- builtin


def _load_builtin(
    name: str, kind: str = "classification"
) -> tuple[dict[str, pd.DataFrame], tuple[str, ...], dict[str, int]]:
    """Delegate to the builtin table; import lazily so sources.py has no import cycle."""

    return load_builtin(name, kind)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- local files


def _load_local(
    path: Path, text_column: str, label_column: str | None, text_pair_column: str | None = None
) -> dict[str, tuple[pd.DataFrame, None]]:
    """Read one file (all rows are train) or a directory of per-split files."""
    files = split_files(path) if path.is_dir() else {"train": path}
    return {
        split: (_read_table(file, text_column, label_column, text_pair_column), None) for split, file in files.items()
    }


def _read_table(
    path: Path, text_column: str, label_column: str | None, text_pair_column: str | None = None
) -> pd.DataFrame:
    """Read a table with pandas and keep only the text/label columns, renamed canonically."""
    return _select_columns(str(path), read_raw_table(path), text_column, label_column, text_pair_column)


def _select_columns(
    where: str, df: pd.DataFrame, text_column: str, label_column: str | None, text_pair_column: str | None = None
) -> pd.DataFrame:
    """Pick and rename the columns (only text for unlabelled text); name what exists when one is missing."""
    columns = [str(c) for c in df.columns]
    roles = [("text", text_column)] + ([("text_pair", text_pair_column)] if text_pair_column is not None else [])
    roles += [("label", label_column)] if label_column is not None else []
    for role, column in roles:
        if column not in df.columns:
            raise DataSourceError(
                f"{where}: no {role} column {column!r}; columns are: {', '.join(columns) or '(none)'}"
                f" (choose with {role}_column=...)"
            )
    out = pd.DataFrame({role: df[column] for role, column in roles}).reset_index(drop=True)
    for role, column in roles:
        missing = out[role].isna()
        if missing.any():
            rows = ", ".join(str(i) for i in missing[missing].index[:5])
            raise DataSourceError(
                f"{where}: column {column!r} has {int(missing.sum())} missing value(s) "
                f"(rows {rows}{', ...' if missing.sum() > 5 else ''}); fill or drop them"
            )
    return out


# --------------------------------------------------------------------------- hub


def _load_hub(
    spec: str, text_column: str, label_column: str | None, text_pair_column: str | None = None
) -> dict[str, tuple[pd.DataFrame, tuple[str, ...] | None]]:
    """Load a Hugging Face dataset; ``datasets`` is imported here only (slow, optional)."""
    dataset_dict = hub_dataset_dict(spec)
    available = list(dataset_dict.keys())
    chosen: dict[str, str] = {}
    for split, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in dataset_dict:
                chosen[split] = alias
                break
    if "train" not in chosen:
        raise DataSourceError(f"{spec}: hub dataset has no train split (splits: {', '.join(available)})")
    preset = find_preset(spec)
    chosen.update({name: name for name in (preset.extra_splits if preset is not None else ())})
    result: dict[str, tuple[pd.DataFrame, tuple[str, ...] | None]] = {}
    for split, hub_split in chosen.items():
        part = dataset_dict[hub_split]
        names = class_label_names(part.features.get(label_column)) if label_column else None
        frame = _select_columns(f"{spec}[{hub_split}]", part.to_pandas(), text_column, label_column, text_pair_column)
        if names is not None:
            unlabeled = frame["label"] == -1
            if unlabeled.all():
                continue  # GLUE-style hidden test labels: treat the split as missing
            if unlabeled.any():
                frame = frame[~unlabeled].reset_index(drop=True)
        result[split] = (frame, names)
    return result
