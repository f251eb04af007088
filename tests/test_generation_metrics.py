"""Task `sft`'s scored generation (issue 24): `data.metric: exact_match | bleu | rouge` and
`data.answer_extractor: gsm8k_final_number`, checked against sacrebleu and rouge-score themselves,
end to end on the tiny Llama, and as one-line config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.metrics import BLEU

from peftlab.stats import crossed
from peftlab.task_specs import get_task_spec
from peftlab.tasks.scoring import bleu, exact_match, gsm8k_final_number, rouge_l, score_generations

HYPOTHESES = ["the cat sat on the mat today", "a quick brown fox jumps over the dog", "it rains a lot in the north"]
REFERENCES = ["the cat sat on a mat today", "the quick brown fox jumps over the lazy dog", "it rains a lot up north"]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.\n#### 72", "72"),
        ("#### 1,000 and later 5", "1000"),  # `#### N` wins over a later number
        ("first 3 then 4.50 dollars.", "4.5"),  # else the last number, written canonically
        ("a loss of -12 points", "-12"),
        ("The answer is 1,234,567.", "1234567"),
        ("so the total is 18.00", "18"),
        ("no digits here", None),
        ("#### none, but 7 before? no: 7 after", "7"),  # `####` with no number after it: the last number
    ],
)
def test_gsm8k_final_number(text, number):
    assert gsm8k_final_number(text) == number


def test_the_extractor_matches_final_answers_whole_answer_matching_would_miss():
    hyps = ["We add 2 and 3 to get 5", "The answer is 1,000", "I think 7"]
    refs = ["2 + 3 = 5\n#### 5", "#### 1000", "#### 8"]
    assert exact_match(hyps, refs)[1]["correct"] == [False, False, False]
    score, columns = exact_match(hyps, refs, "gsm8k_final_number")
    assert columns["correct"] == [True, True, False] and score == pytest.approx(2 / 3)
    assert exact_match(["no number"], ["#### 3"], "gsm8k_final_number")[1]["correct"] == [False]
    assert exact_match([" Positive. "], ["positive"])[1]["correct"] == [True]  # the unchanged default


def test_bleu_is_sacrebleus_corpus_bleu_and_its_columns_resample_to_it():
    score, columns = bleu(HYPOTHESES, REFERENCES)
    assert score == pytest.approx(BLEU().corpus_score(HYPOTHESES, [REFERENCES]).score / 100)
    assert 0.2 < score < 0.9  # a real, non-degenerate BLEU for these strings
    # every n-gram order has matches here, so the statistics engine's BLEU of the columns is sacrebleu's
    n = len(HYPOTHESES)
    as_arrays = {k: np.asarray(v) for k, v in columns.items()}
    assert as_arrays["matches"].shape == (n, 4) and as_arrays["hyp_len"].shape == (n,)
    assert crossed.corpus_bleu().value(as_arrays) == pytest.approx(score)
    # one example alone: its own sentence statistics, not the corpus's
    assert crossed.corpus_bleu().value({k: v[:1] for k, v in as_arrays.items()}) == pytest.approx(
        BLEU().corpus_score(HYPOTHESES[:1], [REFERENCES[:1]]).score / 100
    )


def test_rouge_l_is_the_mean_of_rouge_scores_f_measures():
    score, columns = rouge_l(HYPOTHESES, REFERENCES)
    scorer = RougeScorer(["rougeL"])
    expected = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(HYPOTHESES, REFERENCES, strict=True)]
    assert columns["rouge_l"] == pytest.approx(expected) and score == pytest.approx(np.mean(expected))
    assert crossed.mean_metric("ROUGE-L", "rouge_l").value({"rouge_l": np.asarray(columns["rouge_l"])}) == (
        pytest.approx(score)
    )
    assert rouge_l(["same words here"], ["same words here"])[0] == pytest.approx(1.0)


def test_each_metric_choice_makes_its_score_primary_and_keeps_its_columns():
    spec = get_task_spec("sft")
    assert get_task_spec("sft", None) is spec and spec.primary == "accuracy"
    for metric, primary in (("exact_match", "accuracy"), ("bleu", "bleu"), ("rouge", "rouge_l")):
        chosen = get_task_spec("sft", metric)
        scores, columns = score_generations(metric, HYPOTHESES, REFERENCES)
        assert chosen.primary == primary and primary in scores and "accuracy" in scores
        assert set(chosen.per_example) == {"gold", "prediction", *columns}
    with pytest.raises(KeyError, match="offers: exact_match, bleu, rouge"):
        get_task_spec("sft", "meteor")


def test_a_search_may_optimise_only_the_score_its_runs_compute():
    from peftlab.config.search import primary_objective, task_objectives
    from peftlab.task_specs import resolve_task

    sft, bleu, rouge = resolve_task("sft"), resolve_task("sft", "bleu"), resolve_task("sft", "rouge")
    assert "val_bleu" not in task_objectives(sft) and "val_rouge_l" not in task_objectives(sft)
    assert "val_bleu" in task_objectives(bleu) and "val_accuracy" in task_objectives(bleu)
    assert primary_objective(sft) == ("val_accuracy", "maximize")
    assert primary_objective(rouge) == ("val_rouge_l", "maximize")
    assert task_objectives(resolve_task("classification")) == task_objectives(resolve_task("classification", None))


# ---------------------------------------------------------------- end to end (tiny Llama, 2 steps)

GSM_ROWS = [
    {"prompt": f"what is {a} plus {b} ?", "completion": f"{a} plus {b} is {a + b} .\n#### {a + b}"}
    for a in range(6)
    for b in range(5)
]
TEXT_ROWS = [
    {"prompt": f"describe the film {i} .", "completion": f"the film was {w} and the plot was {v} ."}
    for i, (w, v) in enumerate([("good", "dull"), ("bad", "fine"), ("great", "slow")] * 10)
]


def _run(tmp_path: Path, model: Path, rows: list[dict], data_keys: str, method: str) -> tuple[dict, list[dict]]:
    """One run of `method` (2 steps) on `rows`: its record and its predictions lines."""
    import gzip

    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = tmp_path / "gen.yaml"
    path.write_text(
        f"name: gen\nmodel: {model}\ntask: sft\ndata:\n  source: {data}\n  max_length: 48\n  max_new_tokens: 8\n"
        f"{data_keys}train:\n  steps: 2\n  batch_size: 4\n  eval_every: 2\n  eval_batch_size: 8\n"
        f"seeds: [0]\noutput_dir: {tmp_path / 'results'}\nmethods:\n  - method: {method}\n    lr: 1.0e-2\n"
    )
    experiment = load_experiment(path)
    ws = prepare_workspace(experiment)
    (spec,) = make_plan(experiment)
    execute_run(ws, spec, (1, 1), quiet=True)
    runs = experiment.results_dir() / "runs"
    (record_path,) = [p for p in runs.glob("*.json")]
    record = json.loads(record_path.read_text())
    lines = gzip.decompress((runs / record["predictions"]["file"]).read_bytes()).decode().splitlines()
    return record, [json.loads(line) for line in lines]


def test_exact_match_with_the_extractor_end_to_end(tmp_path, tiny_llama):
    record, lines = _run(tmp_path, tiny_llama, GSM_ROWS, "  answer_extractor: gsm8k_final_number\n", "lora")
    assert record["status"] == "ok" and record["config"]["data"]["answer_extractor"] == "gsm8k_final_number"
    test = [row for row in lines if row["split"] == "test"]
    assert test and set(test[0]) == {"split", "id", "gold", "prediction", "correct"}
    for row in test:  # correct is the extracted final numbers' match, per example
        expected = gsm8k_final_number(row["gold"])
        assert expected is not None and row["correct"] == (gsm8k_final_number(row["prediction"]) == expected)
    assert record["metrics"]["test"]["accuracy"] == pytest.approx(np.mean([row["correct"] for row in test]))
    assert "bleu" not in record["metrics"]["test"]


@pytest.mark.parametrize("metric", ["bleu", "rouge"])
def test_bleu_and_rouge_end_to_end_are_the_packages_scores_of_the_kept_texts(tmp_path, tiny_llama, metric):
    record, lines = _run(tmp_path, tiny_llama, TEXT_ROWS, f"  metric: {metric}\n", "zero_shot")
    test = [row for row in lines if row["split"] == "test"]
    hyps, refs = [row["prediction"] for row in test], [row["gold"] for row in test]
    scores = record["metrics"]["test"]
    if metric == "bleu":
        assert scores["bleu"] == pytest.approx(BLEU().corpus_score(hyps, [refs]).score / 100)
        assert {"matches", "totals", "hyp_len", "ref_len", "correct"} <= set(test[0])
    else:
        scorer = RougeScorer(["rougeL"])
        expected = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs, strict=True)]
        assert scores["rouge_l"] == pytest.approx(np.mean(expected))
        assert [row["rouge_l"] for row in test] == pytest.approx(expected)
    assert "accuracy" in scores and record["config"]["data"]["metric"] == metric


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("extra", "data_keys", "key", "words"),
    [
        ("", "  metric: bleu\n", "data.metric", ["'classification'", "offers: accuracy, matthews, f1"]),
        ("task: sft\n", "  metric: meteor\n", "data.metric", ["'meteor'", "exact_match, bleu, rouge"]),
        ("task: sft\n", "  answer_extractor: last_word\n", "data.answer_extractor", ["gsm8k_final_number"]),
        (
            "task: sft\n",
            "  metric: bleu\n  answer_extractor: gsm8k_final_number\n",
            "data.answer_extractor",
            ["exact_match", "bleu"],
        ),
    ],
)
def test_a_metric_the_task_does_not_offer_is_one_line_exit_2_nothing_written(
    experiment_file, tmp_path, extra, data_keys, key, words
):
    path = experiment_file(extra=extra)
    path.write_text(path.read_text().replace("  max_length: 32\n", f"  max_length: 32\n{data_keys}"))
    result = subprocess.run([sys.executable, "-m", "peftlab.run", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert key in line and all(w in line for w in words), line
    assert not (tmp_path / "results").exists()
