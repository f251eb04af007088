"""Presets (issue 24): `data.source: glue/mnli` and friends, loaded offline through the same
`datasets.load_dataset(hub_id, config)` call as online, from local copies laid out as the hub's
(parquet files under `<mirror>/<hub id>/`, the hub's README `configs:` block, real column names
and label ids), pointed at by PEFTLAB_DATASETS_MIRROR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peftlab.data import load_classification_data, load_instruction_data
from peftlab.data.presets import find_preset, preset_names
from peftlab.data.sources import DataSourceError, _hub_dataset_dict

datasets = pytest.importorskip("datasets")

WORDS = ["the", "film", "movie", "story", "was", "is", "a", "very", "plot", "acting", "good", "bad"]


def _sentence(i: int, salt: str) -> str:
    return " ".join(WORDS[(i * k + len(salt)) % len(WORDS)] for k in (1, 3, 5, 7)) + f" {salt}{i}"


def write_hub_copy(mirror: Path, hub_id: str, configs: dict[str | None, dict[str, Any]]) -> None:
    """`configs`: hub config (None: the default one) -> {hub split: Dataset}, written as the hub lays them out."""
    root = mirror / hub_id
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        folder = config or "data"
        lines.append(f"- config_name: {config or 'default'}\n  data_files:")
        (root / folder).mkdir(parents=True, exist_ok=True)
        for split, ds in splits.items():
            ds.to_parquet(str(root / folder / f"{split}-00000-of-00001.parquet"))
            lines.append(f"  - split: {split}\n    path: {folder}/{split}-*")
    (root / "README.md").write_text("\n".join([*lines, "---", ""]))


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "hub"
    monkeypatch.setenv("PEFTLAB_DATASETS_MIRROR", str(root))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    return root


def _mnli(n: int, labelled: bool = True, salt: str = "") -> Any:
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
            "idx": datasets.Value("int32"),
        }
    )
    rows = {
        "premise": [_sentence(i, f"p{salt}") for i in range(n)],
        "hypothesis": [_sentence(i + 1, f"h{salt}") for i in range(n)],
        "label": [i % 3 if labelled else -1 for i in range(n)],
        "idx": list(range(n)),
    }
    return datasets.Dataset.from_dict(rows, features=features)


@pytest.fixture
def glue_mnli(mirror: Path) -> Path:
    write_hub_copy(
        mirror,
        "nyu-mll/glue",
        {
            "mnli": {
                "train": _mnli(60),
                "validation_matched": _mnli(9, salt="m"),
                "validation_mismatched": _mnli(7, salt="mm"),
                "test_matched": _mnli(4, labelled=False, salt="t"),
            }
        },
    )
    return mirror


def test_every_named_set_is_a_preset_with_a_hub_id_and_a_task():
    expected = {f"glue/{t}" for t in ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")}
    expected |= {"boolq", "piqa", "siqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"}
    expected |= {"gsm8k", "e2e_nlg", "metamath_qa"}
    assert set(preset_names()) == expected
    for name in expected:
        preset = find_preset(name)
        assert preset is not None and "/" in preset.hub_id and preset.citation
        assert preset.task in {"classification", "regression", "multiple_choice", "sft"}
        if preset.task == "multiple_choice":
            assert preset.config["choices_column"] == "choices"


def test_an_unknown_name_under_a_preset_family_lists_the_presets():
    with pytest.raises(DataSourceError) as info:
        find_preset("glue/foo")
    message = str(info.value)
    assert "\n" not in message and "glue/foo" in message and "glue/mnli, glue/mrpc" in message
    assert find_preset("acme/foo") is None  # any other hub id is no preset


def test_mnli_loads_offline_with_dev_as_test_and_mismatched_beside_it(glue_mnli: Path):
    data = load_classification_data("glue/mnli", text_column="premise", text_pair_column="hypothesis")
    assert data.label_names == ("entailment", "neutral", "contradiction")  # the hub's ClassLabel
    assert data.sizes() == {"train": 54, "validation": 6, "test": 9, "validation_mismatched": 7}
    assert set(data.test["text"]) == {_sentence(i, "pm") for i in range(9)}  # validation_matched is test
    assert set(data.extra["validation_mismatched"]["text_pair"]) == {_sentence(i + 1, "hmm") for i in range(7)}
    assert not set(data.validation["text"]) & set(data.train["text"])  # carved off train
    assert data.name.startswith("GLUE MNLI") and "Wang et al." in (data.citation or "")
    again = load_classification_data("glue/mnli", text_column="premise", text_pair_column="hypothesis")
    assert again.fingerprint == data.fingerprint
    limited = load_classification_data(
        "glue/mnli", text_column="premise", text_pair_column="hypothesis", limits={"test": 3}
    )
    assert limited.sizes()["validation_mismatched"] == 3 and limited.fingerprint != data.fingerprint


def test_a_missing_mirror_copy_is_one_line_naming_the_preset(mirror: Path):
    with pytest.raises(DataSourceError) as info:
        load_classification_data("glue/qqp", text_column="question1", text_pair_column="question2")
    message = str(info.value)
    assert "\n" not in message and "glue/qqp" in message and "nyu-mll/glue" in message


def _experiment(tmp_path: Path, data: str, task: str = "classification", model: str = "m") -> Path:
    path = tmp_path / "e.yaml"
    path.write_text(
        f"name: p\nmodel: {model}\ntask: {task}\ndata: {data}\ntrain: {{steps: 2, batch_size: 4, eval_every: 2}}\n"
        f"seeds: [0]\noutput_dir: {tmp_path / 'results'}\nmethods: [{{method: lora, lr: 1.0e-3, r: 2}}]\n"
    )
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{source: glue/mnli}", ("premise", "hypothesis", "label", "accuracy")),
        ("{source: glue/cola}", ("sentence", None, "label", "matthews")),
        ("{source: glue/mrpc}", ("sentence1", "sentence2", "label", "f1")),
        ("{source: glue/mrpc, metric: accuracy, text_column: [a, b]}", ("a", "b", "label", "accuracy")),
        ("{source: glue/cola, text_column: s}", ("s", None, "label", "matthews")),
    ],
)
def test_a_preset_fills_the_data_keys_the_file_leaves_out(tmp_path: Path, data: str, expected: tuple):
    from peftlab.config import load_experiment

    cfg = load_experiment(_experiment(tmp_path, data)).data
    assert (cfg.text_column, cfg.text_pair_column, cfg.label_column, cfg.metric) == expected


def test_gsm8k_presets_fill_the_answer_extractor(tmp_path: Path):
    from peftlab.config import load_experiment

    cfg = load_experiment(_experiment(tmp_path, "{source: metamath_qa, test_source: gsm8k}", task="sft")).data
    assert (cfg.metric, cfg.answer_extractor, cfg.test_source) == ("exact_match", "gsm8k_final_number", "gsm8k")


@pytest.mark.parametrize(
    ("task", "data", "says"),
    [
        ("classification", "{source: glue/foo}", "unknown preset 'glue/foo'; allowed: arc_challenge"),
        ("classification", "{source: glue/stsb}", "preset 'glue/stsb' is for task 'regression', not 'classification'"),
        ("classification", "{source: gsm8k}", "preset 'gsm8k' is for task 'sft'"),
        ("sft", "{source: metamath_qa, test_source: glue/sst2}", "data.test_source: preset 'glue/sst2' is for task"),
        ("classification", "{source: glue/cola, metric: bleu}", "offers: accuracy, matthews, f1"),
        ("regression", "{source: glue/stsb, metric: matthews}", "task 'regression' has no metric choice"),
    ],
    ids=["unknown-preset", "wrong-task", "wrong-task-sft", "wrong-task-test-source", "metric", "metric-regression"],
)
def test_bad_preset_input_is_one_line_exit_2_nothing_written(tmp_path, tiny_bert, capsys, task, data, says):
    from peftlab.run import main

    assert main([str(_experiment(tmp_path, data, task=task, model=str(tiny_bert)))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err
    assert not (tmp_path / "results").exists()


def test_mnli_run_scores_mismatched_into_the_record(tmp_path, tiny_bert, glue_mnli):
    """End to end on a tiny BERT: the preset's extra split is evaluated beside test, with its predictions."""
    import gzip

    from peftlab.results import load_records
    from peftlab.run import main

    exp = _experiment(tmp_path, "{source: glue/mnli, max_length: 32}", model=str(tiny_bert))
    assert main([str(exp), "--no-report", "-q"]) == 0
    (record,) = load_records([tmp_path / "results" / "p"])
    mismatched = record["metrics"]["validation_mismatched"]
    assert mismatched["n"] == 7 and 0 <= mismatched["accuracy"] <= 1
    assert record["metrics"]["test"]["n"] == 9
    predictions = next((tmp_path / "results" / "p").rglob("*.jsonl.gz"))
    rows = [json.loads(line) for line in gzip.open(predictions, "rt")]
    assert sum(r["split"] == "validation_mismatched" for r in rows) == 7


def test_cola_run_is_scored_by_matthews(tmp_path, tiny_bert, mirror):
    from peftlab.results import load_records
    from peftlab.run import main

    features = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["unacceptable", "acceptable"]),
            "idx": datasets.Value("int32"),
        }
    )

    def split(n: int, salt: str) -> Any:
        rows = {"sentence": [_sentence(i, salt) for i in range(n)], "label": [i % 2 for i in range(n)]}
        return datasets.Dataset.from_dict({**rows, "idx": list(range(n))}, features=features)

    write_hub_copy(mirror, "nyu-mll/glue", {"cola": {"train": split(40, "a"), "validation": split(8, "b")}})
    exp = _experiment(tmp_path, "{source: glue/cola, max_length: 32}", model=str(tiny_bert))
    assert main([str(exp), "--no-report", "-q"]) == 0
    (record,) = load_records([tmp_path / "results" / "p"])
    assert -1 <= record["metrics"]["test"]["matthews"] <= 1
    assert record["metrics"]["validation"]["matthews"] is not None
