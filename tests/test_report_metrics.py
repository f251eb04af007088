"""Reports for any task's declared metrics (issues 23/24): regression's Pearson, sft's BLEU, "min" metrics.

Synthetic records and predictions files are written by the real writers; every number the report
prints is checked against scipy / sklearn / sacrebleu computed here on the same outputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_report import METHODS, _md_rows, synthetic_record

from peftlab.cli.report import main as report_main
from peftlab.cli.report import write_report
from peftlab.records.predictions import example_ids, read_predictions, write_predictions
from peftlab.records.results import write_record
from peftlab.stats import crossed
from peftlab.task_specs import resolve_task

CSV = 1e-5  # summary.csv keeps 6 significant digits
NOISE = {"full": 0.4, "lora": 0.8, "prompt_tuning": 2.0}  # prediction = gold + noise: Pearson falls with it


def _record(results, label, seed, *, task, metrics, data_metric=None):
    method, acc, trainable, peak, tps, saved, hyper = METHODS[label]
    rec = synthetic_record(results.name, label, method, seed, acc, trainable, peak, tps, saved, hyper, forgetting=False)
    rec["config"]["task"] = task
    rec["task"] = resolve_task(task, data_metric).record_block()  # what the recipe writes from the run spec
    if data_metric is not None:
        rec["config"]["data"] = {"metric": data_metric}
    rec["metrics"]["test"] = metrics
    rec["metrics"]["validation"] = {}
    rec["metrics"]["curve"] = []
    return rec


def regression_records(results, n=300, seeds=(0, 1, 2)):
    """Ratings with a shared example difficulty; returns {label: [(pearson, spearman, mse) per seed]}."""
    rng = np.random.default_rng(1)
    gold = rng.normal(0, 1, n)
    hard = rng.normal(0, 1, n)  # the same examples are hard for every method and seed
    ids = example_ids((f"review {i}", float(g)) for i, g in enumerate(gold))
    truth: dict[str, list[tuple[float, float, float]]] = {}
    for label, noise in NOISE.items():
        for seed in seeds:
            prediction = gold + noise * (0.6 * hard + 0.8 * rng.normal(0, 1, n))
            p, s = stats.pearsonr(prediction, gold).statistic, stats.spearmanr(prediction, gold).statistic
            mse = float(np.mean((prediction - gold) ** 2))
            truth.setdefault(label, []).append((p, s, mse))
            metrics = {"pearson": p, "spearman": s, "mse": mse, "loss": mse, "n": n}
            rec = _record(results, label, seed, task="regression", metrics=metrics)
            block = {"id": ids, "gold": gold.tolist(), "prediction": prediction.tolist()}
            rec["predictions"] = write_predictions(results, rec["run_id"], {"test": block})
            write_record(results, rec)
    return truth


def test_a_regression_report_heads_with_pearson_and_checks_against_scipy(tmp_path):
    results = tmp_path / "vader_regression"
    truth = regression_records(results)
    out = tmp_path / "out"
    write_report([results], out)
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    mean = {label: np.mean(values, axis=0) for label, values in truth.items()}
    assert (summary["primary_metric"] == "pearson").all() and (summary["vs_ref_metric"] == "pearson").all()
    for label in NOISE:
        assert summary.loc[label, "test_pearson_mean"] == pytest.approx(mean[label][0], abs=CSV)
        assert summary.loc[label, "test_pearson_low"] < mean[label][0] < summary.loc[label, "test_pearson_high"]
        assert summary.loc[label, "test_pearson_question"] == "b"
    # the engine's Δ is scipy's Pearson, seed-averaged, of each method minus the reference's
    for label in ("lora", "prompt_tuning"):
        assert summary.loc[label, "vs_ref_diff"] == pytest.approx(mean[label][0] - mean["full"][0], abs=CSV)
        assert summary.loc[label, "vs_ref_b_high"] < 0 < 1 - summary.loc[label, "vs_ref_b_p_holm"]
    assert summary.loc["full", "test_pearson_mark"] == "best"
    assert summary.loc["full", "test_mse_mark"] == "best"  # MSE: lower is better (Welch over seeds)
    assert summary.loc["prompt_tuning", "test_mse_mark"] not in ("best", "tied")
    md = (out / "summary.md").read_text()
    header, rows = _md_rows(md)
    assert header[header.index("question") + 1] == "test Pearson r (95% CI)"  # the headline column, named
    assert "Δ Pearson r vs full, recipe (b) [95% CI]" in header and "test acc (95% CI)" not in header
    assert rows["full"][header.index("test Pearson r (95% CI)")].startswith("**")
    assert rows["full"][header.index("test MSE")].startswith("**")
    assert "Test Pearson r (the task's primary metric)" in md and "accuracy" not in md.split("\n\n")[1]
    assert "Pearson $r$" in (out / "summary.tex").read_text()
    macros = (out / "macros.tex").read_text()
    assert "FullPearsonLow" in macros and "best in test Pearson r" in macros


def test_a_declared_secondary_metric_can_be_compared_and_an_undeclared_one_is_refused(tmp_path, capsys):
    results = tmp_path / "reg"
    truth = regression_records(results, n=120, seeds=(0, 1))
    write_report([results], tmp_path / "out", metric="spearman")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("method")
    spearman = {label: np.mean([v[1] for v in values]) for label, values in truth.items()}
    assert summary.loc["lora", "vs_ref_metric"] == "spearman"
    assert summary.loc["lora", "vs_ref_diff"] == pytest.approx(spearman["lora"] - spearman["full"], abs=CSV)
    before = sorted(p.name for p in results.iterdir())
    capsys.readouterr()
    assert report_main([str(results), "--metric", "accuracy"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "report metric 'accuracy' is not produced by task regression" in err, err
    assert "allowed: pearson, spearman" in err
    assert sorted(p.name for p in results.iterdir()) == before  # nothing written


WORDS = "the a red blue small big cat dog sits runs near far park house river tree old new quick slow"


def bleu_records(results, n=150, seeds=(0, 1)):
    """Generated sentences whose word error rate differs by method; returns {label: [sacrebleu BLEU/100]}."""
    from sacrebleu.metrics import BLEU

    from peftlab.tasks.scoring import bleu

    rng = np.random.default_rng(2)
    references = [" ".join(rng.choice(WORDS.split(), size=rng.integers(6, 12))) for _ in range(n)]
    ids = example_ids(references)
    errors = {"full": 0.1, "lora": 0.25}
    truth: dict[str, list[float]] = {}
    for label, rate in errors.items():
        for seed in seeds:
            hypotheses = [
                " ".join(w if rng.random() > rate else str(rng.choice(WORDS.split())) for w in r.split())
                for r in references
            ]
            expected = BLEU().corpus_score(hypotheses, [references]).score / 100
            score, columns = bleu(hypotheses, references)
            assert score == pytest.approx(expected)
            truth.setdefault(label, []).append(expected)
            correct = [h == r for h, r in zip(hypotheses, references, strict=True)]
            metrics = {"accuracy": float(np.mean(correct)), "bleu": score, "n": n}
            rec = _record(results, label, seed, task="sft", metrics=metrics, data_metric="bleu")
            block = {"id": ids, "gold": references, "prediction": hypotheses, "correct": correct, **columns}
            rec["predictions"] = write_predictions(results, rec["run_id"], {"test": block})
            write_record(results, rec)
    return truth


def test_an_sft_report_with_bleu_resamples_sacrebleus_corpus_bleu(tmp_path):
    results = tmp_path / "e2e"
    truth = bleu_records(results)
    out = tmp_path / "out"
    write_report([results], out)
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    assert summary.loc["lora", "primary_metric"] == "bleu" and summary.loc["lora", "vs_ref_metric"] == "bleu"
    assert summary.loc["lora", "vs_ref_diff"] == pytest.approx(np.mean(truth["lora"]) - np.mean(truth["full"]), abs=CSV)
    assert summary.loc["lora", "vs_ref_a_high"] < 0 and summary.loc["full", "test_bleu_mark"] == "best"
    for label, values in truth.items():
        assert summary.loc[label, "test_bleu_a_low"] < np.mean(values) < summary.loc[label, "test_bleu_a_high"]
    header, _ = _md_rows((out / "summary.md").read_text())
    assert (
        header[header.index("question") + 1] == "test BLEU (95% CI)" and "Δ BLEU vs full, recipe (b) [95% CI]" in header
    )


def test_read_predictions_returns_every_declared_column_list_valued_ones_included(tmp_path):
    results = tmp_path / "e2e"
    bleu_records(results, n=20, seeds=(0,))
    from peftlab.records.results import load_records

    record = load_records([results])[0]
    split = read_predictions(results / "runs", record)["test"]
    assert {"gold", "prediction", "correct", "matches", "totals", "hyp_len", "ref_len"} <= set(split.columns)
    assert all(len(m) == 4 for m in split.columns["matches"]) and len(split.columns["totals"]) == 20
    runs = crossed.runs_from_seeds(
        "x", [(0, split.ids, {k: split.columns[k] for k in ("matches", "totals", "hyp_len", "ref_len")})]
    )
    assert crossed.corpus_bleu().value(runs.seed_columns(0)) == pytest.approx(record["metrics"]["test"]["bleu"])


def test_a_min_direction_metric_is_bold_for_the_lowest_value(tmp_path, monkeypatch):
    """A task whose primary metric is an error rate (lower is better), resampled by the engine."""
    import dataclasses

    from peftlab import task_specs

    base = task_specs.get_task_spec("classification")
    toy = dataclasses.replace(
        base,
        name="toy_error",
        metrics=(task_specs.MetricSpec("error", "min", "share wrong", short="err", statistic="mean:wrong"),),
        primary="error",
        per_example=("wrong",),
        metric_choices=(),
    )
    monkeypatch.setitem(task_specs.REGISTRY, "toy_error", toy)
    results = tmp_path / "toy"
    n, rng = 400, np.random.default_rng(3)
    hard = rng.random(n)
    ids = example_ids(range(n))
    for label, rate in {"full": 0.10, "lora": 0.30, "prompt_tuning": 0.5}.items():
        for seed in (0, 1, 2):
            wrong = (hard + rng.normal(0, 0.05, n)) < rate
            rec = _record(results, label, seed, task="toy_error", metrics={"error": float(wrong.mean()), "n": n})
            rec["predictions"] = write_predictions(
                results, rec["run_id"], {"test": {"id": ids, "wrong": wrong.tolist()}}
            )
            write_record(results, rec)
    write_report([results], tmp_path / "out", reference="lora")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("method")
    assert summary.loc["full", "test_error_mark"] == "best" and summary.loc["full", "vs_ref_b_high"] < 0
    header, rows = _md_rows((tmp_path / "out" / "summary.md").read_text())
    assert rows["full"][header.index("test error (95% CI)")].startswith("**")
    assert not rows["prompt_tuning"][header.index("test error (95% CI)")].startswith("**")
