"""The OLD nested engine: kept for records without predictions and as the calibration's "before".

Issue 23: seeds and test examples are crossed (every seed scores the same examples), but this
engine resamples each seed's examples independently, as if nested; its intervals are too narrow
whenever seeds matter. Tables, figures and the paper now use peftlab/stats/crossed.py, which answers two
labelled questions; this module remains for records without predictions files (labelled
"nested (no predictions)") and for benchmarks/calibration.py's before/after table. `best_marks`
follows the intersection–union rule of crossed.best_marks. What follows describes the old method,
for accuracy-like metrics (a mean of per-example 0/1 outcomes):

- **Interval of a method** — a two-level bootstrap: resample the seeds, then the test examples
  within each drawn seed. Resampling n examples of a seed whose accuracy is p gives a count
  ~ Binomial(n, p), so the inner level is drawn exactly without materialising indices; it needs
  only each seed's accuracy and n, so old records (without predictions) get it too. Honest at one
  seed (the test-sampling part remains), and inside [0, 1] by construction (a percentile
  interval of means of 0/1 values).
- **Paired comparison** of a method against the reference — the same two levels, drawn jointly
  for both methods: the same seeds, and within a seed the same examples. Per example the
  difference is +1, −1 or 0, so a seed's resampled difference is (X₊ − X₋)/n with
  (X₊, X₋, X₀) ~ Multinomial(n, p₊, p₋, p₀) — exact, vectorised, fast. p-value: the two-sided
  bootstrap test of Efron & Tibshirani (1993, §16.4): how often the centred bootstrap difference
  is at least as far from 0 as the observed one. Holm (1979) corrects across the methods.
- **Best** — the leader is marked best only when its paired test against EVERY other method says
  p < α (intersection–union); otherwise every method not significantly below the leader is tied.
- **Minimum detectable difference** — (z₁₋α/₂ + z_power) × the standard error of a paired
  difference built from n, the number of seeds, the discordance rate and the between-seed spread.

All draws come from a seeded generator (`numpy.random.default_rng`) keyed by the labels compared,
so a report is reproducible and adding a method leaves the others' numbers unchanged.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DRAWS = 2000
LEVEL = 0.95
ALPHA = 0.05
POWER = 0.80
SEED = 20181  # base of every generator; Dror et al. 2018


def _rng(*keys: str) -> np.random.Generator:
    return np.random.default_rng([SEED, *(zlib.crc32(k.encode()) for k in keys)])


# ---------------------------------------------------------------- one method


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    kind: str  # how it was computed, shown under the table
    seeds: int
    n: int  # test examples per seed (the smallest)

    @property
    def half(self) -> float:
        """The larger half-width (for code that wants one ± number)."""
        return max(self.mean - self.low, self.high - self.mean)


BOOTSTRAP = "two-level bootstrap (seeds, then test examples)"
T_FALLBACK = "t-interval over seeds, clipped to [0, 1] (no example count in the records)"
NO_INTERVAL = "none (one seed, no example count in the records)"


def method_interval(
    accuracy: Sequence[float], n: Sequence[int | None], *, key: str = "", draws: int = DRAWS, level: float = LEVEL
) -> Interval:
    """Two-level bootstrap interval of the mean over seeds of a per-seed accuracy (each over n examples).

    Falls back to a t-interval over seeds, clipped to [0, 1] and labelled, when n is unknown.
    """
    acc = np.asarray([a for a in accuracy if a is not None and math.isfinite(a)], dtype=float)
    counts = [c for a, c in zip(accuracy, n, strict=True) if a is not None and math.isfinite(a)]
    if len(acc) == 0:
        return Interval(math.nan, math.nan, math.nan, "no finished run", 0, 0)
    mean = float(acc.mean())
    if any(c is None or not c or c <= 0 for c in counts):
        low, high = _t_interval(acc, level)
        if math.isnan(low):  # one seed and no example count: no interval can be honest
            return Interval(mean, math.nan, math.nan, NO_INTERVAL, len(acc), 0)
        return Interval(mean, max(0.0, low), min(1.0, high), T_FALLBACK, len(acc), 0)
    sizes = np.asarray(counts, dtype=np.int64)
    rng = _rng("interval", key)
    pick = rng.integers(0, len(acc), size=(draws, len(acc)))  # seeds, with replacement
    hits = rng.binomial(sizes[pick], acc[pick])  # examples within each drawn seed
    boot = (hits / sizes[pick]).mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return Interval(mean, float(low), float(high), BOOTSTRAP, len(acc), int(sizes.min()))


F1_BOOTSTRAP = "two-level bootstrap (seeds, then test examples) of the confusion counts"


def macro_f1_interval(
    runs: Sequence[tuple[Sequence[int], Sequence[int]]],
    num_labels: int,
    *,
    key: str = "",
    draws: int = DRAWS,
    level: float = LEVEL,
) -> Interval:
    """Two-level bootstrap interval of the mean over seeds of macro-F1, from each seed's (gold, prediction) ids.

    Macro-F1 is no mean of per-example outcomes, so the t-interval over seeds was the only interval
    it had (±1.38 for a score in [0, 1] at two seeds). Resampling a seed's n test examples is a
    Multinomial(n, cells) draw of its confusion counts (gold × prediction, with one extra column
    for "no class", e.g. an unparsed answer), from which macro-F1 over all `num_labels` classes is
    computed as the table computes it; the outer level resamples seeds. Inside [0, 1] by construction.
    """
    k = int(num_labels)
    cells = []
    for gold, prediction in runs:
        g = np.asarray(gold, dtype=np.int64)
        p = np.asarray(prediction, dtype=np.int64)
        p = np.where((p >= 0) & (p < k), p, k)
        cells.append(np.bincount(g * (k + 1) + p, minlength=k * (k + 1)).astype(float))
    if not cells or k < 1:
        return Interval(math.nan, math.nan, math.nan, "no finished run", 0, 0)
    observed = [float(_macro_f1(c.reshape(k, k + 1))) for c in cells]
    rng = _rng("f1", key)
    pick = rng.integers(0, len(cells), size=(draws, len(cells)))
    boot = np.empty(pick.shape)
    for s, counts in enumerate(cells):
        where = pick == s
        if where.any():
            n = int(counts.sum())
            drawn = rng.multinomial(n, counts / n, size=int(where.sum())).reshape(-1, k, k + 1)
            boot[where] = _macro_f1(drawn)
    tail = (1 - level) / 2
    low, high = np.quantile(boot.mean(axis=1), [tail, 1 - tail])
    n_min = int(min(c.sum() for c in cells))
    return Interval(float(np.mean(observed)), float(low), float(high), F1_BOOTSTRAP, len(cells), n_min)


def _macro_f1(counts: np.ndarray) -> np.ndarray:
    """Macro-F1 over every class from confusion counts (..., k gold, k + 1 predicted); 0 for a class never seen."""
    classes = counts[..., :, :-1]
    tp = np.einsum("...ii->...i", classes)
    denominator = counts.sum(axis=-1) + classes.sum(axis=-2)
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=float), where=denominator > 0)
    return f1.mean(axis=-1)


def _t_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The t-interval over seeds: the statistics engine's one (crossed.seed_interval)."""
    from peftlab.stats.crossed import seed_interval

    return seed_interval(values, level)


# ---------------------------------------------------------------- two methods, paired


@dataclass(frozen=True)
class SeedOutcomes:
    """One run's per-example outcomes on the test split: ids and 0/1 correctness, aligned."""

    seed: int
    ids: np.ndarray
    correct: np.ndarray
    gold: np.ndarray | None = None  # label ids, where the task's answers are labels (classification)
    prediction: np.ndarray | None = None


@dataclass(frozen=True)
class Comparison:
    method: str
    reference: str
    diff: float  # method − reference, mean over seeds
    low: float
    high: float
    p: float
    kind: str  # "paired" or the fallback used
    seed_diffs: tuple[float, ...] = ()
    n: int = 0  # examples paired per seed (the smallest)
    discordant: float = math.nan  # share of examples where exactly one of the two is right
    p_holm: float = math.nan

    @property
    def same_sign(self) -> int:
        """How many seeds' differences share the sign of the mean difference."""
        sign = np.sign(self.diff)
        return int(sum(1 for d in self.seed_diffs if np.sign(d) == sign and sign != 0))

    @property
    def significant(self) -> bool:
        p = self.p_holm if math.isfinite(self.p_holm) else self.p
        return math.isfinite(p) and p < ALPHA


PAIRED = "paired two-level bootstrap"
UNPAIRED = "unpaired two-level bootstrap (no shared seeds/examples)"
NO_PREDICTIONS = "unpaired two-level bootstrap (no predictions)"


def paired_comparison(
    method: str,
    runs: Sequence[SeedOutcomes],
    reference: str,
    reference_runs: Sequence[SeedOutcomes],
    *,
    draws: int = DRAWS,
    level: float = LEVEL,
) -> Comparison | None:
    """method − reference on the examples both saw, seed by seed; None when no seed is shared."""
    by_seed = {r.seed: r for r in reference_runs}
    pos, neg, sizes, diffs = [], [], [], []
    for run in runs:
        ref = by_seed.get(run.seed)
        if ref is None:
            continue
        a, b = _aligned(run, ref)
        if len(a) == 0:
            continue
        d = a - b
        pos.append(int((d > 0).sum()))
        neg.append(int((d < 0).sum()))
        sizes.append(len(d))
        diffs.append(float(d.mean()))
    if not sizes:
        return None
    n = np.asarray(sizes, dtype=np.int64)
    probs = np.stack([np.asarray(pos) / n, np.asarray(neg) / n], axis=1)
    probs = np.concatenate([probs, np.clip(1 - probs.sum(axis=1, keepdims=True), 0, 1)], axis=1)
    rng = _rng("paired", method, reference)
    pick = rng.integers(0, len(n), size=(draws, len(n)))
    counts = rng.multinomial(n[pick], probs[pick])  # (draws, seeds, 3)
    boot = ((counts[..., 0] - counts[..., 1]) / n[pick]).mean(axis=1)
    observed = float(np.mean(diffs))
    tail = (1 - level) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return Comparison(
        method=method,
        reference=reference,
        diff=observed,
        low=float(low),
        high=float(high),
        p=_bootstrap_p(boot, observed),
        kind=PAIRED,
        seed_diffs=tuple(diffs),
        n=int(n.min()),
        discordant=float((np.asarray(pos) + np.asarray(neg)).sum() / n.sum()),
    )


def _aligned(run: SeedOutcomes, ref: SeedOutcomes) -> tuple[np.ndarray, np.ndarray]:
    if len(run.ids) == len(ref.ids) and np.array_equal(run.ids, ref.ids):
        return run.correct, ref.correct
    _, ia, ib = np.intersect1d(run.ids.astype(str), ref.ids.astype(str), return_indices=True)
    return run.correct[ia], ref.correct[ib]


def _bootstrap_p(boot: np.ndarray, observed: float) -> float:
    """Two-sided: how often the centred bootstrap difference is as far from 0 as the observed one."""
    if observed == 0 and np.all(boot == 0):
        return 1.0
    extreme = np.abs(boot - boot.mean()) >= abs(observed) - 1e-12
    return float((1 + extreme.sum()) / (len(boot) + 1))


def unpaired_comparison(
    method: str,
    accuracy: Sequence[float],
    n: Sequence[int],
    reference: str,
    reference_accuracy: Sequence[float],
    reference_n: Sequence[int],
    *,
    kind: str = NO_PREDICTIONS,
    draws: int = DRAWS,
    level: float = LEVEL,
) -> Comparison | None:
    """The fallback when runs cannot be paired: two independent two-level bootstraps, differenced."""
    a, na = np.asarray(accuracy, dtype=float), np.asarray(n, dtype=np.int64)
    b, nb = np.asarray(reference_accuracy, dtype=float), np.asarray(reference_n, dtype=np.int64)
    if len(a) == 0 or len(b) == 0 or (na <= 0).any() or (nb <= 0).any():
        return None
    rng = _rng("unpaired", method, reference)

    def boot(acc: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        pick = rng.integers(0, len(acc), size=(draws, len(acc)))
        return (rng.binomial(sizes[pick], acc[pick]) / sizes[pick]).mean(axis=1)

    diff = boot(a, na) - boot(b, nb)
    observed = float(a.mean() - b.mean())
    tail = (1 - level) / 2
    low, high = np.quantile(diff, [tail, 1 - tail])
    shared = {i: float(x) for i, x in enumerate(b)}
    seed_diffs = tuple(float(x - shared[i]) for i, x in enumerate(a) if i in shared) if len(a) == len(b) else ()
    return Comparison(
        method, reference, observed, float(low), float(high), _bootstrap_p(diff, observed), kind, seed_diffs,
        int(min(na.min(), nb.min())),
    )  # fmt: skip


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the input order (NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    out = np.full(len(p), math.nan)
    if len(finite) == 0:
        return out.tolist()
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out.tolist()


def with_holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    from dataclasses import replace

    adjusted = holm([c.p for c in comparisons])
    return [replace(c, p_holm=a) for c, a in zip(comparisons, adjusted, strict=True)]


# ---------------------------------------------------------------- best, tied


@dataclass(frozen=True)
class BestMarks:
    """Which rows are significantly best, and which are tied for best, with the test that decided."""

    best: tuple[str, ...] = ()
    tied: tuple[str, ...] = ()
    leader: str | None = None
    runner_up: str | None = None
    p: float = math.nan  # leader vs runner-up
    kind: str = ""
    notes: list[str] = field(default_factory=list)

    def mark(self, label: str) -> str | None:
        return "best" if label in self.best else "tied" if label in self.tied else None


def best_marks(points: dict[str, float], test: object, *, maximise: bool = True, alpha: float = ALPHA) -> BestMarks:
    """`best` only when the leader beats EVERY other method by a paired test at `alpha`; else the tied set.

    `test(a, b)` returns a Comparison of a − b (or None when they cannot be compared). The old rule
    (leader vs runner-up only, both picked from the data) is gone: see crossed.best_marks.
    """
    ranked = sorted(((v, k) for k, v in points.items() if v is not None and math.isfinite(v)), reverse=maximise)
    if not ranked:
        return BestMarks()
    leader = ranked[0][1]
    if len(ranked) == 1:
        return BestMarks(best=(leader,), leader=leader)
    runner_up = ranked[1][1]
    tied, first = [leader], None
    for _, label in ranked[1:]:
        result = test(leader, label)  # type: ignore[operator]
        first = result if label == runner_up else first
        if result is None or not math.isfinite(result.p) or result.p >= alpha:
            tied.append(label)
    p = first.p if first is not None else math.nan
    kind = first.kind if first is not None else "no test possible"
    if len(tied) == 1:
        return BestMarks(best=(leader,), leader=leader, runner_up=runner_up, p=p, kind=kind)
    return BestMarks(tied=tuple(tied), leader=leader, runner_up=runner_up, p=p, kind=kind)


# ---------------------------------------------------------------- power


def minimum_detectable_difference(
    n: int,
    seeds: int,
    discordance: float,
    seed_sd: float = 0.0,
    *,
    alpha: float = ALPHA,
    power: float = POWER,
) -> float:
    """Smallest true paired difference a two-sided test at `alpha` finds with probability `power`.

    A seed's paired difference over n examples has variance ≈ discordance / n (the share of
    examples on which exactly one method is right, McNemar's view) plus the between-seed variance
    `seed_sd`²; the mean over seeds divides both by the number of seeds.
    """
    from scipy import stats

    if n <= 0 or seeds <= 0 or not math.isfinite(discordance):
        return math.nan
    se = math.sqrt((max(discordance, 1.0 / n) / n + (seed_sd if math.isfinite(seed_sd) else 0.0) ** 2) / seeds)
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)
