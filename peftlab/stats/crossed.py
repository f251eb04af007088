"""Crossed seeds × test examples: intervals and tests for any metric, answering two labelled questions.

Every seed of every method is scored on the SAME test examples, so seeds and examples are crossed,
not nested (issue 23): resampling each seed's examples independently, as the old two-level
bootstrap did, treats one test set as S test sets and gives intervals that shrink with seeds they
should not. This engine takes, per method, a seeds × examples table of per-example outputs (aligned
on example ids) and a metric, and answers:

- **(a) these trained models** (`MODELS`): the checkpoints are fixed, the test examples are a sample.
  Variance = the example bootstrap that resamples the *same* example indices for every seed and
  every method (so shared difficulty cancels in a difference). Normal reference; for a metric that
  is a mean of per-example values (accuracy, exact match) the bootstrap variance is computed in
  closed form (its B → ∞ limit), other metrics draw B bootstrap samples.
- **(b) this training recipe** (`RECIPE`): seeds and examples are both random and crossed. Method
  of moments for the two-way crossed random-effects model y_sj = μ + α_s + β_j + ε_sj:
  Var(ȳ) = σ²_α/S + σ²_β/n + σ²_ε/(nS), estimated as s²_seeds/S + Ê with s²_seeds the variance of
  the per-seed metric over seeds (it estimates σ²_α + σ²_ε/n) and Ê = (S·V_a − V_w)/(S − 1) the
  example main effect (V_a: example-bootstrap variance of the seed mean, V_w: mean over seeds of
  each seed's own example-bootstrap variance). For a difference of two methods the seed terms of
  both methods add (their seeds are independent runs; a shared seed number only makes this
  conservative) and Ê comes from the joint example bootstrap. Reference: t with Satterthwaite
  (1946) degrees of freedom, S − 1 for each seed term (taken at its median-unbiased size, see
  `_satterthwaite`) and n − 1 for the example term, so two seeds give honest, wide intervals.
  One seed: **not estimable** (no width is invented).

The calibration suite (peftlab/stats/calibration.py, benchmarks/calibration.py) checks coverage and type-I
error of both questions on simulated crossed outcomes with known truth; docs/statistics.md has the
formulas and the generated tables.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DRAWS = 2000
LEVEL = 0.95
ALPHA = 0.05
POWER = 0.80
SEED = 20181

MODELS = "a"  # these trained models: examples random, checkpoints fixed
RECIPE = "b"  # this training recipe: seeds and examples random, crossed
QUESTION = {
    MODELS: "(a) these trained models: test examples random, checkpoints fixed",
    RECIPE: "(b) this training recipe: seeds and test examples random, crossed",
}
SHORT = {MODELS: "these models (a)", RECIPE: "recipe (b)"}
NOT_ESTIMABLE = "not estimable (one seed)"


def _rng(*keys: str) -> np.random.Generator:
    return np.random.default_rng([SEED, *(zlib.crc32(k.encode()) for k in keys)])


# ---------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    """A metric of one seed's outputs on n examples, written so that any example weighting can be applied.

    `features(columns)` maps the per-example columns of one seed (each an array of length n) to an
    (n, m) matrix of sufficient statistics; `finish(sums)` turns weighted sums of those rows over
    examples (last axis m, any leading axes) into the metric. Accuracy, macro-F1, MCC, Pearson and
    corpus BLEU (from per-sentence n-gram counts) are all such functions of sums. A metric that is
    not (Spearman's ranks) gives `function(columns) -> float` instead and is bootstrapped by indexing.
    `linear`: the metric is the mean of the single feature column, so the bootstrap variance has a
    closed form.
    """

    name: str
    fields: tuple[str, ...]
    features: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None
    finish: Callable[[np.ndarray], np.ndarray] | None = None
    function: Callable[[Mapping[str, np.ndarray]], float] | None = None
    linear: bool = False
    bounds: tuple[float, float] = (-math.inf, math.inf)

    def value(self, columns: Mapping[str, np.ndarray]) -> float:
        if self.function is not None:
            return float(self.function(columns))
        f = self.features(columns)  # type: ignore[misc]
        return float(self.finish(f.sum(axis=0)))  # type: ignore[misc]


def _mean_finish(sums: np.ndarray) -> np.ndarray:
    return sums[..., 0] / sums[..., 1]


def mean_metric(name: str = "accuracy", field: str = "correct", bounds=(0.0, 1.0)) -> Metric:
    """The mean of one per-example column: accuracy from `correct`, exact match, a per-example score."""
    return Metric(
        name,
        (field,),
        features=lambda c: np.stack([np.asarray(c[field], float), np.ones(len(c[field]))], axis=1),
        finish=_mean_finish,
        linear=True,
        bounds=bounds,
    )


ACCURACY = mean_metric()


def _confusion_features(k: int) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """One-hot of (gold, prediction) over k × (k + 1) cells: the extra column is "no class" (unparsed)."""

    def features(c: Mapping[str, np.ndarray]) -> np.ndarray:
        g = np.asarray(c["gold"], dtype=np.int64)
        p = np.asarray(c["prediction"], dtype=np.int64)
        p = np.where((p >= 0) & (p < k), p, k)
        out = np.zeros((len(g), k * (k + 1)))
        out[np.arange(len(g)), g * (k + 1) + p] = 1.0
        return out

    return features


def macro_f1(num_labels: int) -> Metric:
    """Macro-F1 over every one of `num_labels` classes (0 for a class never gold nor predicted)."""
    k = int(num_labels)

    def finish(sums: np.ndarray) -> np.ndarray:
        counts = sums.reshape(*sums.shape[:-1], k, k + 1)
        classes = counts[..., :, :-1]
        tp = np.einsum("...ii->...i", classes)
        denominator = counts.sum(axis=-1) + classes.sum(axis=-2)
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=float), where=denominator > 0)
        return f1.mean(axis=-1)

    return Metric("macro-F1", ("gold", "prediction"), _confusion_features(k), finish, bounds=(0.0, 1.0))


def matthews(num_labels: int) -> Metric:
    """Matthews correlation (the multiclass R_k of Gorodkin 2004, as sklearn computes it)."""
    k = int(num_labels)

    def finish(sums: np.ndarray) -> np.ndarray:
        counts = sums.reshape(*sums.shape[:-1], k, k + 1)[..., :, :-1]
        t = counts.sum(axis=-1)  # gold totals
        p = counts.sum(axis=-2)  # predicted totals
        c = np.einsum("...ii->...", counts)
        s = counts.sum(axis=(-1, -2))
        cov = c * s - (t * p).sum(-1)
        denominator = np.sqrt((s**2 - (p * p).sum(-1)) * (s**2 - (t * t).sum(-1)))
        return np.divide(cov, denominator, out=np.zeros_like(cov, dtype=float), where=denominator > 0)

    return Metric("MCC", ("gold", "prediction"), _confusion_features(k), finish, bounds=(-1.0, 1.0))


def _pearson_features(c: Mapping[str, np.ndarray]) -> np.ndarray:
    x = np.asarray(c["prediction"], float)
    y = np.asarray(c["gold"], float)
    return np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)


def _pearson_finish(s: np.ndarray) -> np.ndarray:
    w = s[..., 0]
    mx, my = s[..., 1] / w, s[..., 2] / w
    vx, vy = s[..., 3] / w - mx**2, s[..., 4] / w - my**2
    cov = s[..., 5] / w - mx * my
    denominator = np.sqrt(np.clip(vx * vy, 0, None))
    return np.divide(cov, denominator, out=np.zeros_like(cov), where=denominator > 0)


PEARSON = Metric("Pearson r", ("gold", "prediction"), _pearson_features, _pearson_finish, bounds=(-1.0, 1.0))


def _spearman(c: Mapping[str, np.ndarray]) -> float:
    from scipy.stats import spearmanr

    value = spearmanr(np.asarray(c["prediction"], float), np.asarray(c["gold"], float)).statistic
    return float(value) if math.isfinite(value) else 0.0


SPEARMAN = Metric("Spearman ρ", ("gold", "prediction"), function=_spearman, bounds=(-1.0, 1.0))


def corpus_bleu(max_order: int = 4) -> Metric:
    """Corpus BLEU (Papineni et al. 2002, uniform weights, brevity penalty) from per-sentence counts.

    Per example the columns are `matches` and `totals` (arrays of length `max_order`: clipped n-gram
    matches and candidate n-grams), `hyp_len` and `ref_len`; corpus BLEU is a function of their sums.
    """

    def features(c: Mapping[str, np.ndarray]) -> np.ndarray:
        m = np.asarray(c["matches"], float).reshape(-1, max_order)
        t = np.asarray(c["totals"], float).reshape(-1, max_order)
        lengths = np.stack([np.asarray(c["hyp_len"], float), np.asarray(c["ref_len"], float)], axis=1)
        return np.concatenate([m, t, lengths], axis=1)

    def finish(s: np.ndarray) -> np.ndarray:
        m, t = s[..., :max_order], s[..., max_order : 2 * max_order]
        hyp, ref = s[..., -2], s[..., -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where((m > 0) & (t > 0), np.log(np.where(m > 0, m, 1) / np.where(t > 0, t, 1)), -np.inf)
            geo = np.exp(logs.mean(axis=-1))
            bp = np.where(hyp < ref, np.exp(1 - ref / np.where(hyp > 0, hyp, 1)), 1.0)
        return np.nan_to_num(bp * geo, nan=0.0)

    return Metric("BLEU", ("matches", "totals", "hyp_len", "ref_len"), features, finish, bounds=(0.0, 1.0))


def f1_binary(positive: int = 1) -> Metric:
    """Binary F1 of class `positive` (GLUE's MRPC/QQP F1, sklearn's `f1_score` default): 2TP / (2TP + FP + FN).

    0 when the class is never gold nor predicted (sklearn's zero_division=0).
    """

    def features(c: Mapping[str, np.ndarray]) -> np.ndarray:
        g = np.asarray(c["gold"], dtype=np.int64) == positive
        p = np.asarray(c["prediction"], dtype=np.int64) == positive
        return np.stack([g & p, ~g & p, g & ~p], axis=1).astype(float)

    def finish(s: np.ndarray) -> np.ndarray:
        tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
        denominator = 2 * tp + fp + fn
        return np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=float), where=denominator > 0)

    return Metric("F1", ("gold", "prediction"), features, finish, bounds=(0.0, 1.0))


# per-example columns whose mean is a share (0..1): their intervals are clipped there
UNIT_COLUMNS = frozenset({"correct", "rouge_l", "acc", "acc_norm", "exact_match"})
STATISTICS = ("mean:<column>", "macro_f1", "matthews", "f1_binary", "pearson", "spearman", "corpus_bleu")
CLASS_STATISTICS = frozenset({"macro_f1", "matthews", "f1_binary"})  # need label-id gold and prediction


def metric_for(statistic: str, name: str | None = None, num_labels: int | None = None) -> Metric:
    """The engine's metric for a task's declared `MetricSpec.statistic` (peftlab/task_specs), named `name`.

    The one place that maps a declaration to a resampleable function, so a report of any task uses
    the same engine: "mean:<column>" (accuracy from `correct`, ROUGE-L from `rouge_l`), "macro_f1"
    and "matthews" (over `num_labels` classes, default 2), "f1_binary" (class 1), "pearson",
    "spearman", "corpus_bleu". ValueError (naming the allowed forms) for anything else.
    """
    if statistic.startswith("mean:") and statistic[5:]:
        column = statistic[5:]
        bounds = (0.0, 1.0) if column in UNIT_COLUMNS else (-math.inf, math.inf)
        return mean_metric(name or column, column, bounds)
    makers: dict[str, Callable[[], Metric]] = {
        "macro_f1": lambda: macro_f1(int(num_labels or 2)),
        "matthews": lambda: matthews(int(num_labels or 2)),
        "f1_binary": f1_binary,
        "pearson": lambda: PEARSON,
        "spearman": lambda: SPEARMAN,
        "corpus_bleu": corpus_bleu,
    }
    if statistic not in makers:
        raise ValueError(f"unknown metric statistic {statistic!r}; allowed: {', '.join(STATISTICS)}")
    metric = makers[statistic]()
    return dataclasses.replace(metric, name=name) if name else metric


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Runs:
    """One method's per-example outputs: `columns[field]` is (seeds, examples[, ...]), rows aligned on `ids`."""

    label: str
    seeds: tuple[int, ...]
    ids: np.ndarray
    columns: Mapping[str, np.ndarray]

    @property
    def S(self) -> int:
        return len(self.seeds)

    @property
    def n(self) -> int:
        return len(self.ids)

    def seed_columns(self, s: int, index: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {k: (v[s] if index is None else v[s][index]) for k, v in self.columns.items()}

    def restricted(self, ids: np.ndarray) -> Runs:
        """The same runs on `ids` (a subset of its own), in that order."""
        if len(ids) == len(self.ids) and np.array_equal(ids, self.ids):
            return self
        position = {str(i): k for k, i in enumerate(self.ids)}
        index = np.asarray([position[str(i)] for i in ids], dtype=np.int64)
        return Runs(self.label, self.seeds, ids, {k: v[:, index] for k, v in self.columns.items()})


def runs_from_seeds(
    label: str, per_seed: Sequence[tuple[int, Sequence[object], Mapping[str, Sequence[object]]]]
) -> Runs:
    """Build `Runs` from (seed, ids, columns) per run, keeping the examples every seed has (in the first's order)."""
    if not per_seed:
        raise ValueError(f"{label}: no runs")
    common = [str(i) for i in per_seed[0][1]]
    for _, ids, _ in per_seed[1:]:
        have = {str(i) for i in ids}
        common = [i for i in common if i in have]
    columns: dict[str, list[np.ndarray]] = {}
    for _, ids, cols in per_seed:
        position = {str(i): k for k, i in enumerate(ids)}
        index = np.asarray([position[i] for i in common], dtype=np.int64)
        for name, values in cols.items():
            columns.setdefault(name, []).append(np.asarray(values)[index] if len(index) else np.asarray([]))
    return Runs(
        label,
        tuple(int(s) for s, _, _ in per_seed),
        np.asarray(common, dtype=object),
        {k: np.stack(v) for k, v in columns.items()},
    )


def aligned(*runs: Runs) -> list[Runs]:
    """Every method restricted to the example ids all of them have (the pairing of question (a))."""
    if all(len(r.ids) == len(runs[0].ids) and np.array_equal(r.ids, runs[0].ids) for r in runs[1:]):
        return list(runs)
    common = [str(i) for i in runs[0].ids]
    for r in runs[1:]:
        have = {str(i) for i in r.ids}
        common = [i for i in common if i in have]
    ids = np.asarray(common, dtype=object)
    return [r.restricted(ids) for r in runs]


# ---------------------------------------------------------------- per-seed values under example weights


class _Values:
    """Per-seed metric values, at the observed examples and under the shared bootstrap weights."""

    def __init__(self, runs: Runs, metric: Metric, index: np.ndarray | None, weights: np.ndarray | None):
        self.runs, self.metric = runs, metric
        S = runs.S
        if metric.function is None:
            feats = np.stack([metric.features(runs.seed_columns(s)) for s in range(S)])  # type: ignore[misc]
            self.observed = np.asarray(metric.finish(feats.sum(axis=1)), float)  # type: ignore[misc]
            self.feats = feats
            if metric.linear:
                self.column = feats[..., 0] / feats[..., 1]  # (S, n) per-example values
                self.boot = None
            else:
                self.boot = np.asarray(metric.finish(np.einsum("bn,snm->bsm", weights, feats)), float)  # (B, S)
        else:
            self.observed = np.asarray([metric.function(runs.seed_columns(s)) for s in range(S)], float)
            self.boot = np.asarray(
                [[metric.function(runs.seed_columns(s, i)) for s in range(S)] for i in index]  # type: ignore[union-attr]
            )

    @property
    def mean(self) -> float:
        return float(self.observed.mean())

    def a_var(self) -> float:
        """V_a: example-bootstrap variance of this method's seed mean."""
        return _a_var([(self, 1.0)])

    def within(self) -> float:
        """V_w: mean over seeds of each seed's own example-bootstrap variance."""
        if self.boot is None:
            n = self.column.shape[1]
            return float(self.column.var(axis=1).mean() / n)
        return float(self.boot.var(axis=0, ddof=1).mean())


def _bootstrap(n: int, draws: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng("examples", key)
    index = rng.integers(0, n, size=(draws, n))
    weights = np.bincount((np.arange(draws)[:, None] * n + index).ravel(), minlength=draws * n).reshape(draws, n)
    return index, weights.astype(float)


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Answer:
    """One question's interval and test: estimate ± q·se, q from normal (a) or t on `df` (b)."""

    question: str  # MODELS or RECIPE
    estimate: float
    se: float
    df: float  # inf for the normal reference
    low: float
    high: float
    p: float  # two-sided, against 0 (differences only; NaN for a single method)
    estimable: bool = True
    why: str = ""
    p_holm: float = math.nan
    floor_se: float = math.nan  # (b) only: (a)'s se, on its normal reference, that (b) never undercuts

    @property
    def label(self) -> str:
        return SHORT[self.question]

    def mdd(self, alpha: float = ALPHA, power: float = POWER) -> float:
        """Minimum detectable difference: (q₁₋α/₂ + q_power)·se on this question's reference (and (a)'s floor)."""
        if not self.estimable or not math.isfinite(self.se):
            return math.nan
        own = (_quantile(1 - alpha / 2, self.df) + _quantile(power, self.df)) * self.se
        if math.isfinite(self.floor_se):
            own = max(own, (_quantile(1 - alpha / 2, math.inf) + _quantile(power, math.inf)) * self.floor_se)
        return own

    @property
    def significant(self) -> bool:
        p = self.p_holm if math.isfinite(self.p_holm) else self.p
        return math.isfinite(p) and p < ALPHA


def _quantile(q: float, df: float) -> float:
    from scipy import special

    return float(special.ndtri(q) if not math.isfinite(df) else special.stdtrit(df, q))


def _answer(question: str, estimate: float, var: float, df: float, bounds, level: float, test: bool) -> Answer:
    from scipy import special

    se = math.sqrt(max(var, 0.0))
    q = _quantile(0.5 + level / 2, df)
    low, high = max(bounds[0], estimate - q * se), min(bounds[1], estimate + q * se)
    p = math.nan
    if test:
        if se > 0:
            z = abs(estimate) / se
            p = float(2 * (special.ndtr(-z) if not math.isfinite(df) else special.stdtr(df, -z)))
        elif estimate == 0:
            p = 1.0  # no variation and no difference
        # se == 0 and a difference: untestable, p stays NaN (never read as maximal significance)
    return Answer(question, estimate, se, df, low, high, p)


def not_estimable(question: str, estimate: float, why: str = NOT_ESTIMABLE) -> Answer:
    return Answer(question, estimate, math.nan, math.nan, math.nan, math.nan, math.nan, False, why)


@dataclass(frozen=True)
class Components:
    """Variance components of an estimate: the one source of its (b) interval and of every projection.

    The printed (b) interval and the "to resolve" projections both read `variance`/`df` (and the
    (a) floor, `examples_part`) of these components, at the observed seeds and examples or at
    projected ones, so they cannot disagree. `seed_var` is σ̂²_α,m = s²_m − σ̂²_ε,m/n, NOT clipped:
    it is negative when a method's seeds agree more than its seed × example interaction predicts;
    the seed term s²_m/S_m it belongs to never is.
    """

    n: int
    seeds: tuple[int, ...]  # S per method
    seed_var: tuple[float, ...]  # σ̂²_α,m (may be < 0, see above)
    interaction: tuple[float, ...]  # σ̂²_ε,m / n (per seed, i.e. × 1/S for the mean)
    example: float  # Ê = σ̂²_β / n (clipped at 0)
    v_a: float = math.nan  # (a)'s example-bootstrap variance at the observed seeds and examples

    def _at(self, seeds: int | None, n: int | None) -> tuple[list[int], float]:
        return [seeds or S for S in self.seeds], self.n / (n or self.n)

    def seed_terms(self, seeds: int | None = None, n: int | None = None) -> list[tuple[float, int]]:
        """(s²_m/S′, S′ − 1) per method, s²_m projected to n′ examples: E[s²_m] = σ²_α,m + σ²_ε,m/n′."""
        counts, scale = self._at(seeds, n)
        return [
            (max(a + i * scale, 0.0) / s, s - 1)
            for s, a, i in zip(counts, self.seed_var, self.interaction, strict=True)
        ]

    def variance(self, seeds: int | None = None, n: int | None = None) -> float:
        """(b)'s Var, Σ s²_m/S′ + Ê·n/n′, with `seeds` per method and `n` examples (defaults: as observed)."""
        _, scale = self._at(seeds, n)
        return sum(t for t, _ in self.seed_terms(seeds, n)) + self.example * scale

    def df(self, seeds: int | None = None, n: int | None = None) -> float:
        """Satterthwaite df of the (projected) seed terms and Ê, as the printed (b) interval uses."""
        _, scale = self._at(seeds, n)
        return _satterthwaite(self.seed_terms(seeds, n), self.example * scale, n or self.n)

    def examples_part(self, seeds: int | None = None, n: int | None = None) -> float:
        """(a)'s V_a projected: σ̂²_β/n′ + Σ_m σ̂²_ε,m/(n′ S′), equal to the observed V_a as observed."""
        counts, scale = self._at(seeds, n)
        shift = sum(i * (1 / s - 1 / S) for s, S, i in zip(counts, self.seeds, self.interaction, strict=True))
        return max(self.v_a + shift, 0.0) * scale

    def detects(
        self, estimate: float, alpha: float, power: float, seeds: int | None = None, n: int | None = None
    ) -> bool:
        """Would (b), as printed (t on its df, never narrower than (a)), detect `estimate` at this design?"""
        recipe = _detects(estimate, self.variance(seeds, n), self.df(seeds, n), alpha, power)
        if not math.isfinite(self.v_a):
            return recipe
        return recipe and _detects(estimate, self.examples_part(seeds, n), math.inf, alpha, power)


def holm_threshold(others: Sequence[float], alpha: float = ALPHA) -> float:
    """The largest p at which one more test would still be rejected by Holm among `others` (NaN not counted).

    Holm's step-down rejects a test at rank k (k other p-values below it, m tests in all) iff its
    p < α/(m − k) and every test ranked before it has (m − j)·p_(j) < α. With the others as they
    are, the p-values that reject form an interval [0, threshold): this returns threshold, so a
    row's Holm-adjusted p is < α exactly when its own p is below it. A projection that must detect
    Δ "after Holm" targets this α′ (α/m for the smallest p, α for one test).
    """
    q = sorted(float(p) for p in others if p is not None and math.isfinite(p))
    m = len(q) + 1
    threshold = min(alpha / m, q[0] if q else math.inf)  # ranked first
    for k in range(1, m):  # k others below it
        if (m - k + 1) * q[k - 1] >= alpha:  # the test ranked just before is not rejected: step-down stops
            break
        threshold = min(alpha / (m - k), q[k] if k < len(q) else math.inf)
    return threshold


@dataclass(frozen=True)
class Result:
    """An estimate (a method's metric, or a difference of two) answered for both questions."""

    name: str
    metric: str
    estimate: float
    a: Answer
    b: Answer
    n: int
    seeds: tuple[int, ...]
    components: Components | None = None
    seed_values: tuple[tuple[float, ...], ...] = ()

    @property
    def headline(self) -> Answer:
        """(b) where estimable, else (a): what the table's main columns show."""
        return self.b if self.b.estimable else self.a

    def answer(self, question: str) -> Answer:
        return self.a if question == MODELS else self.b

    def seeds_to_resolve(self, alpha: float = ALPHA, power: float = POWER, most: int = 1000) -> float:
        """Seeds per method at which (b) would detect the observed Δ with `power` at `alpha`; inf if examples limit.

        Projected from the printed (b) interval's own components (`Components.variance`/`df` at s
        seeds: at today's seeds they ARE the interval's variance and df), on the t that interval
        would use, at `alpha` as the row's family sees it (`holm_threshold`: pass the Holm
        step-down α′). A row not yet resolved therefore never projects to the seeds it already has.
        """
        c = self.components
        if c is None or self.estimate == 0 or not math.isfinite(self.estimate):
            return math.nan
        for s in range(2, most + 1):
            if c.detects(self.estimate, alpha, power, seeds=s):
                return float(s)
        return math.inf

    def examples_to_resolve(
        self, question: str, alpha: float = ALPHA, power: float = POWER, most: int = 10**9
    ) -> float:
        """Test examples at which `question` would detect the observed Δ with today's seeds; inf if seeds limit.

        The same rule as `seeds_to_resolve` and as the printed interval: (a) on its normal reference
        (V_a scales as 1/n′ whatever the seeds), (b) on the components' variance and t df at n′.
        """
        if self.estimate == 0 or not math.isfinite(self.estimate):
            return math.nan
        if question == MODELS:
            if not math.isfinite(self.a.se):
                return math.nan

            def detects(k: int) -> bool:
                return _detects(self.estimate, self.a.se**2 * self.n / k, math.inf, alpha, power)
        else:
            c = self.components
            if c is None:
                return math.nan

            def detects(k: int) -> bool:
                return c.detects(self.estimate, alpha, power, n=k)

        if not detects(most):
            return math.inf
        low, high = 0, most  # detects(high); the smallest such n′ by bisection (variance falls with n′)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if detects(middle) else (middle, high)
        return float(high)


def _detects(estimate: float, variance: float, df: float, alpha: float, power: float) -> bool:
    """|Δ| ≥ (q₁₋α/₂ + q_power)·se on the reference (t on `df`, normal when inf): detected with `power`."""
    if not variance > 0:
        return variance == 0 and estimate != 0
    return (_quantile(1 - alpha / 2, df) + _quantile(power, df)) * math.sqrt(variance) <= abs(estimate)


def _satterthwaite(seed_terms: list[tuple[float, int]], example: float, n: int) -> float:
    """Satterthwaite df of Σ s²_m/S_m (df S_m − 1 each) + Ê (df n − 1), with the seed terms median-unbiased.

    A variance estimated from 1–2 df falls below its mean more often than not, and the plain
    Satterthwaite df rises exactly when it does (a small s² makes the examples look dominant): at two
    seeds that interval covered 0.92 and rejected 7% of true nulls in the calibration. So the seed
    terms enter the df at their median-unbiased size, × d/χ²_d(0.5) with d the seeds' own Welch df
    (× 2.2 at d = 1, × 1.4 at d = 2, → 1 as seeds grow), and df never falls below d itself.
    """
    from scipy.special import chdtri

    seeds = sum(t for t, _ in seed_terms)
    if seeds <= 0:
        return math.inf if example > 0 else float(sum(d for _, d in seed_terms))
    d = seeds**2 / sum(t * t / dd for t, dd in seed_terms)
    k = d / float(chdtri(d, 0.5))  # the median of χ²_d
    total = seeds + example
    df = total**2 / (sum((k * t) ** 2 / dd for t, dd in seed_terms) + example**2 / max(n - 1, 1))
    return max(df, d)


def _contain(b: Answer, a: Answer) -> Answer:
    """(b) widened to contain (a), its p never below (a)'s: the recipe is never known better than its checkpoints.

    The recipe's variance is the checkpoints' (the examples') variance plus the seeds' (law of
    total variance), so its interval cannot honestly be narrower. Σ s²_m/S_m + Ê falls below V_a
    exactly when the seed main effect's estimate σ̂²_α comes out negative (seeds that agree more
    than their interaction predicts: at 2–3 seeds, often); rather than truncating that component
    and keeping the 1–2 seed df (which over-covers badly: the variance is then the examples', known
    on n − 1 df), the interval takes (a)'s ends where they reach further, and the test (a)'s p
    where it is larger. Elsewhere (b) is unchanged. `floor_se` carries (a)'s se for the MDD.
    """
    if not a.estimable:
        return b
    p = max(b.p, a.p) if math.isfinite(b.p) and math.isfinite(a.p) else b.p
    return dataclasses.replace(b, low=min(b.low, a.low), high=max(b.high, a.high), p=p, floor_se=a.se)


def _recipe(
    estimate: float, parts: list[tuple[_Values, float]], v_ex: float, n: int, bounds, level: float, test: bool
) -> tuple[Answer, Components | None]:
    """(b): Σ s²_m/S_m (df S_m − 1) + Ê (df n − 1), t on Satterthwaite df; not estimable when any S_m < 2."""
    if any(v.runs.S < 2 for v, _ in parts):
        return not_estimable(RECIPE, estimate), None
    interaction, seed_var = [], []
    for values, _ in parts:
        S = values.runs.S
        s2 = float(values.observed.var(ddof=1))
        i_m = max(values.within() - values.a_var(), 0.0) / (S - 1)  # σ̂²_ε,m/(n S)
        interaction.append(i_m * S)  # σ̂²_ε,m/n
        seed_var.append(s2 - i_m * S)  # σ̂²_α,m, unclipped: s²_m = σ̂²_α,m + σ̂²_ε,m/n exactly
    example = max(v_ex - sum(i / v.runs.S for i, (v, _) in zip(interaction, parts, strict=True)), 0.0)
    components = Components(
        n, tuple(v.runs.S for v, _ in parts), tuple(seed_var), tuple(interaction), example, v_ex
    )  # the interval and the projections read the same components
    answer = _answer(RECIPE, estimate, components.variance(), components.df(), bounds, level, test)
    answer = _contain(answer, _answer(MODELS, estimate, v_ex, math.inf, bounds, level, test))
    return answer, components


def estimate(
    runs: Runs, metric: Metric = ACCURACY, *, key: str = "", draws: int = DRAWS, level: float = LEVEL
) -> Result:
    """One method's metric (mean over seeds of the per-seed metric) with both questions' intervals."""
    index, weights = (None, None) if metric.linear else _bootstrap(runs.n, draws, key or runs.label)
    values = _Values(runs, metric, index, weights)
    v_a = values.a_var()
    a = _answer(MODELS, values.mean, v_a, math.inf, metric.bounds, level, False)
    b, components = _recipe(values.mean, [(values, 1.0)], v_a, runs.n, metric.bounds, level, False)
    return Result(runs.label, metric.name, values.mean, a, b, runs.n, (runs.S,), components, (tuple(values.observed),))


def _a_var(parts: list[tuple[_Values, float]]) -> float:
    """Example-bootstrap variance of Σ sign_m × (seed mean of method m), same examples for every seed and method."""
    if all(v.boot is None for v, _ in parts):
        column = sum(sign * v.column.mean(axis=0) for v, sign in parts)
        return float(np.var(column) / len(column))
    total = sum(sign * v.boot.mean(axis=1) for v, sign in parts)
    return float(np.var(total, ddof=1))


def difference(
    a: Runs, b: Runs, metric: Metric = ACCURACY, *, key: str = "", draws: int = DRAWS, level: float = LEVEL
) -> Result:
    """metric(a) − metric(b) on the examples both have, for both questions (paired over examples in both)."""
    a, b = aligned(a, b)
    n = a.n
    if n == 0:
        raise ValueError(f"{a.label} and {b.label} share no test example")
    index, weights = (None, None) if metric.linear else _bootstrap(n, draws, key or f"{a.label}|{b.label}")
    va, vb = _Values(a, metric, index, weights), _Values(b, metric, index, weights)
    diff = va.mean - vb.mean
    v_ex = _a_var([(va, 1.0), (vb, -1.0)])
    span = metric.bounds[1] - metric.bounds[0]
    bounds = (-span, span)
    answer_a = _answer(MODELS, diff, v_ex, math.inf, bounds, level, True)
    answer_b, components = _recipe(diff, [(va, 1.0), (vb, -1.0)], v_ex, n, bounds, level, True)
    return Result(
        f"{a.label} − {b.label}", metric.name, diff, answer_a, answer_b, n, (a.S, b.S), components,
        (tuple(va.observed), tuple(vb.observed)),
    )  # fmt: skip


SEED_VALUES = "per-seed scores only (no per-example outputs): example term bounded by the binomial"


def from_seed_values(values: Sequence[float], n: int, *, name: str = "", level: float = LEVEL) -> Result:
    """Both questions for a share (accuracy) known only per seed, with its n test examples (figures' bands).

    Without per-example outputs the crossed example variance cannot be estimated, but for a 0/1
    outcome it is bounded: the seed mean's example-bootstrap variance is at most p̄(1 − p̄)/n, reached
    when every seed agrees on every example (S identical seeds count as one, never as S test sets).
    (a) uses that bound (normal reference); (b) adds the seed term, s²/S + p̄(1 − p̄)/n, with the
    same Satterthwaite df as the engine. Both are conservative, never narrower than the crossed
    truth; one seed leaves (b) not estimable.
    """
    v = np.asarray([x for x in values if math.isfinite(x)], float)
    S = len(v)
    if S == 0 or n <= 0:
        empty = not_estimable(MODELS, math.nan, "no value")
        return Result(name, "accuracy", math.nan, empty, not_estimable(RECIPE, math.nan), 0, (S,))
    mean = float(v.mean())
    v_a = mean * (1 - mean) / n
    a = _answer(MODELS, mean, v_a, math.inf, (0.0, 1.0), level, False)
    if S < 2:
        b = not_estimable(RECIPE, mean)
    else:
        seed_term = float(v.var(ddof=1)) / S
        b = _answer(
            RECIPE, mean, seed_term + v_a, _satterthwaite([(seed_term, S - 1)], v_a, n), (0.0, 1.0), level, False
        )
    return Result(name, "accuracy", mean, a, b, n, (S,), None, (tuple(v),))


# ---------------------------------------------------------------- families, best


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values in input order; NaN stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    out = np.full(len(p), math.nan)
    if len(finite):
        order = finite[np.argsort(p[finite], kind="stable")]
        m = len(order)
        out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out.tolist()


@dataclass(frozen=True)
class Marks:
    """`best`: significantly ahead of EVERY other method (intersection–union test); else the tie set."""

    best: tuple[str, ...] = ()
    tied: tuple[str, ...] = ()
    leader: str | None = None
    question: str = ""
    worst_p: float = math.nan  # the largest of the leader's p-values against the others (the IUT's p)

    def mark(self, label: str) -> str | None:
        return "best" if label in self.best else "tied" if label in self.tied else None


def best_marks(
    points: Mapping[str, float],
    test: Callable[[str, str], tuple[float, str] | None],
    *,
    maximise: bool = True,
    alpha: float = ALPHA,
) -> Marks:
    """Intersection–union (Berger 1982): the leader is best iff each test leader-vs-other has p < α.

    No multiplicity correction is needed (the claim needs every test to reject). Otherwise the tie
    set is the leader and every method whose test against it is not significant (or not possible).
    `test(a, b)` returns (p of a vs b, question) or None when no test is possible.
    """
    ranked = sorted(((v, k) for k, v in points.items() if v is not None and math.isfinite(v)), reverse=maximise)
    if not ranked:
        return Marks()
    leader = ranked[0][1]
    if len(ranked) == 1:
        return Marks(best=(leader,), leader=leader)
    tied, ps, questions = [leader], [], []
    for _, label in ranked[1:]:
        result = test(leader, label)
        p = result[0] if result is not None else math.nan
        if result is not None:
            questions.append(result[1])
        ps.append(p)
        if not (math.isfinite(p) and p < alpha):
            tied.append(label)
    if not questions:  # no test was possible (one seed, no outputs): nothing is marked, nothing claimed
        return Marks(leader=leader)
    question = "; ".join(dict.fromkeys(questions))
    worst = max(ps) if all(math.isfinite(p) for p in ps) else math.nan
    if len(tied) == 1:
        return Marks(best=(leader,), leader=leader, question=question, worst_p=worst)
    return Marks(tied=tuple(tied), leader=leader, question=question, worst_p=worst)


def seed_test(values_a: Sequence[float], values_b: Sequence[float]) -> float:
    """Welch t-test over seeds (for per-seed numbers without per-example outputs: costs, gain, forgetting).

    NaN when either side has fewer than two seeds or both have no spread: zero variance is not
    evidence (the old test read it as p = 0).
    """
    from scipy import stats

    a = np.asarray([v for v in values_a if math.isfinite(v)], float)
    b = np.asarray([v for v in values_b if math.isfinite(v)], float)
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def seed_interval(
    values: Sequence[float], level: float = LEVEL, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> tuple[float, float]:
    """t-interval over seeds of per-seed numbers (costs); NaN at one seed.

    `bounds`: where the quantity can lie (memory and throughput are ≥ 0). At two seeds t has one
    df and the interval can reach past a bound; cutting it there loses no coverage.
    """
    from scipy import stats

    v = np.asarray([x for x in values if math.isfinite(x)], float)
    if len(v) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(max(v.mean() - half, bounds[0])), float(min(v.mean() + half, bounds[1]))


def seed_half_width(values: Sequence[float | None], level: float = LEVEL) -> float:
    """Half-width of `seed_interval` (NaN for fewer than two values): the tables' "± x" over seeds.

    A t-interval rather than a bootstrap: with three seeds a bootstrap has nothing to resample.
    """
    low, high = seed_interval([float(v) for v in values if v is not None], level)
    return (high - low) / 2


def p_text(p: float, draws: int | None = None) -> str:
    """A p-value as printed: never 0 (`< 1/B` for a bootstrap, `< 0.001` otherwise)."""
    if p is None or not math.isfinite(p):
        return ""
    if draws and p < 1 / draws:
        return f"< 1/{draws}"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
