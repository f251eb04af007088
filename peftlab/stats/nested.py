"""FALLBACK ONLY: the old nested engine, for records without predictions files, labelled wherever it shows.

Every interval and p-value a report computes from per-example predictions comes from
peftlab/stats/crossed.py. Records written before predictions files existed (or whose file is
missing or altered) keep only each seed's accuracy and n; for them this module still gives an
accuracy interval and a comparison, and every number it produces is labelled `LABEL`
("nested (no predictions)") in the `question` column, the Δ cells and the notes
(peftlab/reporting/comparison.py). It is also the "before" of the calibration suite
(peftlab/stats/calibration.py). Nothing else may call it: duplicates of the crossed engine's
Holm, best marks, power and macro-F1 interval were removed (issue 29), so it cannot drift into
being a second engine.

Why it is only a fallback (issue 23): seeds and test examples are crossed (every seed scores the
same examples), but this engine resamples each seed's examples independently, as if nested; its
intervals are too narrow whenever seeds matter, and it answers neither of the crossed engine's two
questions exactly (docs/statistics.md, "Records without predictions"). What it computes:

- **Interval of a method** — a two-level bootstrap: resample the seeds, then the test examples
  within each drawn seed. Resampling n examples of a seed whose accuracy is p gives a count
  ~ Binomial(n, p), so the inner level is drawn exactly without materialising indices; it needs
  only each seed's accuracy and n, so old records (without predictions) get it too. Inside [0, 1]
  by construction (a percentile interval of means of 0/1 values).
- **Paired comparison** of a method against the reference — the same two levels, drawn jointly
  for both methods: the same seeds, and within a seed the same examples. Per example the
  difference is +1, −1 or 0, so a seed's resampled difference is (X₊ − X₋)/n with
  (X₊, X₋, X₀) ~ Multinomial(n, p₊, p₋, p₀). p-value: the two-sided bootstrap test of Efron &
  Tibshirani (1993, §16.4). Without predictions the comparison is unpaired (`unpaired_comparison`).

All draws come from a seeded generator (`numpy.random.default_rng`) keyed by the labels compared,
so a report is reproducible and adding a method leaves the others' numbers unchanged.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DRAWS = 2000
LEVEL = 0.95
ALPHA = 0.05
POWER = 0.80
SEED = 20181  # base of every generator; Dror et al. 2018
LABEL = "nested (no predictions)"  # what the tables' question column and Δ cells say about its numbers
DESCRIPTION = "nested two-level bootstrap (no predictions: seeds × examples cannot be crossed; approximate)"


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
