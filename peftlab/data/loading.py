"""What every data loader shares: reading a source, carving and limiting splits, and the fingerprint.

Classification and text data (sources.py), multiple-choice data (choices.py) and instruction
data (instructions.py) turn different row shapes into three fixed splits by the same steps:
where a source string points (`local_path`, `split_files`, `read_raw_table`,
`hub_dataset_dict`), a content-hash order that no library version can change (`hash_order`,
`shuffle_splits`), the splits a source lacks cut off train (`default_carve_sizes`,
`carve_missing`), the `*_limit`s checked and applied label-stratified (`check_limits`,
`apply_limit`), and the record's names for the data (`reference`, `compute_fingerprint`).
Each step is here once, under a public name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from peftlab.data.builtin import builtin_reference
from peftlab.data.frames import BUILTIN_PREFIX, DataSourceError
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


def test_split(test_source: str, base_dir: Path | None, load: Any) -> Any:
    """The test split of `test_source` (`data.test_source`), read by `load(spec, local path or None)`."""
    spec = test_source.strip()
    if spec.startswith(BUILTIN_PREFIX):
        raise DataSourceError(f"{spec}: test_source must be a local or hub source (or a preset), not a builtin")
    loaded = load(spec, local_path(spec, base_dir))
    if "test" not in loaded:
        raise DataSourceError(f"{spec}: test_source has no test split (splits: {', '.join(loaded)})")
    return loaded["test"]


def reference(spec: str) -> tuple[str, str | None]:
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


def check_limits(source: str, limits: Mapping[str, int | None] | None) -> dict[str, int | None]:
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


def apply_limit(df: pd.DataFrame, limit: int | None) -> pd.DataFrame:
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
    quotas = stratified_quotas(pd.Series(labels).value_counts().sort_index().to_dict(), limit)
    rank_in_class = pd.Series(labels).groupby(labels).cumcount().to_numpy()
    keep = rank_in_class < pd.Series(labels).map(quotas).to_numpy()
    return df[keep].reset_index(drop=True)


def stratified_quotas(counts: Mapping[int, int], limit: int) -> dict[int, int]:
    """Rows per class for a ``limit``-row subset in the split's proportions (largest remainder)."""
    total = sum(counts.values())
    exact = {label: limit * n / total for label, n in counts.items()}
    quotas = {label: int(share) for label, share in exact.items()}
    by_remainder = sorted(counts, key=lambda label: (-(exact[label] - quotas[label]), label))
    for label in by_remainder[: limit - sum(quotas.values())]:
        quotas[label] += 1
    return quotas


def default_carve_sizes(source: str, splits: Mapping[str, pd.DataFrame]) -> dict[str, int]:
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


def carve_missing(source: str, splits: Mapping[str, pd.DataFrame], sizes: Mapping[str, int]) -> dict[str, pd.DataFrame]:
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


# --------------------------------------------------------------------------- where a source points


def local_path(spec: str, base_dir: Path | None) -> Path | None:
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


def split_files(directory: Path) -> dict[str, Path]:
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
        raise DataSourceError(f"{path}: cannot read {suffix} files: {one_line(err)}") from err
    except Exception as err:  # pandas raises many parser error types; the user needs one line
        raise DataSourceError(f"{path}: could not be read as {suffix}: {one_line(err)}") from err
    raise DataSourceError(
        f"{path}: unsupported file type {suffix or '(none)'!r}; "
        f"allowed: {', '.join(LOCAL_EXTENSIONS)} or a directory with train.<ext>"
    )


def hub_dataset_dict(spec: str) -> Any:
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
        f"hub dataset {spec!r} could not be loaded ({one_line(first_error)}); {OFFLINE_HINT}"
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
            f"loaded ({one_line(err)}); {OFFLINE_HINT}, or set PEFTLAB_DATASETS_MIRROR to a local copy of the hub's"
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
                    f"preset {spec!r}: {preset.hub_id}[{theirs}] rows are not as expected ({one_line(err)})"
                ) from err
            part = Dataset.from_pandas(frame, preserve_index=False)
        out[ours] = part
    return out


def class_label_names(feature: Any) -> tuple[str, ...] | None:
    """ClassLabel names if the feature is one (duck-typed, so no ``datasets`` import is needed)."""
    names = getattr(feature, "names", None)
    if isinstance(names, list) and names:
        return tuple(str(n) for n in names)
    return None


def one_line(err: BaseException, limit: int = 200) -> str:
    """Exception as 'Type: first line', shortened: the public contract is one-line errors."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
