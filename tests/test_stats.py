"""peftlab/stats/nested.py and the predictions files: intervals, paired tests, Holm, marks, power, fallbacks."""

from __future__ import annotations

import math

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


def test_holm_matches_a_hand_computed_example():
    # sorted: .005×4=.02, .01×3=.03, .03×2=.06, .04×1=.04→.06 (monotone); back in input order
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN is not counted: m = 2; .2×2 = .4, .3×1 = .3 → .4 (monotone)
    assert stats.holm([0.3, math.nan, 0.2]) == pytest.approx([0.4, math.nan, 0.4], nan_ok=True)


def _fixed_test(p_by_pair: dict[tuple[str, str], float]):
    def test(a: str, b: str) -> stats.Comparison:
        return stats.Comparison(a, b, 0.01, 0.0, 0.02, p_by_pair[(a, b)], "test")

    return test


def test_best_only_when_the_leader_beats_the_runner_up_else_tied_leaders():
    points = {"a": 0.90, "b": 0.89, "c": 0.70}
    sig = stats.best_marks(points, _fixed_test({("a", "b"): 0.01, ("a", "c"): 0.001}))
    assert sig.best == ("a",) and sig.mark("b") is None
    tied = stats.best_marks(points, _fixed_test({("a", "b"): 0.2, ("a", "c"): 0.001}))
    assert tied.best == () and tied.tied == ("a", "b") and tied.mark("c") is None
    assert stats.best_marks({"a": 0.5}, _fixed_test({})).best == ("a",)


def test_minimum_detectable_difference_shrinks_with_examples_and_seeds():
    base = stats.minimum_detectable_difference(1000, 1, 0.2)
    assert base == pytest.approx(2.8016 * math.sqrt(0.2 / 1000), rel=1e-3)
    assert stats.minimum_detectable_difference(4000, 1, 0.2) == pytest.approx(base / 2, rel=1e-6)
    assert stats.minimum_detectable_difference(1000, 4, 0.2) == pytest.approx(base / 2, rel=1e-6)
    assert stats.minimum_detectable_difference(1000, 3, 0.2, seed_sd=0.02) > stats.minimum_detectable_difference(
        1000, 3, 0.2
    )


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


def test_macro_f1_interval_stays_in_range_at_one_seed_and_matches_sklearn():
    """Macro-F1 gets a bootstrap interval from its confusion counts (it used to be ±1.38 at two seeds)."""
    import numpy as np
    from sklearn.metrics import f1_score

    from peftlab.stats import nested as stats
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, size=300)
    pred = np.where(rng.random(300) < 0.7, gold, rng.integers(0, 3, size=300))
    pred[:5] = -1  # an unparsed answer counts as no class
    one = stats.macro_f1_interval([(gold, pred)], 3, key="one")
    expected = f1_score(gold, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    assert one.mean == pytest.approx(expected)
    assert 0.0 <= one.low < one.mean < one.high <= 1.0 and one.seeds == 1
    # a degenerate run (one class predicted everywhere) still gets an interval inside [0, 1]
    flat = stats.macro_f1_interval([(gold, np.zeros_like(gold)), (gold, pred)], 3, key="two")
    assert 0.0 <= flat.low <= flat.high <= 1.0
