"""Figures' bands and the cross-experiment rank pairing answer crossed.py's questions, labelled (issue 23)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import records_with_predictions

from peftlab.stats import crossed


def test_bands_from_per_seed_accuracies_are_never_narrower_than_the_crossed_engine():
    rng = np.random.default_rng(4)
    n, S = 500, 3
    hard = rng.random(n)
    correct = np.stack([(hard + rng.normal(0, 0.1, n)) < 0.8 + 0.02 * s for s in range(S)]).astype(float)
    engine = crossed.estimate(crossed.Runs("m", tuple(range(S)), np.arange(n), {"correct": correct}))
    bound = crossed.from_seed_values(correct.mean(axis=1).tolist(), n)
    assert bound.estimate == engine.estimate and bound.headline.question == crossed.RECIPE
    assert bound.a.se >= engine.a.se and bound.b.se >= engine.b.se
    one = crossed.from_seed_values([0.8], n)
    assert not one.b.estimable and one.headline.question == crossed.MODELS
    assert one.a.se == pytest.approx(np.sqrt(0.8 * 0.2 / n))  # one seed: the binomial, nothing invented for (b)


def test_mean_band_labels_its_question():
    from peftlab.reporting.figures import _mean_band, band_label

    frame = pd.DataFrame({"step": [1, 1, 2], "acc": [0.8, 0.82, 0.85], "n": [200, 200, 200]})
    band = _mean_band(frame, "step", "acc", n="n")
    assert band["question"].tolist() == ["b", "a"]  # two seeds at step 1, one at step 2
    assert band.loc[1, "low"] < 0.85 < band.loc[1, "high"]
    assert "recipe (b)" in band_label([band]) and "these models (a)" in band_label([band])
    seeds_only = _mean_band(frame.drop(columns="n"), "step", "acc")
    assert band_label([seeds_only]) == "95% band: t over seeds"


def test_paired_lines_uses_the_crossed_engine_and_names_the_question(tmp_path, capsys):
    accs = {f"{line}[r={r}]": acc + 0.01 * (r == 8) for line, acc in (("la", 0.86), ("lb", 0.80)) for r in (4, 8)}
    results = records_with_predictions(tmp_path / "rank", accs, seeds=(0, 1), n=400)
    spec = importlib.util.spec_from_file_location("paired_lines", Path(__file__).parents[1] / "scripts/paired_lines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "pairs.md"
    assert module.main([str(results), "la", "lb", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 4 ") or line.startswith("| 8 ")]
    assert len(rows) == 2 and all("| recipe (b) |" in row for row in rows)
    assert "peftlab/stats/crossed.py" in text and "stats.py" not in text
    assert module.main([str(results), "la", "nope"]) == 2


def test_the_forest_plot_names_the_primary_metric_it_compares(tmp_path, monkeypatch):
    """A regression experiment's Δ is in Pearson r, and the axis says so (not "accuracy")."""
    from peftlab.reporting import figures, style

    labels: list[str] = []

    def keep(fig, out_dir, stem):
        labels.append(fig.axes[0].get_xlabel())
        return []

    monkeypatch.setattr(style, "save", keep)
    summary = pd.DataFrame(
        {
            "experiment": ["e"], "method": ["lora"], "reference": ["full"], "primary_metric": ["pearson"],
            "vs_ref_diff": [-0.05], "vs_ref_low": [-0.1], "vs_ref_high": [0.0], "vs_ref_p_holm": [0.2],
            "vs_ref_question": ["b"], "vs_ref_test": ["(b) this training recipe: crossed"], "vs_ref_mdd": [0.1],
            "runs_ok": [2],
        }
    )  # fmt: skip
    figures.paired_differences(pd.DataFrame(), summary, {}, tmp_path)
    assert labels and labels[0].startswith("Δ test Pearson r vs full")
