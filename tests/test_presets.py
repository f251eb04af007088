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
from peftlab.data.frames import DataSourceError
from peftlab.data.loading import hub_dataset_dict
from peftlab.data.presets import find_preset, preset_names

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
    from peftlab.cli.run import main

    assert main([str(_experiment(tmp_path, data, task=task, model=str(tiny_bert)))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err
    assert not (tmp_path / "results").exists()


def test_mnli_run_scores_mismatched_into_the_record(tmp_path, tiny_bert, glue_mnli):
    """End to end on a tiny BERT: the preset's extra split is evaluated beside test, with its predictions."""
    import gzip

    from peftlab.cli.run import main
    from peftlab.records.results import load_records

    exp = _experiment(tmp_path, "{source: glue/mnli, max_length: 32}", model=str(tiny_bert))
    assert main([str(exp), "--no-report", "-q"]) == 0
    (record,) = load_records([tmp_path / "results" / "p"])
    mismatched = record["metrics"]["validation_mismatched"]
    assert mismatched["n"] == 7 and 0 <= mismatched["accuracy"] <= 1
    assert record["metrics"]["test"]["n"] == 9
    predictions = next((tmp_path / "results" / "p").rglob("*.jsonl.gz"))
    with gzip.open(predictions, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert sum(r["split"] == "validation_mismatched" for r in rows) == 7


def test_cola_run_is_scored_by_matthews(tmp_path, tiny_bert, mirror):
    from peftlab.cli.run import main
    from peftlab.records.results import load_records

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


# --------------------------------------------------------------------------- multiple choice adapters


def _loaded(name: str) -> dict[str, Any]:
    """A preset's splits through the hub path, as pandas (what the multiple_choice task reads)."""
    return {split: ds.to_pandas() for split, ds in hub_dataset_dict(name).items()}


def _assert_mc(frame: Any, n_choices: int) -> None:
    assert list(frame.columns) == ["text", "choices", "label"]
    assert all(len(list(c)) == n_choices for c in frame["choices"])
    assert frame["label"].between(0, n_choices - 1).all()


def test_piqa_and_arc_adapters_through_the_hub_path(mirror: Path):
    piqa = {
        "goal": ["How do I open a jar?", "How to dry a shirt?"],
        "sol1": ["Twist the lid.", "Put it in water."],
        "sol2": ["Hit it with a pillow.", "Hang it in the sun."],
        "label": [0, 1],
    }
    write_hub_copy(
        mirror,
        "baber/piqa",
        {None: {s: datasets.Dataset.from_dict(piqa) for s in ("train", "validation")}},
    )
    splits = _loaded("piqa")
    assert set(splits) == {"train", "test"}  # hub validation is test; validation is carved later
    _assert_mc(splits["test"], 2)
    assert splits["test"]["text"][0] == "Question: How do I open a jar?\nAnswer:"
    assert list(splits["test"]["choices"][1]) == ["Put it in water.", "Hang it in the sun."]
    assert splits["test"]["label"].tolist() == [0, 1]

    arc = {
        "id": ["q1", "q2"],
        "question": ["Which is a gas?", "What melts ice?"],
        "choices": [
            {"text": ["rock", "steam", "wood", "iron"], "label": ["A", "B", "C", "D"]},
            {"text": ["heat", "cold", "dark"], "label": ["1", "2", "3"]},
        ],
        "answerKey": ["B", "1"],
    }
    write_hub_copy(
        mirror,
        "allenai/ai2_arc",
        {"ARC-Easy": {s: datasets.Dataset.from_dict(arc) for s in ("train", "validation", "test")}},
    )
    test = _loaded("arc_easy")["test"]
    assert test["label"].tolist() == [1, 0]
    assert [len(list(c)) for c in test["choices"]] == [4, 3]
    assert test["text"][0] == "Question: Which is a gas?\nAnswer:"


def test_commonsense_adapters_follow_lm_eval():
    import pandas as pd

    from peftlab.data.presets import commonsense as cs

    boolq = cs.boolq(pd.DataFrame({"question": ["is it wet"], "passage": ["Rain."], "idx": [0], "label": [1]}))
    _assert_mc(boolq, 2)
    assert boolq["text"][0] == "Rain.\nQuestion: is it wet?\nAnswer:" and boolq["choices"][0] == ["no", "yes"]

    siqa = cs.siqa(
        pd.DataFrame(
            {"context": ["Kai ran."], "question": ["Why?"], "answerA": ["a"], "answerB": ["b"], "answerC": ["c"]}
            | {"label": ["3"]}
        )
    )
    _assert_mc(siqa, 3)
    assert siqa["label"][0] == 2 and siqa["text"][0] == "Q: Kai ran. Why?\nA:"

    hella = cs.hellaswag(
        pd.DataFrame(
            {
                "activity_label": ["Cooking"],
                "ctx_a": ["A man cracks eggs."],
                "ctx_b": ["then he"],
                "endings": [["stirs [title] them.", "sleeps.", "sings.", "runs."]],
                "label": ["0"],
            }
        )
    )
    _assert_mc(hella, 4)
    assert hella["text"][0] == "Cooking: A man cracks eggs. Then he" and hella["choices"][0][0] == "stirs. them."

    wino = cs.winogrande(
        pd.DataFrame(
            {"sentence": ["The cup fell off the table because _ was tilted."], "option1": ["cup"]}
            | {"option2": ["table"], "answer": ["2"]}
        )
    )
    _assert_mc(wino, 2)
    assert wino["text"][0] == "The cup fell off the table because"
    assert wino["choices"][0] == ["cup was tilted.", "table was tilted."] and wino["label"][0] == 1

    obqa = cs.openbookqa(
        pd.DataFrame(
            {
                "id": ["1"],
                "question_stem": ["The sun is"],
                "choices": [{"text": ["cold", "a star"], "label": ["A", "B"]}],
                "answerKey": [" B"],
            }
        )
    )
    _assert_mc(obqa, 2)
    assert obqa["label"][0] == 1 and obqa["text"][0] == "The sun is"


def test_an_adapter_meeting_other_columns_is_one_line(mirror: Path):
    wrong = {"question": ["q"], "answer": ["a"]}
    write_hub_copy(
        mirror, "baber/piqa", {None: {s: datasets.Dataset.from_dict(wrong) for s in ("train", "validation")}}
    )
    with pytest.raises(DataSourceError) as info:
        hub_dataset_dict("piqa")
    assert "\n" not in str(info.value) and "baber/piqa" in str(info.value) and "goal" in str(info.value)


# --------------------------------------------------------------------------- train on one set, test on another


def test_metamath_trains_and_gsm8k_tests(mirror: Path):
    from peftlab.tasks.scoring import gsm8k_final_number

    metamath = {
        "type": ["GSM_Rephrased"] * 20,
        "query": [f"What is {i} plus {i}?" for i in range(20)],
        "original_question": ["x"] * 20,
        "response": [f"Add them. The answer is: {2 * i}" for i in range(20)],
    }
    write_hub_copy(mirror, "meta-math/MetaMathQA", {None: {"train": datasets.Dataset.from_dict(metamath)}})
    gsm = {"question": [f"Tom has {i} apples and buys 2. How many?" for i in range(5)]}
    gsm["answer"] = [f"He has {i} + 2 = {i + 2}.\n#### {i + 2}" for i in range(5)]
    write_hub_copy(mirror, "openai/gsm8k", {"main": {s: datasets.Dataset.from_dict(gsm) for s in ("train", "test")}})

    data = load_instruction_data("metamath_qa", test_source="gsm8k")
    assert data.kind == "conversations" and data.sizes() == {"train": 18, "validation": 2, "test": 5}
    prompts = [data.conversation(t)[0][-1]["content"] for t in data.test["text"]]
    assert all(p.startswith("Question: Tom has") and p.endswith("Think step by step.\nAnswer:") for p in prompts)
    answers = sorted(gsm8k_final_number(data.conversation(t)[1]) for t in data.test["text"])
    assert answers == ["2", "3", "4", "5", "6"]
    train_answers = {data.conversation(t)[1] for t in data.train["text"]}
    assert all(a.startswith("Add them.") for a in train_answers)  # MetaMathQA's responses
    alone = load_instruction_data("metamath_qa")
    assert alone.fingerprint != data.fingerprint and alone.sizes()["test"] == 2  # carved off MetaMathQA


# --------------------------------------------------------------------------- GLUE metrics by task


def test_matthews_and_binary_f1_are_sklearns():
    from sklearn.metrics import f1_score, matthews_corrcoef

    from peftlab.metrics import chosen_classification_score

    gold, pred = [0, 1, 1, 0, 1, 1, 0, 0], [0, 1, 0, 0, 1, 1, 1, 1]
    assert chosen_classification_score("matthews", pred, gold) == {
        "matthews": pytest.approx(matthews_corrcoef(gold, pred))
    }
    assert chosen_classification_score("f1", pred, gold) == {"f1": pytest.approx(f1_score(gold, pred))}
    assert chosen_classification_score("f1", pred, gold)["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert (
        chosen_classification_score("accuracy", pred, gold) == {}
        and chosen_classification_score(None, pred, gold) == {}
    )


def test_classification_declares_the_glue_metrics_for_the_statistics_engine():
    from peftlab.task_specs import get_task_spec

    spec = get_task_spec("classification", "matthews")
    assert spec.primary == "matthews" and spec.primary_metric.statistic == "matthews"
    f1 = get_task_spec("classification", "f1")
    assert (
        f1.primary == "f1"
        and f1.primary_metric.statistic == "f1_binary"
        and f1.per_example[:2] == ("gold", "prediction")
    )
    assert get_task_spec("classification").primary == "accuracy"


def test_test_source_replaces_the_test_split_of_a_classification_source(tmp_path: Path):
    import pandas as pd

    for name, n in (("a", 40), ("b", 6)):
        folder = tmp_path / name
        folder.mkdir()
        pd.DataFrame({"text": [_sentence(i, name) for i in range(n)], "label": [i % 2 for i in range(n)]}).to_csv(
            folder / "train.csv", index=False
        )
        pd.DataFrame({"text": [_sentence(i, name + "t") for i in range(n)], "label": [i % 2 for i in range(n)]}).to_csv(
            folder / "test.csv", index=False
        )
    data = load_classification_data(str(tmp_path / "a"), test_source=str(tmp_path / "b"))
    assert set(data.test["text"]) == {_sentence(i, "bt") for i in range(6)}
    assert data.sizes() == {"train": 36, "validation": 4, "test": 6}
    with pytest.raises(DataSourceError, match="test_source"):
        load_classification_data(str(tmp_path / "a"), test_source="builtin:rotten_tomatoes")
