"""Calibration of the statistics on simulated crossed seed × example outcomes with known truth (issue 23).

The simulation is a probit model of two methods A and B scored by S seeds each on the same n test
examples:

    y_msj = 1[ μ_m + α_ms + β_j + γ_mj + ε_msj > 0 ],   ε ~ N(0, 1)

β_j ~ N(0, σ_β²) is the example's difficulty, shared by both methods (σ_β = 5 makes two seeds of a
method agree on ≈ 92–93% of examples, as in the main job); γ_mj ~ N(0, σ_γ²) the method × example
interaction (σ_γ = 1.5, or 0 "without"); α_ms ~ N(0, σ_α²) the seed effect, set so that the
seed-to-seed sd of accuracy is `seed_sd`. Everything normal makes both truths closed-form:

- (b) the recipe: acc_m = Φ(μ_m / √(1 + σ_α² + σ_β² + σ_γ²));
- (a) these checkpoints (α_ms fixed): acc_m = mean_s Φ((μ_m + α_ms) / √(1 + σ_β² + σ_γ²)).

Coverage is measured with B's accuracy 0.78 and A's 0.80; type-I error of (b) with μ_A = μ_B and
independent seeds, of (a) additionally with α_A = α_B (so that these checkpoints are truly equal).
Both the crossed engine (peftlab/stats/crossed.py) and, for the "before" table, the old nested engine
(peftlab/stats/nested.py) are scored on the same draws.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIGMA_EXAMPLE = 5.0
SIGMA_INTERACTION = 1.5
ACC_B, ACC_A = 0.78, 0.80
GRID_SEEDS = (1, 2, 3, 5, 10)
GRID_N = (200, 1000)
GRID_SEED_SD = (0.0, 0.01, 0.02, 0.05)  # 0.05: prompt and prefix tuning's seed spread in the main job
GRID_INTERACTION = (False, True)
TARGET_COVERAGE = (0.93, 0.97)
TARGET_TYPE_I = 0.06


@dataclass(frozen=True)
class Cell:
    seeds: int
    n: int
    seed_sd: float
    interaction: bool


def grid(
    seeds: Iterable[int] = GRID_SEEDS,
    n: Iterable[int] = GRID_N,
    seed_sd: Iterable[float] = GRID_SEED_SD,
    interaction: Iterable[bool] = GRID_INTERACTION,
) -> Iterator[Cell]:
    for s in seeds:
        for size in n:
            for sd in seed_sd:
                for inter in interaction:
                    yield Cell(s, size, sd, inter)


@dataclass
class Draw:
    a: np.ndarray  # (S, n) 0/1 outcomes of method A
    b: np.ndarray
    truth_a: dict[str, float]  # question (a): "diff", "acc" (of A)
    truth_b: dict[str, float]


def _scales(cell: Cell) -> tuple[float, float, float]:
    from scipy.special import ndtri

    g = SIGMA_INTERACTION if cell.interaction else 0.0
    tau0 = math.sqrt(1 + SIGMA_EXAMPLE**2 + g**2)
    mu_b = ndtri(ACC_B) * tau0
    # sd of Φ((μ + α)/τ0) over α ≈ φ(μ/τ0)·σ_α/τ0 for small σ_α
    density = math.exp(-0.5 * (mu_b / tau0) ** 2) / math.sqrt(2 * math.pi)
    sigma_a = cell.seed_sd * tau0 / density
    return g, tau0, sigma_a


def simulate(cell: Cell, rng: np.random.Generator, *, null: str | None = None) -> Draw:
    """One experiment. `null`: None (A better), "b" (same recipe), "a" (same recipe and same checkpoints' seeds)."""
    from scipy.special import ndtr, ndtri

    g, tau0, sigma_a = _scales(cell)
    tau = math.sqrt(tau0**2 + sigma_a**2)
    mu_b = ndtri(ACC_B) * tau
    mu_a = mu_b if null else ndtri(ACC_A) * tau
    S, n = cell.seeds, cell.n
    beta = rng.normal(0, SIGMA_EXAMPLE, n)
    seeds_a = rng.normal(0, sigma_a, S)
    seeds_b = seeds_a.copy() if null == "a" else rng.normal(0, sigma_a, S)
    out = []
    for mu, alpha in ((mu_a, seeds_a), (mu_b, seeds_b)):
        gamma = rng.normal(0, g, n) if g else 0.0
        latent = mu + alpha[:, None] + beta[None, :] + gamma + rng.normal(0, 1, (S, n))
        out.append((latent > 0).astype(float))
    acc_a_b, acc_b_b = ndtr(mu_a / tau), ndtr(mu_b / tau)
    acc_a_a = float(ndtr((mu_a + seeds_a) / tau0).mean())
    acc_b_a = float(ndtr((mu_b + seeds_b) / tau0).mean())
    return Draw(
        out[0],
        out[1],
        {"diff": acc_a_a - acc_b_a, "acc": acc_a_a},
        {"diff": float(acc_a_b - acc_b_b), "acc": float(acc_a_b)},
    )


def _runs(label: str, y: np.ndarray):
    from peftlab.stats import crossed

    return crossed.Runs(label, tuple(range(len(y))), np.arange(y.shape[1]), {"correct": y})


def _inside(low: float, high: float, value: float) -> bool:
    return math.isfinite(low) and low <= value <= high


def new_engine(draw: Draw, null_a: Draw, null_b: Draw) -> dict[str, tuple[bool | None, bool | None, bool | None]]:
    """Per question: (Δ interval covers, single-method interval covers, null rejected); None: not estimable."""
    from peftlab.stats import crossed

    a, b = _runs("A", draw.a), _runs("B", draw.b)
    diff, one = crossed.difference(a, b), crossed.estimate(a)
    nulls = {
        "a": crossed.difference(_runs("A", null_a.a), _runs("B", null_a.b)).a,
        "b": crossed.difference(_runs("A", null_b.a), _runs("B", null_b.b)).b,
    }
    out = {}
    for q, truth in (("a", draw.truth_a), ("b", draw.truth_b)):
        d, o, null = diff.answer(q), one.answer(q), nulls[q]
        if not d.estimable:
            out[q] = (None, None, None)
            continue
        rejected = bool(math.isfinite(null.p) and null.p < crossed.ALPHA)
        out[q] = (_inside(d.low, d.high, truth["diff"]), _inside(o.low, o.high, truth["acc"]), rejected)
    return out


def _old(draw: Draw, draws: int):
    from peftlab.stats import nested as stats

    ids = np.arange(draw.a.shape[1])
    a = [stats.SeedOutcomes(s, ids, y) for s, y in enumerate(draw.a)]
    b = [stats.SeedOutcomes(s, ids, y) for s, y in enumerate(draw.b)]
    comparison = stats.paired_comparison("A", a, "B", b, draws=draws)
    interval = stats.method_interval(draw.a.mean(axis=1).tolist(), [draw.a.shape[1]] * len(draw.a), draws=draws)
    return comparison, interval


def old_engine(draw: Draw, null_a: Draw, null_b: Draw, draws: int = 1000) -> dict[str, tuple[bool, bool, bool]]:
    """The same for the old nested engine: its one interval and p-value, judged against either question's truth."""
    comparison, interval = _old(draw, draws)
    out = {}
    for q, truth, null in (("a", draw.truth_a, null_a), ("b", draw.truth_b, null_b)):
        out[q] = (
            _inside(comparison.low, comparison.high, truth["diff"]),
            _inside(interval.low, interval.high, truth["acc"]),
            bool(_old(null, draws)[0].p < 0.05),
        )
    return out


@dataclass
class Row:
    cell: Cell
    replicates: int
    # question -> rate (NaN: not estimable)
    cover_diff: dict[str, float]
    cover_acc: dict[str, float]
    type_i: dict[str, float]


def _rate(values: list[bool | None]) -> float:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept and len(kept) == len(values) else math.nan


def run_cell(cell: Cell, replicates: int, *, engine: str = "new", seed: int = 0, old_draws: int = 1000) -> Row:
    """Coverage and type-I error of both questions in one cell (the same draws for either engine)."""
    rng = np.random.default_rng([seed, cell.seeds, cell.n, int(cell.seed_sd * 1000), int(cell.interaction)])
    cover_diff: dict[str, list] = {"a": [], "b": []}
    cover_acc: dict[str, list] = {"a": [], "b": []}
    reject: dict[str, list] = {"a": [], "b": []}
    for _ in range(replicates):
        draw = simulate(cell, rng)
        null_b, null_a = simulate(cell, rng, null="b"), simulate(cell, rng, null="a")
        result = new_engine(draw, null_a, null_b) if engine == "new" else old_engine(draw, null_a, null_b, old_draws)
        for q, (d, one, r) in result.items():
            cover_diff[q].append(d)
            cover_acc[q].append(one)
            reject[q].append(r)
    return Row(
        cell,
        replicates,
        {q: _rate(v) for q, v in cover_diff.items()},
        {q: _rate(v) for q, v in cover_acc.items()},
        {q: _rate(v) for q, v in reject.items()},
    )


def within_target(row: Row) -> bool:
    """Every estimable number of the row inside the targets (coverage in [0.93, 0.97], type-I ≤ 0.06)."""
    for q in ("a", "b"):
        for value in (row.cover_diff[q], row.cover_acc[q]):
            if math.isfinite(value) and not TARGET_COVERAGE[0] <= value <= TARGET_COVERAGE[1]:
                return False
        if math.isfinite(row.type_i[q]) and row.type_i[q] > TARGET_TYPE_I:
            return False
    return True


def markdown(rows: list[Row], title: str) -> str:
    """The generated calibration table (one line per cell), with its Monte Carlo standard errors."""
    replicates = sorted({r.replicates for r in rows})
    r = min(replicates) if replicates else 0
    se_cover = math.sqrt(0.95 * 0.05 / r) if r else math.nan
    se_type = math.sqrt(0.05 * 0.95 / r) if r else math.nan

    def cell(v: float, kind: str) -> str:
        if not math.isfinite(v):
            return "n.e."
        bad = (kind == "cover" and not TARGET_COVERAGE[0] <= v <= TARGET_COVERAGE[1]) or (
            kind == "type" and v > TARGET_TYPE_I
        )
        return f"**{v:.3f}**" if bad else f"{v:.3f}"

    lines = [
        f"**{title}** — {'/'.join(map(str, replicates))} replicates per cell; Monte Carlo SE ≈ {se_cover:.3f} for a "
        f"coverage of 0.95 and ≈ {se_type:.3f} for a type-I error of 0.05. Bold: outside the target "
        f"(coverage in [{TARGET_COVERAGE[0]}, {TARGET_COVERAGE[1]}], type-I ≤ {TARGET_TYPE_I}); n.e.: not estimable.",
        "",
        "| S | n | seed sd | m×e | (a) cover Δ | (a) cover acc | (a) type-I "
        "| (b) cover Δ | (b) cover acc | (b) type-I |",
        "|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        c = row.cell
        lines.append(
            f"| {c.seeds} | {c.n} | {c.seed_sd:.2f} | {'yes' if c.interaction else 'no'} | "
            f"{cell(row.cover_diff['a'], 'cover')} | {cell(row.cover_acc['a'], 'cover')} | "
            f"{cell(row.type_i['a'], 'type')} | {cell(row.cover_diff['b'], 'cover')} | "
            f"{cell(row.cover_acc['b'], 'cover')} | {cell(row.type_i['b'], 'type')} |"
        )
    return "\n".join(lines)


def rows_json(rows: list[Row], seconds: float = math.nan) -> str:
    """The grid as JSON (one object per cell; NaN for not estimable as null), for before/after tables and lookups."""

    def number(v: float) -> float | None:
        return round(v, 6) if math.isfinite(v) else None

    cells = [
        {
            "seeds": r.cell.seeds,
            "n": r.cell.n,
            "seed_sd": r.cell.seed_sd,
            "interaction": r.cell.interaction,
            "replicates": r.replicates,
            **{f"{q}_cover_diff": number(r.cover_diff[q]) for q in "ab"},
            **{f"{q}_cover_acc": number(r.cover_acc[q]) for q in "ab"},
            **{f"{q}_type_i": number(r.type_i[q]) for q in "ab"},
        }
        for r in rows
    ]
    return json.dumps({"seconds": number(seconds), "cells": cells}, indent=1) + "\n"


def before_after_markdown(before: dict, after: dict, title: str) -> str:
    """One table of two `rows_json` grids of the same cells and draws: each (b) number before → after.

    (a) is printed once (after) with a check mark of its own: item 7 of issue 29 does not touch
    question (a), so its columns must agree between the runs up to nothing (same draws).
    """
    old = {(c["seeds"], c["n"], c["seed_sd"], c["interaction"]): c for c in before["cells"]}
    r = min(c["replicates"] for c in after["cells"])
    se = math.sqrt(0.95 * 0.05 / r)

    def show(v: float | None, kind: str) -> str:
        if v is None:
            return "n.e."
        bad = (kind == "cover" and not TARGET_COVERAGE[0] <= v <= TARGET_COVERAGE[1]) or (
            kind == "type" and v > TARGET_TYPE_I
        )
        return f"**{v:.3f}**" if bad else f"{v:.3f}"

    lines = [
        f"**{title}** — {r} replicates per cell, the same draws before and after; Monte Carlo SE ≈ {se:.3f} for a "
        f"coverage of 0.95 and for a type-I error of 0.05. Bold: outside the target (coverage in "
        f"[{TARGET_COVERAGE[0]}, {TARGET_COVERAGE[1]}], type-I ≤ {TARGET_TYPE_I}); n.e.: not estimable; "
        "(a) same: question (a)'s three numbers are identical before and after.",
        "",
        "| S | n | seed sd | m×e | (a) cover Δ | (a) cover acc | (a) type-I | (a) same "
        "| (b) cover Δ before → after | (b) cover acc before → after | (b) type-I before → after |",
        "|---:|---:|---:|:---:|---:|---:|---:|:---:|---:|---:|---:|",
    ]
    counts = {"before": 0, "after": 0}
    pooled: dict[str, list[float]] = {}
    for c in after["cells"]:
        b = old[(c["seeds"], c["n"], c["seed_sd"], c["interaction"])]
        same = all(b[k] == c[k] for k in ("a_cover_diff", "a_cover_acc", "a_type_i"))
        cells = []
        for key, kind in (("b_cover_diff", "cover"), ("b_cover_acc", "cover"), ("b_type_i", "type")):
            cells.append(f"{show(b[key], kind)} → {show(c[key], kind)}")
            for when, cell in (("before", b), ("after", c)):
                if cell[key] is not None:
                    pooled.setdefault(f"{key} {when}", []).append(cell[key])
        for when, cell in (("before", b), ("after", c)):
            counts[when] += within_target(_row_of(cell))
        lines.append(
            f"| {c['seeds']} | {c['n']} | {c['seed_sd']:.2f} | {'yes' if c['interaction'] else 'no'} | "
            f"{show(c['a_cover_diff'], 'cover')} | {show(c['a_cover_acc'], 'cover')} | {show(c['a_type_i'], 'type')} "
            f"| {'✓' if same else '✗'} | {' | '.join(cells)} |"
        )
    mean = {k: sum(v) / len(v) for k, v in pooled.items()}
    n_cells = len(after["cells"])
    lines += [
        "",
        f"Cells with every estimable number inside the targets: {counts['before']} of {n_cells} before, "
        f"{counts['after']} of {n_cells} after. Mean over the estimable cells, before → after: (b) cover Δ "
        f"{mean['b_cover_diff before']:.3f} → {mean['b_cover_diff after']:.3f}, (b) cover acc "
        f"{mean['b_cover_acc before']:.3f} → {mean['b_cover_acc after']:.3f}, (b) type-I "
        f"{mean['b_type_i before']:.3f} → {mean['b_type_i after']:.3f}. Wall time: "
        f"{before.get('seconds') or math.nan:.0f} s before, {after.get('seconds') or math.nan:.0f} s after "
        "(one thread each, on the shared machine).",
    ]
    return "\n".join(lines)


def _row_of(cell: dict) -> Row:
    def number(v: float | None) -> float:
        return math.nan if v is None else float(v)

    return Row(
        Cell(cell["seeds"], cell["n"], cell["seed_sd"], cell["interaction"]),
        cell["replicates"],
        {q: number(cell[f"{q}_cover_diff"]) for q in "ab"},
        {q: number(cell[f"{q}_cover_acc"]) for q in "ab"},
        {q: number(cell[f"{q}_type_i"]) for q in "ab"},
    )


# ---------------------------------------------------------------- what the grid says about a report's row

# the crossed engine's grid as benchmarks/calibration.py measured it (`--json`), shipped with the package
# so that a report can say where its (b) intervals are known to cover less than they claim
KNOWN_GRID = Path(__file__).with_name("calibration_grid.json")


@functools.cache
def known_cells(path: Path = KNOWN_GRID) -> tuple[dict, ...]:
    """The measured cells (empty when the file is absent: no claim is made without a measurement)."""
    if not path.is_file():
        return ()
    return tuple(json.loads(path.read_text())["cells"])


@dataclass(frozen=True)
class KnownCoverage:
    """A calibration cell's measured coverage of a (b) interval, and the design it was measured at."""

    coverage: float
    seeds: int
    n: int
    seed_sd: float
    replicates: int


def known_coverage(
    seeds: int, n: int, seed_sd: float, kind: str = "acc", cells: Sequence[dict] | None = None
) -> KnownCoverage | None:
    """The measured coverage of (b)'s interval (`acc`: one method's, `diff`: a difference) nearest this design.

    The cell has exactly `seeds` seeds (no claim for a seed count the grid did not run), the largest
    grid seed sd not above the observed one (a spread at least that wide is known to behave so), and
    the grid n nearest in ratio; its two interaction settings are averaged (a report cannot tell
    them apart). None when no cell matches. The grid simulates a share (accuracy ≈ 0.8), so callers
    ask only for metrics on that scale.
    """
    cells = known_cells() if cells is None else cells
    if not math.isfinite(seed_sd) or seeds < 2 or n <= 0:
        return None
    here = [c for c in cells if c["seeds"] == seeds and c["seed_sd"] <= seed_sd + 1e-12]
    if not here:
        return None
    sd = max(c["seed_sd"] for c in here)
    size = min({c["n"] for c in here}, key=lambda m: abs(math.log(m / n)))
    chosen = [c for c in here if c["seed_sd"] == sd and c["n"] == size and c.get(f"b_cover_{kind}") is not None]
    if not chosen:
        return None
    replicates = sum(c["replicates"] for c in chosen)
    coverage = sum(c[f"b_cover_{kind}"] * c["replicates"] for c in chosen) / replicates
    return KnownCoverage(coverage, seeds, size, sd, replicates)


def known_low_coverage(
    seeds: int, n: int, seed_sd: float, kind: str = "acc", cells: Sequence[dict] | None = None
) -> KnownCoverage | None:
    """`known_coverage` when it is below the target's lower end (0.93), else None: what a table flags."""
    known = known_coverage(seeds, n, seed_sd, kind, cells)
    return known if known is not None and known.coverage < TARGET_COVERAGE[0] else None
