"""peftlab/stats/nested.py (the labelled fallback for records without predictions) and the predictions files."""

from __future__ import annotations

import numpy as np
import pytest

from peftlab.records.predictions import PredictionsError, example_ids, read_predictions, write_predictions
from peftlab.stats import nested as stats

IDS = np.asarray(example_ids((f"text {i}", i % 2) for i in range(1000)), dtype=object)


def outcomes(correct_by_seed: list[np.ndarray]) -> list[stats.SeedOutcomes]:
    return [
        stats.SeedOutcomes(seed, IDS[: len(c)], np.asarray(c, dtype=float)) for seed, c in enumerate(correct_by_seed)
    ]


def test_one_seed_gets_an_interval_from_test_sampling_and_it_stays_in_range():
    for acc, n in ((0.85, 1000), (0.999, 1000), (1.0, 40), (0.0, 40), (0.5, 8)):
        interval = stats.method_interval([acc], [n], key="x")
        assert interval.kind == stats.BOOTSTRAP and interval.seeds == 1
        assert 0.0 <= interval.low <= interval.mean <= interval.high <= 1.0
    wide = stats.method_interval([0.85], [1000])
    assert 0.01 < wide.high - wide.low < 0.06  # ≈ ±1.96·sqrt(.85·.15/1000) = ±0.022


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    true, n, seeds, hits, trials = 0.8, 400, 5, 0, 300
    for trial in range(trials):
        seed_means = np.clip(true + rng.normal(0, 0.01, seeds), 0, 1)
        acc = rng.binomial(n, seed_means) / n
        interval = stats.method_interval(acc.tolist(), [n] * seeds, key=str(trial), draws=1000)
        hits += interval.low <= true <= interval.high
    assert 0.85 <= hits / trials <= 0.995


def test_interval_is_deterministic_and_falls_back_to_a_labelled_clipped_t_interval_without_n():
    assert stats.method_interval([0.8, 0.82], [500, 500], key="a") == stats.method_interval(
        [0.8, 0.82], [500, 500], key="a"
    )
    fallback = stats.method_interval([0.95, 0.99], [None, None])
    assert fallback.kind == stats.T_FALLBACK and fallback.high <= 1.0


def test_paired_test_detects_a_real_difference_and_not_identical_predictions():
    rng = np.random.default_rng(0)
    reference = [(rng.random(1000) < 0.85).astype(float) for _ in range(3)]
    worse = []
    for c in reference:  # the same predictions except 6% of the right answers turned wrong
        flipped = c.copy()
        flipped[(c == 1) & (rng.random(1000) < 0.07)] = 0
        worse.append(flipped)
    result = stats.paired_comparison("worse", outcomes(worse), "ref", outcomes(reference))
    assert result.kind == stats.PAIRED and result.diff < -0.04
    assert result.high < 0 and result.p < 0.01 and result.same_sign == 3 and len(result.seed_diffs) == 3
    same = stats.paired_comparison("copy", outcomes(reference), "ref", outcomes(reference))
    assert same.diff == 0 and same.p == 1.0 and same.low == same.high == 0


def test_paired_pairs_on_shared_ids_and_seeds_only():
    rng = np.random.default_rng(2)
    a = stats.SeedOutcomes(0, IDS[:600], (rng.random(600) < 0.9).astype(float))
    b = stats.SeedOutcomes(0, IDS[::-1][:700], (rng.random(700) < 0.9).astype(float))  # other order, overlap 300
    result = stats.paired_comparison("a", [a], "b", [b])
    assert result.n == 300
    assert stats.paired_comparison("a", [a], "b", [stats.SeedOutcomes(5, b.ids, b.correct)]) is None


def test_bootstrap_of_ten_runs_of_a_thousand_examples_is_fast_enough_to_report_often():
    import time

    rng = np.random.default_rng(3)
    a = outcomes([(rng.random(1000) < 0.85).astype(float) for _ in range(10)])
    b = outcomes([(rng.random(1000) < 0.80).astype(float) for _ in range(10)])
    started = time.perf_counter()
    stats.paired_comparison("a", a, "b", b)
    stats.method_interval([0.85] * 10, [1000] * 10)
    assert time.perf_counter() - started < 2.0  # budget from the issue; measured ~15 ms


# ---------------------------------------------------------------- predictions files


def test_predictions_round_trip_with_fingerprint_and_stable_ids(tmp_path):
    ids = example_ids([("a text", 1), ("b text", 0), ("a text", 1)])
    assert ids[0] != ids[1] and ids[2] == ids[0] + "#2"  # duplicates stay distinct, in order
    assert example_ids([("b text", 0)]) == [ids[1]]  # an id does not depend on the row's position
    block = {"id": ids, "gold": [1, 0, 1], "prediction": [1, 1, 1], "correct": [True, False, True]}
    entry = write_predictions(tmp_path, "run1", {"test": block, "validation": None})
    assert entry["splits"] == {"test": 3} and len(entry["sha256"]) == 64
    assert write_predictions(tmp_path, "run2", {"test": block})["sha256"] == entry["sha256"]  # byte-stable
    read = read_predictions(tmp_path / "runs", {"predictions": entry})
    assert list(read["test"].ids) == ids and read["test"].correct.tolist() == [1.0, 0.0, 1.0]
    assert read_predictions(tmp_path / "runs", {"status": "ok"}) == {}  # an old record: no predictions
    (tmp_path / "runs" / entry["file"]).write_bytes(b"changed")
    with pytest.raises(PredictionsError, match="sha256"):
        read_predictions(tmp_path / "runs", {"predictions": entry})


def test_the_nested_fallback_keeps_only_what_records_without_predictions_need():
    """Holm, marks, power and macro-F1 live in the crossed engine only; the fallback is labelled."""
    for gone in ("holm", "with_holm", "best_marks", "minimum_detectable_difference", "macro_f1_interval"):
        assert not hasattr(stats, gone), gone
    assert stats.LABEL == "nested (no predictions)"


def test_a_predictions_file_that_repeats_an_id_is_refused_naming_file_and_id(tmp_path):
    from peftlab.errors import UserError

    ids = example_ids([("a text", 1), ("b text", 0)])
    block = {
        "id": [ids[0], ids[1], ids[0]],
        "gold": [1, 0, 1],
        "prediction": [1, 1, 0],
        "correct": [True, False, False],
    }
    entry = write_predictions(tmp_path, "run1", {"test": block})
    with pytest.raises(UserError, match=rf"run1\.predictions\.jsonl\.gz: example id '{ids[0]}' appears more than once"):
        read_predictions(tmp_path / "runs", {"predictions": entry})
