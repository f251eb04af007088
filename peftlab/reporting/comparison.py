"""The summary's statistics columns: accuracy intervals, paired differences against the reference, marks, power.

`add_statistics` takes the per-method summary (one row per experiment × label), the flattened
records and the runs' per-example test outcomes, and adds, per row:

- `test_accuracy_low/high` (+ `test_accuracy_interval`, how it was computed): the two-level
  bootstrap interval (peftlab/stats.py); `test_accuracy_ci95` becomes its larger half-width;
- `reference`, `vs_ref_diff/low/high`, `vs_ref_p`, `vs_ref_p_holm`, `vs_ref_seeds_agree`,
  `vs_ref_test`: the comparison against the experiment's reference method;
- `<metric>_mark`: "best" (significantly ahead of the runner-up), "tied" or empty;
- `mdd`, `mdd_n`, `mdd_seeds`: the experiment's minimum detectable difference in accuracy.

Records without predictions still get intervals (they need only accuracy and n per seed) and an
unpaired comparison labelled as such; nothing here raises on old records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from peftlab import stats
from peftlab.errors import UserError

METRIC_SOURCES = {  # summary metric name -> flattened record column (seed-level tests for the marks)
    "test_f1_macro": "metrics.test.f1_macro",
    "val_accuracy": "metrics.validation.accuracy",
    "learning_gain": "learning.gain",
}


def load_outcomes(results_dirs: Iterable[Path], records: list[dict[str, Any]], log: Callable[[str], None] = print):
    """{run_id: stats.SeedOutcomes} of the ok records whose predictions file is present and intact."""
    from peftlab.predictions import PredictionsError, read_predictions

    dirs = [Path(d) / "runs" for d in results_dirs]
    out: dict[str, stats.SeedOutcomes] = {}
    for record in records:
        entry = record.get("predictions")
        if record.get("status") != "ok" or not isinstance(entry, dict) or not entry.get("file"):
            continue
        runs_dir = next((d for d in dirs if (d / entry["file"]).is_file()), None)
        if runs_dir is None:
            log(f"warning: {record.get('run_id')}: predictions file {entry['file']} is missing; compared unpaired")
            continue
        try:
            test = read_predictions(runs_dir, record).get("test")
        except PredictionsError as err:
            log(f"warning: {err}; compared unpaired")
            continue
        if test is not None:
            gold, prediction = _label_ids(test.gold), _label_ids(test.prediction)
            out[str(record["run_id"])] = stats.SeedOutcomes(
                int(record.get("seed") or 0), test.ids, test.correct, gold, prediction
            )
    return out


def _label_ids(values: Any) -> Any:
    """An int array when every value is a label id (classification), else None (sft answers are text)."""
    values = list(values)
    if not values or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return None
    return np.asarray(values, dtype=np.int64)


def _f1_interval(summary: Any, row: Any, r: Any, group: Any, key: str) -> None:
    """Macro-F1's bootstrap interval from the predictions, when every ok run has label-id predictions."""
    labels = _column(group, "data.num_labels").dropna()
    if not r.complete or labels.empty or any(o.gold is None or o.prediction is None for o in r.outcomes):
        return
    interval = stats.macro_f1_interval([(o.gold, o.prediction) for o in r.outcomes], int(labels.max()), key=key)
    summary.loc[row, ["test_f1_macro_low", "test_f1_macro_high"]] = [interval.low, interval.high]
    summary.loc[row, "test_f1_macro_ci95"] = interval.half


def choose_reference(labels: list[str], wanted: str | None) -> str:
    """`wanted` when given (a one-line error if no such method), else `full` when present, else the first."""
    if wanted is not None:
        if wanted not in labels:
            allowed = ", ".join(labels)
            raise UserError(f"report reference {wanted!r} is not a method of these records; allowed: {allowed}")
        return wanted
    return "full" if "full" in labels else labels[0]


def _column(frame: Any, name: str) -> Any:
    import pandas as pd

    return pd.to_numeric(frame[name], errors="coerce") if name in frame.columns else pd.Series(np.nan, frame.index)


class _Runs:
    """The ok runs of one method: per-seed accuracy and n, and per-example outcomes where present."""

    def __init__(self, group: Any, outcomes: dict[str, stats.SeedOutcomes]):
        acc = _column(group, "metrics.test.accuracy")
        n = _column(group, "metrics.test.n").fillna(_column(group, "data.sizes.test"))
        keep = acc.notna()
        seeds = group["seed"][keep] if "seed" in group else [0] * int(keep.sum())
        self.seeds = [int(s) if s == s else 0 for s in seeds]
        self.accuracy = acc[keep].astype(float).tolist()
        self.n = [int(v) if v == v else 0 for v in n[keep]]
        ids = group["run_id"][keep].astype(str).tolist() if "run_id" in group else []
        self.outcomes = [outcomes[i] for i in ids if i in outcomes]

    @property
    def complete(self) -> bool:
        """Every ok run has its predictions (a partial set would pair on fewer seeds than the mean uses)."""
        return bool(self.accuracy) and len(self.outcomes) == len(self.accuracy)


def compare(a: str, runs_a: _Runs, b: str, runs_b: _Runs) -> stats.Comparison | None:
    """a − b: paired when both have predictions on shared seeds, else the labelled unpaired fallback."""
    if runs_a.complete and runs_b.complete:
        result = stats.paired_comparison(a, runs_a.outcomes, b, runs_b.outcomes)
        if result is not None:
            return result
        kind = stats.UNPAIRED
    else:
        kind = stats.NO_PREDICTIONS
    if not runs_a.accuracy or not runs_b.accuracy or not all(runs_a.n) or not all(runs_b.n):
        return None
    by_seed = dict(zip(runs_b.seeds, runs_b.accuracy, strict=True))
    result = stats.unpaired_comparison(a, runs_a.accuracy, runs_a.n, b, runs_b.accuracy, runs_b.n, kind=kind)
    if result is None:
        return None
    from dataclasses import replace

    diffs = tuple(x - by_seed[s] for s, x in zip(runs_a.seeds, runs_a.accuracy, strict=True) if s in by_seed)
    return replace(result, seed_diffs=diffs)


def _seed_test(values: dict[str, dict[int, float]]) -> Callable[[str, str], stats.Comparison | None]:
    """Paired t-test over shared seeds, for metrics without per-example outcomes (macro-F1, gain, ...)."""
    from scipy import stats as sps

    def test(a: str, b: str) -> stats.Comparison | None:
        shared = sorted(set(values[a]) & set(values[b]))
        diffs = [values[a][s] - values[b][s] for s in shared]
        if len(diffs) < 2:
            return None
        if np.allclose(diffs, diffs[0]):
            p = 0.0 if diffs[0] != 0 else 1.0
        else:
            p = float(sps.ttest_rel([values[a][s] for s in shared], [values[b][s] for s in shared]).pvalue)
        mean = float(np.mean(diffs))
        return stats.Comparison(a, b, mean, math.nan, math.nan, p, "paired t-test over seeds", tuple(diffs))

    return test


def add_statistics(summary: Any, frame: Any, outcomes: dict[str, Any], reference: str | None) -> Any:
    """The columns described in the module docstring, experiment by experiment."""
    if summary.empty:
        return summary
    summary = summary.copy()
    for name in ("test_accuracy_low", "test_accuracy_high", "test_f1_macro_low", "test_f1_macro_high",
                 "vs_ref_diff", "vs_ref_low", "vs_ref_high", "vs_ref_p",
                 "vs_ref_p_holm", "mdd", "mdd_n", "mdd_seeds", "mdd_discordance"):  # fmt: skip
        summary[name] = math.nan
    for name in ("test_accuracy_interval", "reference", "vs_ref_test", "vs_ref_seeds_agree", "test_accuracy_mark"):
        summary[name] = None
    experiments = frame["experiment"] if "experiment" in frame.columns else None
    ok = frame[frame["status"] == "ok"]
    for experiment in dict.fromkeys(summary["experiment"]):
        rows = summary.index[summary["experiment"] == experiment]
        in_exp = ok if experiments is None else ok[experiments[ok.index] == experiment]
        labels = [str(m) for m in summary.loc[rows, "method"]]
        runs = {label: _Runs(in_exp[in_exp["label"] == label], outcomes) for label in labels}
        for row, label in zip(rows, labels, strict=True):
            r = runs[label]
            interval = stats.method_interval(r.accuracy, r.n, key=f"{experiment}/{label}")
            if r.accuracy:
                summary.loc[row, ["test_accuracy_low", "test_accuracy_high"]] = [interval.low, interval.high]
                summary.loc[row, "test_accuracy_ci95"] = interval.half
                summary.loc[row, "test_accuracy_interval"] = interval.kind
            _f1_interval(summary, row, r, in_exp[in_exp["label"] == label], key=f"{experiment}/{label}")
        ref = choose_reference(labels, _reference_for(frame, experiment, reference, labels))
        summary.loc[rows, "reference"] = ref
        done: list[tuple[Any, stats.Comparison]] = []
        for row, label in zip(rows, labels, strict=True):
            if label != ref and runs[label].accuracy and runs[ref].accuracy:
                result = compare(label, runs[label], ref, runs[ref])
                if result is not None:
                    done.append((row, result))
        for (row, result), adjusted in zip(done, stats.holm([c.p for _, c in done]), strict=True):
            agree = f"{result.same_sign}/{len(result.seed_diffs)}" if result.seed_diffs else None
            if result.seed_diffs and not any(result.seed_diffs):
                agree = "all equal"  # no seed differs: no sign to agree on
            summary.loc[row, ["vs_ref_diff", "vs_ref_low", "vs_ref_high", "vs_ref_p", "vs_ref_p_holm"]] = [
                result.diff, result.low, result.high, result.p, adjusted,
            ]  # fmt: skip
            summary.loc[row, ["vs_ref_test", "vs_ref_seeds_agree"]] = [result.kind, agree]
        points = {label: float(np.mean(runs[label].accuracy)) for label in labels if runs[label].accuracy}
        marks = stats.best_marks(points, lambda a, b, runs=runs: compare(a, runs[a], b, runs[b]))
        for row, label in zip(rows, labels, strict=True):
            summary.loc[row, "test_accuracy_mark"] = marks.mark(label)
        _seed_marks(summary, rows, labels, in_exp)
        _power(summary, rows, runs, ref, [c for _, c in done])
    return summary


def _reference_for(frame: Any, experiment: Any, wanted: str | None, labels: list[str]) -> str | None:
    """The CLI's reference, else the records' `config.report.reference` (from the YAML), else None."""
    if wanted is not None:
        return wanted
    column = "config.report.reference"
    if column not in frame.columns:
        return None
    mask = frame["experiment"] == experiment if "experiment" in frame.columns else np.ones(len(frame), dtype=bool)
    values = frame.loc[mask, column].dropna().tolist()
    values = [v for v in values if v in labels]
    return max(set(values), key=values.count) if values else None


def _seed_marks(summary: Any, rows: Any, labels: list[str], in_exp: Any) -> None:
    """Best/tied marks of the seed-level metrics (macro-F1, gain: max; forgetting: min) by a paired t-test."""
    marked = [(name, source, True) for name, source in METRIC_SOURCES.items() if f"{name}_mean" in summary.columns]
    for column in [c for c in summary.columns if c.startswith("forgetting_") and c.endswith("_mean")]:
        probe = column.removeprefix("forgetting_").removesuffix("_mean")
        marked.append((f"forgetting_{probe}", f"forgetting.{probe}.delta", False))
    for name, source, maximise in marked:
        values: dict[str, dict[int, float]] = {label: {} for label in labels}
        if source in in_exp.columns:
            for label, seed, value in zip(in_exp["label"], in_exp["seed"], _column(in_exp, source), strict=True):
                if value == value and str(label) in values:
                    values[str(label)][int(seed) if seed == seed else 0] = float(value)
        points = {label: float(np.mean(list(v.values()))) for label, v in values.items() if v}
        marks = stats.best_marks(points, _seed_test(values), maximise=maximise)
        summary.loc[rows, f"{name}_mark"] = [marks.mark(label) for label in labels]


def _power(summary: Any, rows: Any, runs: dict[str, _Runs], ref: str, comparisons: list[stats.Comparison]) -> None:
    """Minimum detectable difference vs the reference, from its n and seeds and the observed discordance."""
    base = runs[ref]
    if not base.accuracy or not all(base.n):
        return
    n, seeds = int(min(base.n)), len(base.accuracy)
    paired = [c for c in comparisons if math.isfinite(c.discordant)]
    if paired:
        discordance = float(np.median([c.discordant for c in paired]))
    else:  # independent errors: P(exactly one right) at the reference's accuracy
        p = float(np.mean(base.accuracy))
        discordance = 2 * p * (1 - p)
    spreads = []
    for c in comparisons:
        if len(c.seed_diffs) >= 2:
            var = float(np.var(c.seed_diffs, ddof=1)) - discordance / n
            spreads.append(max(var, 0.0))
    seed_sd = math.sqrt(float(np.median(spreads))) if spreads else 0.0
    mdd = stats.minimum_detectable_difference(n, seeds, discordance, seed_sd)
    summary.loc[rows, ["mdd", "mdd_n", "mdd_seeds", "mdd_discordance"]] = [mdd, n, seeds, discordance]


def rank_line_differences(frame: Any, outcomes: dict[str, Any], sweep: Any, reference: str | None) -> Any:
    """Each cell of a rank table against the SAME line's reference rank: paired Δ, interval, Holm p per line.

    The summary pairs every variant with one reference (`lora-qv[r=8]`), so a `lora-q` cell's Δ
    mixes the rank with the target set. "Which ranks differ from r = 8?" is asked within a line:
    the reference rank is the rank of `report.reference` when it names a swept variant, else 8
    when every line has it, else each line's lowest rank. Holm runs over the ranks of a line (the
    family the question is about). Adds `line_ref_rank`, `vs_line_diff/low/high/p_holm`,
    `vs_line_seeds_agree` to a copy of `sweep`.
    """
    sweep = sweep.copy()
    for name in ("line_ref_rank", "vs_line_diff", "vs_line_low", "vs_line_high", "vs_line_p_holm"):
        sweep[name] = math.nan
    sweep["vs_line_seeds_agree"] = None
    if sweep.empty:
        return sweep
    ranks_by_line = {line: set(part["rank"]) for line, part in sweep.groupby("line", sort=False)}
    ref_rank = None
    if reference is not None and reference in set(sweep["label"]):
        ref_rank = int(sweep.loc[sweep["label"] == reference, "rank"].iloc[0])
    elif all(8 in ranks for ranks in ranks_by_line.values()):
        ref_rank = 8
    ok = frame[frame["status"] == "ok"]
    for line, part in sweep.groupby("line", sort=False):
        base_rank = ref_rank if ref_rank in ranks_by_line[line] else min(ranks_by_line[line])
        base_label = str(part.loc[part["rank"] == base_rank, "label"].iloc[0])
        sweep.loc[part.index, "line_ref_rank"] = base_rank
        base = _Runs(ok[ok["label"] == base_label], outcomes)
        done = []
        for index, label in zip(part.index, part["label"], strict=True):
            if label == base_label:
                continue
            result = compare(str(label), _Runs(ok[ok["label"] == label], outcomes), base_label, base)
            if result is not None:
                done.append((index, result))
        for (index, result), adjusted in zip(done, stats.holm([c.p for _, c in done]), strict=True):
            sweep.loc[index, ["vs_line_diff", "vs_line_low", "vs_line_high", "vs_line_p_holm"]] = [
                result.diff, result.low, result.high, adjusted,
            ]  # fmt: skip
            if result.seed_diffs:
                sweep.loc[index, "vs_line_seeds_agree"] = f"{result.same_sign}/{len(result.seed_diffs)}"
    return sweep
