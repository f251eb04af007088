"""Turn one user-supplied source string into a fixed, fingerprinted classification dataset.

Every PEFT method in a comparison must see exactly the same rows, so this module owns the
whole path from "what the user typed" to three frozen splits: which kind of source it is,
how missing splits are carved, how labels are numbered, and the fingerprint that is recorded
next to every result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from peftlab.data.builtin import BUILTINS, builtin_reference, load_builtin
from peftlab.data.frames import BUILTIN_PREFIX, DataSourceError, make_frame
from peftlab.data.presets import Preset, find_preset

SPLITS: tuple[str, ...] = ("train", "validation", "test")
SPLIT_SALT = "peftlab-split-v1"
LOCAL_EXTENSIONS: tuple[str, ...] = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "validation": ("validation", "valid", "dev"),
    "test": ("test",),
}
CARVE_FRACTION = 0.1
OFFLINE_HINT = "offline? use builtin:rotten_tomatoes or builtin:bbc_news, or a local .csv/.jsonl/.parquet file"


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
    """Name -> one-line description, so error messages and docs never drift from the table."""

    return {f"{BUILTIN_PREFIX}{name}": spec.description for name, spec in BUILTINS.items()}


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
    checked_limits = _check_limits(source, limits)
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
        splits = _carve_missing(spec, shuffle_splits(raw), carve_sizes)
    else:
        path = _local_path(spec, base_dir)
        if path is not None:
            raw_splits = _load_local(path, text_column, label_column, text_pair_column)
        else:
            raw_splits = _load_hub(spec, text_column, label_column, text_pair_column)
        if test_source is not None:
            raw_splits["test"] = _test_split(
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
        splits = _carve_missing(spec, splits, _default_carve_sizes(spec, splits))

    # an extra evaluation split (MNLI mismatched) is cut like test
    splits = {
        name: _apply_limit(df, checked_limits.get(name if name in SPLITS else "test")) for name, df in splits.items()
    }
    title, citation = _reference(spec)
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
    checked_limits = _check_limits(source, limits)
    spec = source.strip()
    if spec.startswith(BUILTIN_PREFIX):
        raw, _, carve_sizes = _load_builtin(spec[len(BUILTIN_PREFIX) :], kind="text")
        splits = _carve_missing(spec, shuffle_splits(raw), carve_sizes)
    else:
        path = _local_path(spec, base_dir)
        if path is not None and path.suffix.lower() == ".txt":
            documents = [" ".join(d.split()) for d in path.read_text(errors="replace").split("\n\n")]
            raw = {"train": pd.DataFrame({"text": [d for d in documents if d]})}
        elif path is not None:
            raw = {split: df for split, (df, _) in _load_local(path, text_column, None).items()}
        else:
            raw = {split: df for split, (df, _) in _load_hub(spec, text_column, None).items()}
        raw = shuffle_splits({split: df.assign(text=df["text"].astype(str)) for split, df in raw.items()})
        splits = _carve_missing(spec, raw, _default_carve_sizes(spec, raw))
    splits = {name: _apply_limit(df, checked_limits.get(name)) for name, df in splits.items()}
    texts = {name: splits[name]["text"].astype(str).tolist() for name in SPLITS}
    title, citation = _reference(spec)
    return TextData(**texts, source=source, fingerprint=compute_fingerprint((), splits), name=title, citation=citation)


def _test_split(test_source: str, base_dir: Path | None, load: Any) -> Any:
    """The test split of `test_source` (`data.test_source`), read by `load(spec, local path or None)`."""
    spec = test_source.strip()
    if spec.startswith(BUILTIN_PREFIX):
        raise DataSourceError(f"{spec}: test_source must be a local or hub source (or a preset), not a builtin")
    loaded = load(spec, _local_path(spec, base_dir))
    if "test" not in loaded:
        raise DataSourceError(f"{spec}: test_source has no test split (splits: {', '.join(loaded)})")
    return loaded["test"]


def _reference(spec: str) -> tuple[str, str | None]:
    """(name, citation): a builtin's or a preset's exact title and citation; other sources are named as given."""
    if spec.startswith(BUILTIN_PREFIX):
        return builtin_reference(spec[len(BUILTIN_PREFIX) :])
    preset = find_preset(spec)
    if preset is not None:
        return preset.title, preset.citation
    return spec, None


def compute_fingerprint(label_names: Iterable[str], splits: Mapping[str, pd.DataFrame]) -> str:
    """Hash label names and every (text, label) row in order, so a result names its exact data.

    JSON encoding per row keeps the hash unambiguous (no separator collisions) and independent
    of pandas/numpy versions. Unlabelled text (no ``label`` column) hashes its texts alone. Extra
    evaluation splits (a preset's) follow the three, by name; without them the hash is unchanged.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(["labels", list(label_names)], ensure_ascii=False).encode("utf-8"))
    for name in (*SPLITS, *sorted(set(splits) - set(SPLITS))):
        df = splits[name]
        digest.update(json.dumps(["split", name, len(df)]).encode("utf-8"))
        labels = df["label"].tolist() if "label" in df.columns else [None] * len(df)
        numbers = "label" in df.columns and pd.api.types.is_float_dtype(df["label"])  # regression targets
        pairs = df["text_pair"].tolist() if "text_pair" in df.columns else None
        for i, (text, label) in enumerate(zip(df["text"].tolist(), labels, strict=True)):
            digest.update(b"\n")
            texts = [text] if pairs is None else [text, pairs[i]]
            row = texts if label is None else [*texts, float(label) if numbers else int(label)]
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:16]


def hash_order(texts: Iterable[str]) -> list[int]:
    """Positions sorted by a salted sha256 of (index, text): the same on every machine.

    numpy/pandas RNGs have changed streams between versions; a content hash never does.
    """
    keys = [(hashlib.sha256(f"{SPLIT_SALT}:{i}:{text}".encode()).hexdigest(), i) for i, text in enumerate(texts)]
    return [i for _, i in sorted(keys)]


def shuffle_splits(splits: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every split in hash order, before anything is cut off it (a carved split or a ``*_limit``).

    Sources are often sorted (a hub dataset by label, a CSV by date): a cut taken in file order
    would then be a biased, even one-class, subset. The hash order is seeded by ``SPLIT_SALT``
    alone, never by a run's seed, so every method and seed of an experiment sees the same rows,
    on every machine.
    """
    return {name: df.iloc[hash_order(_row_texts(df))].reset_index(drop=True) for name, df in splits.items()}


def _row_texts(df: pd.DataFrame) -> list[str]:
    """What a row is ordered by: its text, or both texts of a sentence pair."""
    if "text_pair" not in df.columns:
        return df["text"].tolist()
    return [f"{a}\x1f{b}" for a, b in zip(df["text"].tolist(), df["text_pair"].tolist(), strict=True)]


# --------------------------------------------------------------------------- splits & limits


def _check_limits(source: str, limits: Mapping[str, int | None] | None) -> dict[str, int | None]:
    """Reject typos in split names early; a silently ignored limit would skew a comparison."""
    if not limits:
        return {}
    checked: dict[str, int | None] = {}
    for name, value in limits.items():
        if name not in SPLITS:
            raise DataSourceError(f"{source}: unknown split {name!r} in limits; allowed: {', '.join(SPLITS)}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise DataSourceError(f"{source}: limit for {name!r} must be a non-negative int or None, got {value!r}")
        checked[name] = value
    return checked


def _apply_limit(df: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """A deterministic, label-stratified subset of ``limit`` rows (a split already in hash order).

    Each class keeps its share of the split (largest remainder, ties to the lower label id),
    taken as that class's first rows in the hash order: a seeded random sample whose seed is
    ``SPLIT_SALT``, the same for every method and run seed. Unlabelled rows (text corpora,
    conversations: no ``label`` column or label -1) keep the first ``limit`` rows of that order.
    """
    if limit is None or limit >= len(df):
        return df
    if "label" not in df.columns or not pd.api.types.is_integer_dtype(df["label"]) or (df["label"] < 0).any():
        return df.iloc[:limit].reset_index(drop=True)  # unlabelled, or regression targets: no classes to stratify
    labels = df["label"].to_numpy()
    quotas = _stratified_quotas(pd.Series(labels).value_counts().sort_index().to_dict(), limit)
    rank_in_class = pd.Series(labels).groupby(labels).cumcount().to_numpy()
    keep = rank_in_class < pd.Series(labels).map(quotas).to_numpy()
    return df[keep].reset_index(drop=True)


def _stratified_quotas(counts: Mapping[int, int], limit: int) -> dict[int, int]:
    """Rows per class for a ``limit``-row subset in the split's proportions (largest remainder)."""
    total = sum(counts.values())
    exact = {label: limit * n / total for label, n in counts.items()}
    quotas = {label: int(share) for label, share in exact.items()}
    by_remainder = sorted(counts, key=lambda label: (-(exact[label] - quotas[label]), label))
    for label in by_remainder[: limit - sum(quotas.values())]:
        quotas[label] += 1
    return quotas


def _default_carve_sizes(source: str, splits: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """10% of train (at least one row) for each split the source did not provide."""
    missing = [name for name in ("validation", "test") if name not in splits]
    if not missing:
        return {}
    n_train = len(splits["train"])
    size = max(1, int(n_train * CARVE_FRACTION))
    if n_train < len(missing) * size + 1:
        raise DataSourceError(
            f"{source}: train has {n_train} rows, too few to carve {' and '.join(missing)} "
            "out of it; provide those splits or more training rows"
        )
    return {name: size for name in missing}


def _carve_missing(
    source: str, splits: Mapping[str, pd.DataFrame], sizes: Mapping[str, int]
) -> dict[str, pd.DataFrame]:
    """Cut the missing splits (validation first, then test) off train, already in hash order (`shuffle_splits`)."""
    result = dict(splits)
    if sizes:
        shuffled = splits["train"]
        if len(shuffled) <= sum(sizes.values()):
            raise DataSourceError(f"{source}: train has {len(shuffled)} rows, too few to carve {dict(sizes)} out of it")
        start = 0
        for name in ("validation", "test"):
            if name in sizes:
                result[name] = shuffled.iloc[start : start + sizes[name]].reset_index(drop=True)
                start += sizes[name]
        result["train"] = shuffled.iloc[start:].reset_index(drop=True)
    missing = [name for name in SPLITS if name not in result]
    if missing:
        raise DataSourceError(f"{source}: no {', '.join(missing)} split and none could be carved")
    return result


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


def _local_path(spec: str, base_dir: Path | None) -> Path | None:
    """The local path a spec names, or None when it should be treated as a hub id.

    A spec that looks like a file (known extension, ./, ~, absolute) but does not exist is an
    error here rather than a confusing hub lookup.
    """
    raw = Path(spec).expanduser()
    path = raw if raw.is_absolute() else (base_dir or Path.cwd()) / raw
    if path.exists():
        return path
    looks_local = spec.lower().endswith(LOCAL_EXTENSIONS) or spec.startswith((".", "~", "/", "\\")) or raw.is_absolute()
    if looks_local:
        raise DataSourceError(
            f"{spec}: no such file or directory (looked at {path}); "
            f"allowed local sources: a {'/'.join(LOCAL_EXTENSIONS)} file or a directory with train.<ext>"
        )
    return None


def _load_local(
    path: Path, text_column: str, label_column: str | None, text_pair_column: str | None = None
) -> dict[str, tuple[pd.DataFrame, None]]:
    """Read one file (all rows are train) or a directory of per-split files."""
    files = _split_files(path) if path.is_dir() else {"train": path}
    return {
        split: (_read_table(file, text_column, label_column, text_pair_column), None) for split, file in files.items()
    }


def _split_files(directory: Path) -> dict[str, Path]:
    """Find ``train.<ext>`` and optional validation/valid/dev and test files in a directory."""
    found: dict[str, Path] = {}
    for split, stems in SPLIT_ALIASES.items():
        candidates = [
            directory / f"{stem}{ext}"
            for stem in stems
            for ext in LOCAL_EXTENSIONS
            if (directory / f"{stem}{ext}").is_file()
        ]
        if len(candidates) > 1:
            raise DataSourceError(
                f"{directory}: several files for the {split} split "
                f"({', '.join(c.name for c in candidates)}); keep exactly one"
            )
        if candidates:
            found[split] = candidates[0]
    if "train" not in found:
        raise DataSourceError(
            f"{directory}: directory has no train file; expected train{{{','.join(LOCAL_EXTENSIONS)}}} "
            "plus optional validation/valid/dev and test files"
        )
    return found


def _read_table(
    path: Path, text_column: str, label_column: str | None, text_pair_column: str | None = None
) -> pd.DataFrame:
    """Read a table with pandas and keep only the text/label columns, renamed canonically."""
    return _select_columns(str(path), read_raw_table(path), text_column, label_column, text_pair_column)


def read_raw_table(path: Path) -> pd.DataFrame:
    """Every column of a local csv/tsv/jsonl/json/parquet file; one-line errors for unreadable files."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t")
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=True)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except ImportError as err:
        raise DataSourceError(f"{path}: cannot read {suffix} files: {_one_line(err)}") from err
    except Exception as err:  # pandas raises many parser error types; the user needs one line
        raise DataSourceError(f"{path}: could not be read as {suffix}: {_one_line(err)}") from err
    raise DataSourceError(
        f"{path}: unsupported file type {suffix or '(none)'!r}; "
        f"allowed: {', '.join(LOCAL_EXTENSIONS)} or a directory with train.<ext>"
    )


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
    dataset_dict = _hub_dataset_dict(spec)
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
        names = _class_label_names(part.features.get(label_column)) if label_column else None
        frame = _select_columns(f"{spec}[{hub_split}]", part.to_pandas(), text_column, label_column, text_pair_column)
        if names is not None:
            unlabeled = frame["label"] == -1
            if unlabeled.all():
                continue  # GLUE-style hidden test labels: treat the split as missing
            if unlabeled.any():
                frame = frame[~unlabeled].reset_index(drop=True)
        result[split] = (frame, names)
    return result


def _hub_dataset_dict(spec: str) -> Any:
    """Try ``load_dataset(id)``, then ``load_dataset(name, config)``; one-line error if both fail.

    A preset (``glue/mnli``, ``piqa``: peftlab/data/presets) is loaded as
    ``load_dataset(hub_id, config)`` and comes back keyed by peftlab's split names (plus its extra
    evaluation splits), each split already in canonical columns when the preset has an adapter.
    A hub id with a local copy under ``PEFTLAB_DATASETS_MIRROR`` is read from there (peftlab/data/mirror.py).
    """
    try:
        from datasets import load_dataset
    except ImportError as err:
        raise DataSourceError(
            f"{spec}: hub datasets need the 'datasets' package (pip install datasets); {OFFLINE_HINT}"
        ) from err
    from peftlab.data.mirror import dataset_location

    preset = find_preset(spec)
    if preset is not None:
        return _preset_dataset_dict(spec, preset, load_dataset)
    attempts: list[tuple[str, ...]] = [(dataset_location(spec)[0],)]
    if "/" in spec:
        name, config = spec.split("/", 1)
        attempts.append((dataset_location(name)[0], config))
    first_error: Exception | None = None
    for args in attempts:
        try:
            return load_dataset(*args)
        except Exception as err:  # datasets raises many types (connection, FileNotFound, config)
            first_error = first_error or err
    assert first_error is not None
    raise DataSourceError(
        f"hub dataset {spec!r} could not be loaded ({_one_line(first_error)}); {OFFLINE_HINT}"
    ) from first_error


def _preset_dataset_dict(spec: str, preset: Preset, load_dataset: Any) -> dict[str, Any]:
    """A preset's hub splits under peftlab's names (train/validation/test and its extras), adapted."""
    from peftlab.data.mirror import dataset_location

    where, mirrored = dataset_location(preset.hub_id)
    args = (where,) if preset.hub_config is None else (where, preset.hub_config)
    kwargs = {"revision": preset.revision} if preset.revision and not mirrored else {}
    try:
        dataset_dict = load_dataset(*args, **kwargs)
    except Exception as err:  # datasets raises many types (connection, FileNotFound, config)
        raise DataSourceError(
            f"preset {spec!r} ({preset.hub_id}{', ' + preset.hub_config if preset.hub_config else ''}) could not be "
            f"loaded ({_one_line(err)}); {OFFLINE_HINT}, or set PEFTLAB_DATASETS_MIRROR to a local copy of the hub's"
        ) from err
    out: dict[str, Any] = {}
    for ours, theirs in {**preset.splits, **preset.extra_splits}.items():
        if theirs not in dataset_dict:
            raise DataSourceError(
                f"preset {spec!r}: {preset.hub_id} has no split {theirs!r} (splits: {', '.join(dataset_dict)})"
            )
        part = dataset_dict[theirs]
        if preset.adapter is not None:
            from datasets import Dataset

            try:
                frame = preset.adapter(part.to_pandas())
            except (KeyError, ValueError, TypeError, AttributeError) as err:
                raise DataSourceError(
                    f"preset {spec!r}: {preset.hub_id}[{theirs}] rows are not as expected ({_one_line(err)})"
                ) from err
            part = Dataset.from_pandas(frame, preserve_index=False)
        out[ours] = part
    return out


def _class_label_names(feature: Any) -> tuple[str, ...] | None:
    """ClassLabel names if the feature is one (duck-typed, so no ``datasets`` import is needed)."""
    names = getattr(feature, "names", None)
    if isinstance(names, list) and names:
        return tuple(str(n) for n in names)
    return None


def _one_line(err: BaseException, limit: int = 200) -> str:
    """Exception as 'Type: first line', shortened: the public contract is one-line errors."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
