"""peftlab/stats/crossed.py: the crossed seeds × examples engine, its two questions, marks, power and calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from peftlab.stats import calibration, crossed


def runs(label: str, correct: np.ndarray, **extra: np.ndarray) -> crossed.Runs:
    correct = np.atleast_2d(correct)
    columns = {"correct": correct, **{k: np.atleast_2d(v) for k, v in extra.items()}}
    return crossed.Runs(label, tuple(range(len(correct))), np.arange(correct.shape[1]), columns)


def pair(seeds: int, n: int, shift: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two methods sharing example difficulty (as real methods' errors do)."""
    hard = rng.random(n)
    a = (hard[None, :] + rng.normal(0, 0.1, (seeds, n)) < 0.8 + shift).astype(float)
    b = (hard[None, :] + rng.normal(0, 0.1, (seeds, n)) < 0.8).astype(float)
    return a, b


# ---------------------------------------------------------------- question (a) against the classical tests


@pytest.mark.parametrize("shift", [0.0, 0.01, 0.02, 0.03, 0.05])
def test_question_a_agrees_with_exact_mcnemar_at_one_seed_and_with_cmh_over_seeds(shift):
    """(a) is McNemar's question; with seeds, CMH with the examples as strata asks it too."""
    from scipy.stats import binomtest
    from statsmodels.stats.contingency_tables import StratifiedTable

    rng = np.random.default_rng(int(shift * 1000) + 5)
    for seeds in (1, 3):
        a, b = pair(seeds, 600, shift, rng)
        result = crossed.difference(runs("A", a), runs("B", b))
        assert result.estimate == pytest.approx(a.mean() - b.mean())
        discordant_a, discordant_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
        if seeds == 1:
            reference = (
                binomtest(discordant_a, discordant_a + discordant_b, 0.5).pvalue if discordant_a + discordant_b else 1.0
            )
        else:
            tables = np.stack(
                [[[a[:, j].sum(), seeds - a[:, j].sum()], [b[:, j].sum(), seeds - b[:, j].sum()]] for j in range(600)],
                axis=-1,
            )
            reference = StratifiedTable(tables).test_null_odds(correction=False).pvalue
        assert (result.a.p < 0.05) == (reference < 0.05), (seeds, result.a.p, reference)
        assert abs(result.a.p - reference) <= 0.02 + 0.25 * reference, (seeds, result.a.p, reference)


def test_question_a_resamples_the_same_examples_for_every_seed_so_shared_difficulty_counts_once():
    """Two identical seeds carry no more information than one: (a)'s width must not shrink with copies."""
    rng = np.random.default_rng(0)
    one = (rng.random(1000) < 0.8).astype(float)
    single = crossed.estimate(runs("m", one))
    copies = crossed.estimate(runs("m", np.stack([one, one, one])))
    assert copies.a.se == pytest.approx(single.a.se)
    assert single.a.se == pytest.approx(math.sqrt(one.var() / 1000))
    # the recipe question at three identical seeds: no seed spread, only the examples
    assert copies.b.estimable and copies.b.se == pytest.approx(single.a.se, rel=1e-6)


def test_one_seed_leaves_the_recipe_question_not_estimable_without_inventing_a_width():
    rng = np.random.default_rng(1)
    a, b = pair(1, 500, 0.02, rng)
    result = crossed.difference(runs("A", a), runs("B", b))
    assert not result.b.estimable and result.b.why == crossed.NOT_ESTIMABLE
    assert math.isnan(result.b.low) and math.isnan(result.b.p)
    assert result.headline is result.a and result.a.low < result.estimate < result.a.high


def test_recipe_interval_widens_with_seed_spread_and_uses_few_degrees_of_freedom_at_two_seeds():
    rng = np.random.default_rng(2)
    a, b = pair(2, 1000, 0.0, rng)
    calm = crossed.difference(runs("A", a), runs("B", b))
    noisy_a = a.copy()
    noisy_a[0, rng.random(1000) < 0.05] = 1.0  # seed 0 of A much better than seed 1
    noisy = crossed.difference(runs("A", noisy_a), runs("B", b))
    assert noisy.b.se > calm.b.se and noisy.b.df < 10
    assert noisy.b.high - noisy.b.low > noisy.a.high - noisy.a.low


# ---------------------------------------------------------------- one engine, any metric


def test_every_metric_matches_its_reference_implementation():
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, size=400)
    pred = np.where(rng.random(400) < 0.7, gold, rng.integers(0, 3, size=400))
    cols = {"gold": gold, "prediction": pred}
    assert crossed.macro_f1(3).value(cols) == pytest.approx(f1_score(gold, pred, average="macro"))
    assert crossed.matthews(3).value(cols) == pytest.approx(matthews_corrcoef(gold, pred))
    x, y = rng.normal(size=300), rng.normal(size=300)
    cols = {"gold": y, "prediction": x + y}
    assert crossed.PEARSON.value(cols) == pytest.approx(pearsonr(x + y, y).statistic)
    assert crossed.SPEARMAN.value(cols) == pytest.approx(spearmanr(x + y, y).statistic)
    matches = np.array([[5, 3, 2, 1], [4, 2, 1, 0]])
    totals = np.array([[6, 5, 4, 3], [5, 4, 3, 2]])
    bleu = crossed.corpus_bleu().value({"matches": matches, "totals": totals, "hyp_len": [6, 5], "ref_len": [7, 5]})
    m, t = matches.sum(0), totals.sum(0)
    assert bleu == pytest.approx(math.exp(1 - 12 / 11) * math.exp(np.log(m / t).mean()))


def test_each_declared_statistic_maps_to_one_engine_metric_matching_sklearn_and_scipy():
    """`crossed.metric_for` is the one map from a task's `MetricSpec.statistic` to the engine (issue 24)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    from peftlab.task_specs import get_task_spec, task_names

    rng = np.random.default_rng(5)
    gold = rng.integers(0, 2, size=300)
    pred = np.where(rng.random(300) < 0.8, gold, 1 - gold)
    classes = {"gold": gold, "prediction": pred, "correct": (gold == pred).astype(float)}
    assert crossed.metric_for("f1_binary").value(classes) == pytest.approx(f1_score(gold, pred))
    assert crossed.metric_for("f1_binary").value({"gold": [0, 0], "prediction": [0, 0]}) == 0.0  # sklearn's 0
    assert crossed.metric_for("macro_f1", num_labels=2).value(classes) == pytest.approx(
        f1_score(gold, pred, average="macro")
    )
    assert crossed.metric_for("matthews").value(classes) == pytest.approx(matthews_corrcoef(gold, pred))
    accuracy = crossed.metric_for("mean:correct", "accuracy")
    assert accuracy.linear and accuracy.name == "accuracy" and accuracy.bounds == (0.0, 1.0)
    assert accuracy.value(classes) == pytest.approx((gold == pred).mean())
    x, y = rng.normal(size=200), rng.normal(size=200)
    numbers = {"gold": y, "prediction": x + y}
    assert crossed.metric_for("pearson").value(numbers) == pytest.approx(pearsonr(x + y, y).statistic)
    assert crossed.metric_for("spearman").value(numbers) == pytest.approx(spearmanr(x + y, y).statistic)
    assert crossed.metric_for("mean:error").bounds == (-math.inf, math.inf)  # an unknown column is not clipped
    with pytest.raises(ValueError, match="allowed: mean:<column>, macro_f1"):
        crossed.metric_for("median:correct")
    for task in task_names():  # every shipped declaration resamples through the engine
        spec = get_task_spec(task)
        for metric in spec.metrics:
            if metric.statistic:
                assert set(crossed.metric_for(metric.statistic, metric.name).fields) <= {
                    *spec.per_example,
                    *(c for choice in spec.metric_choices for c in choice.per_example),
                }, (task, metric.name)


def test_nonlinear_metrics_get_both_questions_from_the_shared_bootstrap():
    rng = np.random.default_rng(4)
    seeds, n = 3, 300
    gold = rng.integers(0, 2, size=n)
    preds = {
        name: np.stack([np.where(rng.random(n) < acc, gold, 1 - gold) for _ in range(seeds)])
        for name, acc in (("A", 0.85), ("B", 0.75))
    }
    made = {
        k: crossed.Runs(k, (0, 1, 2), np.arange(n), {"gold": np.stack([gold] * seeds), "prediction": v})
        for k, v in preds.items()
    }
    for metric in (crossed.macro_f1(2), crossed.matthews(2), crossed.SPEARMAN):
        result = crossed.difference(made["A"], made["B"], metric, draws=300 if metric is crossed.SPEARMAN else 2000)
        assert result.a.estimable and result.b.estimable
        assert result.a.low < result.estimate < result.a.high and result.b.p < 0.05, metric.name
        one = crossed.estimate(made["B"], metric, draws=300)
        assert metric.bounds[0] <= one.b.low <= one.estimate <= one.b.high <= metric.bounds[1]
    # the bootstrap of the generic path agrees with the closed form of a mean metric
    correct = (preds["A"] == gold).astype(float)
    generic = crossed.Metric("acc", ("correct",), function=lambda c: float(np.mean(c["correct"])), bounds=(0, 1))
    slow = crossed.estimate(runs("A", correct), generic, draws=1500)
    fast = crossed.estimate(runs("A", correct))
    assert slow.a.se == pytest.approx(fast.a.se, rel=0.1) and slow.b.se == pytest.approx(fast.b.se, rel=0.1)


def test_runs_are_aligned_on_example_ids_whatever_their_order():
    rng = np.random.default_rng(5)
    ids = np.asarray([f"ex{i}" for i in range(200)], dtype=object)
    correct = (rng.random(200) < 0.8).astype(float)
    built = crossed.runs_from_seeds("m", [(0, ids, {"correct": correct}), (1, ids[::-1], {"correct": correct[::-1]})])
    assert built.n == 200 and np.array_equal(built.columns["correct"][0], built.columns["correct"][1])
    half = crossed.runs_from_seeds("r", [(0, ids[:120], {"correct": correct[:120]})])
    a, b = crossed.aligned(built, half)
    assert a.n == b.n == 120 and np.array_equal(a.ids, b.ids)


# ---------------------------------------------------------------- families, best, zero variance, power


def test_holm_matches_a_hand_computed_example():
    assert crossed.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert crossed.holm([0.3, math.nan, 0.2]) == pytest.approx([0.4, math.nan, 0.4], nan_ok=True)


def test_best_needs_every_test_to_reject_else_the_tie_set_is_shown():
    points = {"a": 0.90, "b": 0.89, "c": 0.85}
    p = {("a", "b"): 0.01, ("a", "c"): 0.20}  # ahead of the runner-up, NOT of the noisy third

    def test(x: str, y: str):
        return p[(x, y)], "recipe (b)"

    marks = crossed.best_marks(points, test)
    assert marks.best == () and marks.tied == ("a", "c") and marks.mark("b") is None
    p[("a", "c")] = 0.001
    assert crossed.best_marks(points, test).best == ("a",)
    assert crossed.best_marks(points, lambda x, y: None).mark("a") is None  # nothing testable: nothing claimed


def test_zero_variance_over_seeds_is_no_evidence_and_no_p_prints_as_zero():
    assert math.isnan(crossed.seed_test([0.8, 0.8, 0.8], [0.7, 0.7, 0.7]))  # the old test said p = 0
    assert math.isnan(crossed.seed_test([0.8], [0.7, 0.71]))
    assert crossed.seed_test([0.80, 0.81, 0.82], [0.70, 0.71, 0.69]) < 0.01
    assert crossed.p_text(0.0) == "< 0.001" and crossed.p_text(1e-5, 2000) == "< 1/2000"
    assert crossed.p_text(0.0312) == "0.031"


def test_each_comparison_gets_its_own_mdd_and_what_would_resolve_it():
    rng = np.random.default_rng(6)
    a, b = pair(3, 1000, 0.01, rng)
    close = crossed.difference(runs("A", a), runs("B", b))
    a2, b2 = pair(3, 1000, 0.0, rng)
    a2[:, rng.random(1000) < 0.3] = 0  # a very different method: many discordant examples
    far = crossed.difference(runs("A", a2), runs("B", b2))
    assert close.b.mdd() < far.b.mdd() and close.a.mdd() <= close.b.mdd()
    z = 1.959964 + 0.841621
    assert close.a.mdd() == pytest.approx(z * close.a.se, rel=1e-4)
    seeds = close.seeds_to_resolve()
    if math.isfinite(seeds):  # at that many seeds the projected (b) variance is small enough
        assert z * math.sqrt(close.components.variance(seeds=int(seeds))) <= abs(close.estimate)
    examples = close.examples_to_resolve(crossed.MODELS)
    assert examples > 0 and (examples > 1000) == (close.a.p > 0.05 or close.a.mdd() > abs(close.estimate))


# ---------------------------------------------------------------- calibration (seeded subset; full grid: benchmarks/)

SUBSET = [
    calibration.Cell(2, 1000, 0.02, True),  # the main job's design, with seed noise: where the old engine failed
    calibration.Cell(3, 200, 0.01, False),
    calibration.Cell(1, 1000, 0.0, True),  # (b) not estimable
]


def test_calibration_subset_meets_the_targets_for_both_questions():
    """Seeded: coverage within 2 Monte Carlo SE of [0.93, 0.97], type-I within 2 SE of 0.06."""
    replicates = 300
    se = math.sqrt(0.95 * 0.05 / replicates)
    for cell in SUBSET:
        row = calibration.run_cell(cell, replicates, seed=11)
        for q in ("a", "b"):
            if cell.seeds == 1 and q == "b":
                assert math.isnan(row.cover_diff["b"]) and math.isnan(row.type_i["b"])
                continue
            for value in (row.cover_diff[q], row.cover_acc[q]):
                assert 0.93 - 2 * se <= value <= 0.97 + 2 * se, (cell, q, value)
            assert row.type_i[q] <= 0.06 + 2 * se, (cell, q, row.type_i[q])


def test_the_old_nested_engine_fails_the_same_check_where_seeds_matter():
    """The suite can fail: the old engine's recipe-question type-I error is far above 0.06 at seed sd 0.02."""
    row = calibration.run_cell(calibration.Cell(2, 1000, 0.02, False), 150, engine="old", seed=11, old_draws=500)
    assert row.type_i["b"] > 0.12


@pytest.mark.slow
def test_calibration_larger_grid():
    """More of the grid (minutes): benchmarks/calibration.py runs it all and writes the table."""
    rows = [calibration.run_cell(c, 400, seed=12) for c in calibration.grid(seeds=(2, 5), n=(200, 1000))]
    se = math.sqrt(0.95 * 0.05 / 400)
    for row in rows:
        for q in ("a", "b"):
            assert 0.93 - 3 * se <= row.cover_diff[q] <= 0.97 + 3 * se, (row.cell, q)
            assert row.type_i[q] <= 0.06 + 3 * se, (row.cell, q)


def test_seeds_to_resolve_uses_the_t_the_interval_would_use_not_the_normal():
    """At 2-4 seeds the (b) interval's t has ~1-6 df: a normal projection promised too few seeds."""
    rng = np.random.default_rng(11)
    a, b = pair(3, 1000, 0.02, rng)
    result = crossed.difference(runs("A", a), runs("B", b))
    c = result.components
    seeds = result.seeds_to_resolve()
    z = 1.959964 + 0.841621
    normal = next((s for s in range(2, 1001) if z * math.sqrt(c.variance(seeds=s)) <= abs(result.estimate)), math.inf)
    assert seeds >= normal

    def resolves(s: int) -> bool:
        terms = [(max(v + i, 0.0) / s, s - 1) for v, i in zip(c.seed_var, c.interaction, strict=True)]
        df = crossed._satterthwaite(terms, c.example, c.n)
        q = crossed._quantile(0.975, df) + crossed._quantile(0.8, df)
        floor = z * math.sqrt(c.examples_part(seeds=s)) <= abs(result.estimate)  # (b) contains (a)
        return q * math.sqrt(c.variance(seeds=s)) <= abs(result.estimate) and floor

    if math.isfinite(seeds):
        assert resolves(int(seeds)) and (seeds == 2 or not resolves(int(seeds) - 1))


def test_a_cost_interval_stops_at_the_bound_the_quantity_cannot_cross():
    """Two seeds of a throughput: t on 1 df reaches below zero, which no tokens/s can be."""
    low, high = crossed.seed_interval([400.0, 1300.0])
    assert low < 0 < high
    clipped = crossed.seed_interval([400.0, 1300.0], bounds=(0.0, math.inf))
    assert clipped == (0.0, high)
    assert crossed.seed_interval([400.0, 410.0], bounds=(0.0, math.inf)) == crossed.seed_interval([400.0, 410.0])


# ---------------------------------------------------------------- side numbers that agree with the interval (issue 29)


def test_a_recipe_interval_always_contains_the_checkpoints_interval():
    """(b)'s variance is the checkpoints' variance plus the seeds': never narrower than (a) (law of total variance).

    Two seeds that agree more than their seed × example interaction predicts (here: the same accuracy
    on different examples) gave an (b) interval inside (a)'s before the floor.
    """
    rng = np.random.default_rng(29)
    n = 400
    hard = rng.random(n)
    agree = np.stack([(hard < 0.8).astype(float), (hard < 0.8).astype(float)])
    swap = rng.choice(np.flatnonzero(agree[1] == 1), 30, replace=False)
    back = rng.choice(np.flatnonzero(agree[1] == 0), 30, replace=False)
    agree[1, swap], agree[1, back] = 0.0, 1.0  # same accuracy, 60 examples changed: s² = 0, interaction > 0
    reference = (hard + rng.normal(0, 0.05, (2, n)) < 0.78).astype(float)
    cases = [crossed.estimate(runs("A", agree)), crossed.difference(runs("A", agree), runs("B", reference))]
    for _ in range(300):
        S, size = int(rng.integers(2, 5)), int(rng.integers(50, 400))
        a, b = pair(S, size, float(rng.uniform(-0.03, 0.03)), rng)
        cases += [crossed.difference(runs("A", a), runs("B", b)), crossed.estimate(runs("A", a))]
    widened = 0
    for result in cases:
        assert result.b.low <= result.a.low + 1e-12 and result.b.high >= result.a.high - 1e-12, result.name
        if math.isfinite(result.b.p):
            assert result.b.p >= result.a.p - 1e-12
        assert result.b.mdd() >= result.a.mdd() - 1e-12
        own = crossed._quantile(0.975, result.b.df) * result.b.se  # (b)'s t half-width before containing (a)
        widened += own < crossed._quantile(0.975, math.inf) * result.a.se
    assert widened > 0  # the rule was needed (185 of these 600 draws put (b) inside or across (a) before), and held


def test_the_projections_read_the_printed_intervals_own_variance_and_df():
    rng = np.random.default_rng(30)
    for _ in range(50):
        a, b = pair(int(rng.integers(2, 5)), 500, float(rng.uniform(-0.02, 0.04)), rng)
        result = crossed.difference(runs("A", a), runs("B", b))
        c = result.components
        assert c.variance() == pytest.approx(result.b.se**2, rel=1e-9) and c.df() == pytest.approx(result.b.df)
        assert c.examples_part() == pytest.approx(result.a.se**2, rel=1e-9)
        assert c.variance(seeds=result.seeds[0], n=result.n) == c.variance()
        # not significant ⇔ today's seeds and examples cannot be what resolves it
        seeds = result.seeds_to_resolve()
        if not result.b.p < crossed.ALPHA:
            assert seeds > result.seeds[0]
            assert result.examples_to_resolve(crossed.RECIPE) > result.n
            assert result.examples_to_resolve(crossed.MODELS) > result.n or result.a.p < crossed.ALPHA


def test_examples_to_resolve_uses_the_t_of_the_recipe_interval_like_seeds_to_resolve():
    rng = np.random.default_rng(34)
    a, b = pair(3, 1000, 0.015, rng)
    result = crossed.difference(runs("A", a), runs("B", b))
    c = result.components
    examples = result.examples_to_resolve(crossed.RECIPE)
    assert result.b.p > crossed.ALPHA and 1000 < examples < math.inf

    def detects(k: int, df: float) -> bool:
        q = crossed._quantile(0.975, df) + crossed._quantile(0.8, df)
        z = crossed._quantile(0.975, math.inf) + crossed._quantile(0.8, math.inf)
        floor = z * math.sqrt(c.examples_part(n=k)) <= abs(result.estimate)  # (b) never narrower than (a)
        return q * math.sqrt(c.variance(n=k)) <= abs(result.estimate) and floor

    k = int(examples)
    assert detects(k, c.df(n=k)) and not detects(k - 1, c.df(n=k - 1))
    normal = next(m for m in range(1, 10**7) if detects(m, math.inf))  # the old z rule: fewer examples
    assert normal < k


def test_holm_threshold_is_the_alpha_a_row_faces_in_its_family():
    rng = np.random.default_rng(32)
    assert crossed.holm_threshold([]) == crossed.ALPHA
    assert crossed.holm_threshold([0.03]) == pytest.approx(0.025)  # blocked at rank 2: must come first
    assert crossed.holm_threshold([0.01]) == pytest.approx(0.05)
    for _ in range(2000):
        others = list(rng.uniform(0, 0.1, int(rng.integers(1, 9))) ** rng.uniform(0.5, 2))
        p = float(rng.uniform(0, 0.08))
        rejected = crossed.holm([*others, p])[-1] < crossed.ALPHA
        assert rejected == (p < crossed.holm_threshold(others))


def test_a_row_holm_leaves_unresolved_is_never_resolved_by_the_seeds_it_already_has():
    """The main job: 3 seeds, raw p small, Holm p ≈ 0.055. 'to resolve' said '3 seeds'; it must ask for more."""
    rng = np.random.default_rng(36)
    a, b = pair(3, 1000, 0.03, rng)
    result = crossed.difference(runs("A", a), runs("B", b))
    assert result.b.p < 0.01 and result.seeds_to_resolve() <= 3  # resolved at the unadjusted α
    others = math.ceil(0.05 / (0.99 * result.b.p)) - 1  # methods vs the same reference, each a little stronger
    family = [result.b.p * 0.99] * others
    p_holm = crossed.holm([*family, result.b.p])[-1]
    assert 0.05 <= p_holm < 0.06  # as the main job's prompt and prefix tuning
    alpha = crossed.holm_threshold(family)
    assert result.b.p >= alpha and result.seeds_to_resolve(alpha) > 3
    assert result.examples_to_resolve(crossed.RECIPE, alpha) > result.n


def test_a_wide_seed_spread_at_two_seeds_is_known_low_coverage_from_the_grid():
    cells = [
        {"seeds": 2, "n": 1000, "seed_sd": sd, "interaction": inter, "replicates": 500,
         "b_cover_acc": cover, "b_cover_diff": 0.97}
        for sd, cover in ((0.0, 0.95), (0.02, 0.951), (0.05, 0.92)) for inter in (False, True)
    ]  # fmt: skip
    low = calibration.known_low_coverage(2, 872, 0.06, cells=cells)
    assert low is not None and low.coverage == pytest.approx(0.92) and low.seed_sd == 0.05 and low.replicates == 1000
    assert calibration.known_low_coverage(2, 872, 0.03, cells=cells) is None  # spread below the known-low cell
    assert calibration.known_low_coverage(3, 872, 0.06, cells=cells) is None  # no claim without a measurement
    assert calibration.known_low_coverage(2, 872, 0.06, "diff", cells=cells) is None


def test_the_shipped_grid_is_the_benchmarks_output_and_flags_the_wide_two_seed_cell():
    cells = calibration.known_cells()
    assert {c["seed_sd"] for c in cells} >= {0.0, 0.05} and {c["seeds"] for c in cells} >= {2, 3}
    assert all(c["replicates"] >= 300 for c in cells)
    low = calibration.known_low_coverage(2, 1000, 0.05)  # prompt and prefix tuning's design in the main job
    assert low is not None and low.coverage < 0.93 and low.seeds == 2 and low.seed_sd == 0.05
    assert calibration.known_low_coverage(3, 1000, 0.05) is None  # a third seed brings it to target
    assert calibration.known_low_coverage(2, 1000, 0.01) is None  # seeds that agree: no flag
