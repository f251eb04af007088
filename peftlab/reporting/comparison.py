"""The summary's statistics columns: crossed intervals, paired differences vs the reference, marks, power.

Seeds and test examples are crossed (every seed scores the same examples), so the statistics come
from peftlab/stats/crossed.py and answer two labelled questions (docs/statistics.md):

- (a) *these trained models*: test examples random, checkpoints fixed;
- (b) *this training recipe*: seeds and test examples both random; not estimable at one seed.

Which metrics, and which way is better, is the task's declaration under the choice the records
carry in their `task` block (peftlab/task_specs `TaskChoice`, resolved once by config): every declared metric with a
`statistic` is recomputed from the predictions files' per-example columns by the engine
(`crossed.metric_for`), its primary metric is the headline and the default of the Δ columns.
The headline columns answer (b) where it is estimable, else (a), and say which (`*_question`).
`add_statistics` adds, per row of the per-method summary:

- `task`, `primary_metric`, `primary_direction`: what the tables' headline column shows;
- for each resampled metric m the task declares: `test_<m>_low/high`
  (+ `test_<m>_question`, `test_<m>_interval`), the headline interval; `test_<m>_{a,b}_low/high`
  both questions'; `test_<m>_ci95` the larger half; `test_<m>_mark`;
- `reference`, `vs_ref_metric`, `vs_ref_{a,b}_{diff,low,high,p,p_holm,mdd}` and the headline
  `vs_ref_diff/low/high/p/p_holm/mdd/question`: the comparison against the experiment's reference,
  Holm-adjusted over the declared family (every method vs the reference, one metric, one question);
  `test_<m>_b_coverage(_cell)`, `vs_ref_b_coverage(_cell)`: the calibration's measured coverage of the
  (b) interval where it is known to be below target at this row's seeds and seed spread;
  `vs_ref_seeds_to_resolve`, `vs_ref_examples_to_resolve`: what would resolve the observed Δ, projected
  from the headline interval's own variance and t df, at `vs_ref_alpha`, the row's Holm step-down α′;
- `<metric>_mark`: "best" (significantly ahead of EVERY other method in the metric's direction:
  intersection–union) or "tied";
- costs (`peak_memory_mb`, `train_tokens_per_s`, a sampling task's `generation_tokens_per_s`): an interval
  over seeds and a mark only where the difference is beyond seed noise.

Records without predictions still get an interval and comparison of a primary metric that is a
proportion of correct examples (statistic `mean:correct`), both from the labelled fallback, the old
nested bootstrap (peftlab/stats/nested.py, imported as `fallback` and called only for such records;
its numbers say `nested (no predictions)` in the question column). Asking for a metric's statistics
explicitly (`metric=`) on runs without predictions, or for a metric the task does not produce, is a
UserError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from peftlab.errors import UserError
from peftlab.stats import crossed
from peftlab.stats import nested as fallback  # labelled fallback for records without predictions only

if TYPE_CHECKING:
    from peftlab.records.record import RunRecord
    from peftlab.task_specs import TaskChoice, TaskSpec

METRIC_SOURCES = {  # summary metric name -> flattened record column (seed-level tests for the marks)
    "learning_gain": "learning.gain",
}
PROPORTION = "mean:correct"  # a metric that is the share of correct examples: the nested fallback can bound it
COST_SOURCES = {  # sampled costs: they vary with the seed and the machine's load
    "peak_memory_mb": ("memory.peak_mb", False),
    "train_state_mb": ("memory.training_state.total_mb", False),
    "train_tokens_per_s": ("speed.train_tokens_per_s", True),
    "generation_tokens_per_s": ("speed.generation_tokens_per_s", True),  # a sampling task's rollouts
}
NESTED = fallback.DESCRIPTION
SEEDS_ONLY = "(b) seeds only: Welch t-test over per-seed values"
DEFAULT_TASK = "classification"  # records written before `config.task` existed


@dataclass(frozen=True)
class Outcome:
    """One run's per-example test outputs: its seed, the example ids and every column its task keeps.

    `columns` holds what the predictions file has besides `split`/`id` (peftlab/records/predictions.py):
    `gold`, `prediction`, `correct`, and e.g. BLEU's list-valued `matches`/`totals`.
    """

    seed: int
    ids: np.ndarray
    columns: dict[str, Any]

    @property
    def correct(self) -> np.ndarray:
        n = len(self.ids)
        return np.asarray([math.nan if c is None else float(c) for c in self.columns.get("correct", [None] * n)])

    @property
    def gold(self) -> np.ndarray | None:
        return _label_ids(self.columns.get("gold", []))

    @property
    def prediction(self) -> np.ndarray | None:
        return _label_ids(self.columns.get("prediction", []))


def load_outcomes(results_dirs: Iterable[Path], records: list[RunRecord], log: Callable[[str], None] = print):
    """{run_id: Outcome} of the ok records whose predictions file is present and intact (its test split)."""
    from peftlab.records.predictions import PredictionsError, read_predictions

    dirs = [Path(d) / "runs" for d in results_dirs]
    out: dict[str, Outcome] = {}
    for record in records:
        entry = record.predictions
        if record.status != "ok" or entry is None:
            continue
        runs_dir = next((d for d in dirs if (d / entry.file).is_file()), None)
        if runs_dir is None:
            log(f"warning: {record.run_id}: predictions file {entry.file} is missing; compared unpaired")
            continue
        try:
            test = read_predictions(runs_dir, record).get("test")
        except PredictionsError as err:
            log(f"warning: {err}; compared unpaired")
            continue
        if test is not None:
            out[record.run_id] = Outcome(record.seed or 0, test.ids, dict(test.columns))
    return out


def _label_ids(values: Any) -> Any:
    """An int array when every value is a label id (classification), else None (sft answers are text)."""
    values = list(values)
    if not values or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return None
    return np.asarray(values, dtype=np.int64)


def _present(values: Any) -> bool:
    """A column every example has (None marks an example the file did not give it)."""
    return len(values) > 0 and all(v is not None for v in values)


def experiment_choice(in_exp: Any) -> TaskChoice | None:
    """What an experiment's runs are scored by: their records' `task` block (config resolved it once).

    The most common block over the runs; None where no record names a metric (a task this
    peftlab does not know, or records from before `config.task` existed).
    """
    from peftlab.task_specs import TaskChoice

    columns = [f"task.{key}" for key in ("name", "primary", "direction", "statistic", "choice")]
    if not all(c in in_exp.columns for c in columns[:3]):
        return None
    blocks = [
        tuple(v if isinstance(v, str) and v else None for v in values)
        for values in in_exp.reindex(columns=columns).itertuples(index=False)
    ]
    blocks = [b for b in blocks if b[0] and b[1] and b[2]]
    if not blocks:
        return None
    return TaskChoice(*max(set(blocks), key=blocks.count))


def experiment_task(in_exp: Any) -> TaskSpec:
    """The task declaration of an experiment's runs under their records' choice (`experiment_choice`).

    Records without a task block are classification (they predate the key); a task or choice the
    registry does not know falls back to the plain declaration (the report must still read old records).
    """
    from peftlab.task_specs import get_task_spec

    chosen = experiment_choice(in_exp)
    if chosen is not None:
        try:
            return chosen.spec
        except KeyError:
            pass
    name = chosen.name if chosen is not None else DEFAULT_TASK
    try:
        return get_task_spec(name)
    except KeyError:
        return get_task_spec(DEFAULT_TASK)


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
    """The ok runs of one method that report the task's primary metric, and their per-example outputs."""

    def __init__(
        self,
        label: str,
        group: Any,
        outcomes: dict[str, Outcome],
        num_labels: int | None,
        primary: str,
        proportion: bool = False,
    ):
        self.label = label
        self.primary = primary
        value = _column(group, f"metrics.test.{primary}")
        n = _column(group, "metrics.test.n").fillna(_column(group, "data.sizes.test"))
        keep = value.notna()
        seeds = group["seed"][keep] if "seed" in group else [0] * int(keep.sum())
        self.seeds = [int(s) if s == s else 0 for s in seeds]
        self.values = value[keep].astype(float).tolist()  # the records' own primary metric, per run
        # the primary metric again when it is a proportion of correct examples (what the nested fallback bounds)
        self.proportion = self.values if proportion else []
        self.n = [int(v) if v == v else 0 for v in n[keep]]
        ids = group["run_id"][keep].astype(str).tolist() if "run_id" in group else []
        self.outcomes = [outcomes[i] for i in ids if i in outcomes]
        self.num_labels = num_labels

    @property
    def complete(self) -> bool:
        """Every run has its predictions (a partial set would pair on fewer seeds than the mean uses)."""
        return bool(self.values) and len(self.outcomes) == len(self.values)

    def supports(self, metric: crossed.Metric, statistic: str) -> bool:
        """Every run's file has the metric's per-example columns (label ids for the class metrics)."""
        if not self.complete:
            return False
        for o in self.outcomes:
            if not all(_present(o.columns.get(f, [])) for f in metric.fields):
                return False
            if statistic in crossed.CLASS_STATISTICS and (o.gold is None or o.prediction is None):
                return False
        return True

    def crossed(self, metric: crossed.Metric, statistic: str) -> crossed.Runs:
        per_seed = []
        for o in self.outcomes:
            columns = {f: o.columns[f] for f in metric.fields}
            if statistic in crossed.CLASS_STATISTICS:
                columns = {"gold": o.gold, "prediction": o.prediction}
            elif "correct" in columns:
                columns["correct"] = o.correct
            per_seed.append((o.seed, o.ids, columns))
        return crossed.runs_from_seeds(self.label, per_seed)


class _Experiment:
    """One experiment's methods, its task's declared metrics, and a cache of the engine's results."""

    def __init__(self, key: str, runs: dict[str, _Runs], task: TaskSpec | None = None, num_labels: int | None = None):
        from peftlab.task_specs import get_task_spec

        self.key, self.runs = key, runs
        self.task = task or get_task_spec(DEFAULT_TASK)
        self.num_labels = num_labels
        self._cache: dict[tuple, crossed.Result | None] = {}

    def proportional(self, metric: str) -> bool:
        """`metric` is the primary one and a share of correct examples: the nested fallback may bound it."""
        return metric == self.task.primary and self.statistic(metric) == PROPORTION

    def statistic(self, metric: str) -> str | None:
        names = self.task.metric_names()
        return self.task.metric(metric).statistic if metric in names else None

    def engine_metric(self, metric: str) -> crossed.Metric | None:
        """The engine's metric for a declared metric name (None: the task does not resample it)."""
        statistic = self.statistic(metric)
        if statistic is None:
            return None
        return crossed.metric_for(statistic, metric, self.num_labels)

    def supports(self, label: str, metric: str) -> bool:
        m = self.engine_metric(metric)
        return m is not None and self.runs[label].supports(m, self.statistic(metric) or "")

    def estimate(self, label: str, metric: str) -> crossed.Result | None:
        k = ("one", label, metric)
        if k not in self._cache:
            m, statistic = self.engine_metric(metric), self.statistic(metric) or ""
            self._cache[k] = (
                crossed.estimate(self.runs[label].crossed(m, statistic), m, key=f"{self.key}/{label}")
                if m is not None and self.supports(label, metric)
                else None
            )
        return self._cache[k]

    def difference(self, a: str, b: str, metric: str) -> crossed.Result | None:
        k = ("diff", a, b, metric)
        if k not in self._cache:
            m = self.engine_metric(metric)
            result = None
            if m is not None and self.supports(a, metric) and self.supports(b, metric):
                statistic = self.statistic(metric) or ""
                try:
                    result = crossed.difference(
                        self.runs[a].crossed(m, statistic), self.runs[b].crossed(m, statistic), m,
                        key=f"{self.key}/{a}|{b}",
                    )  # fmt: skip
                except ValueError:  # no shared test example
                    result = None
            self._cache[k] = result
        return self._cache[k]

    def nested(self, a: str, b: str) -> fallback.Comparison | None:
        """The old nested bootstrap of a proportion, for records without predictions (labelled wherever it shows)."""
        ra, rb = self.runs[a], self.runs[b]
        acc_a, acc_b = ra.proportion, rb.proportion
        usable = all(v == v for v in acc_a + acc_b) and all(ra.n) and all(rb.n)
        if not acc_a or not acc_b or not usable:
            return None
        return fallback.unpaired_comparison(a, acc_a, ra.n, b, acc_b, rb.n, kind=NESTED)

    def test(self, metric: str) -> Callable[[str, str], tuple[float, str] | None]:
        """p of a − b for the marks: the engine's headline question, else the nested fallback (a proportion)."""

        def test(a: str, b: str) -> tuple[float, str] | None:
            result = self.difference(a, b, metric)
            if result is not None:
                return result.headline.p, result.headline.label
            if self.proportional(metric):
                old = self.nested(a, b)
                if old is not None:
                    return old.p, fallback.LABEL
            return None

        return test


def resampled_metrics(task: TaskSpec) -> list[str]:
    """The task's metrics the engine can resample (a declared `statistic`), primary first."""
    names = [m.name for m in task.metrics if m.statistic]
    return sorted(names, key=lambda m: m != task.primary)


def _check_metric(metric: str | None, experiment: Any, exp: _Experiment) -> str:
    """The metric the Δ columns compare (default: the task's primary); a one-line UserError for a bad request."""
    task = exp.task
    if metric is None:
        return task.primary
    offered = [m for m in resampled_metrics(task) if _produced(exp, m)]
    if metric not in resampled_metrics(task):
        raise UserError(
            f"report metric {metric!r} is not produced by task {task.name} ({experiment}); "
            f"allowed: {', '.join(offered) or 'none'}"
        )
    runs = {label: r for label, r in exp.runs.items() if r.values}
    lacking = [label for label, r in runs.items() if not r.complete]
    if lacking:
        raise UserError(
            f"statistics on {metric} need the runs' predictions files; {experiment}: {lacking[0]} has runs without "
            f"(re-run them, or drop --metric for the nested fallback on {task.primary})"
        )
    bad = [label for label in runs if not exp.supports(label, metric)]
    if bad:
        classes = exp.statistic(metric) in crossed.CLASS_STATISTICS
        need = "label-id predictions" if classes else "its per-example outputs"
        raise UserError(
            f"report metric {metric!r} is not produced by task {task.name} ({experiment}: {bad[0]} has no {need}); "
            f"allowed: {', '.join(offered) or 'none'}"
        )
    return metric


def _produced(exp: _Experiment, metric: str) -> bool:
    runs = [label for label, r in exp.runs.items() if r.values]
    return bool(runs) and all(exp.supports(label, metric) for label in runs)


HEADLINE = ("diff", "low", "high", "p", "p_holm", "mdd")


def add_statistics(
    summary: Any, frame: Any, outcomes: dict[str, Any], reference: str | None, metric: str | None = None
) -> Any:
    """The columns described in the module docstring, experiment by experiment, for the task's metrics."""
    if summary.empty:
        return summary
    summary = summary.copy()
    experiments = frame["experiment"] if "experiment" in frame.columns else None
    ok = frame[frame["status"] == "ok"]
    prepared = []
    for experiment in dict.fromkeys(summary["experiment"]):
        rows = summary.index[summary["experiment"] == experiment]
        in_exp = ok if experiments is None else ok[experiments[ok.index] == experiment]
        task = experiment_task(in_exp if len(in_exp) else frame)
        labels = [str(m) for m in summary.loc[rows, "method"]]
        num = _column(in_exp, "data.num_labels").dropna()
        num_labels = int(num.max()) if len(num) else None
        proportion = task.metric(task.primary).statistic == PROPORTION
        runs = {
            label: _Runs(label, in_exp[in_exp["label"] == label], outcomes, num_labels, task.primary, proportion)
            for label in labels
        }
        exp = _Experiment(str(experiment), runs, task, num_labels)
        chosen = _check_metric(metric, experiment, exp)  # every experiment is checked before anything is computed
        prepared.append((experiment, rows, labels, in_exp, exp, chosen))
    names = [m for *_, exp, _ in prepared for m in resampled_metrics(exp.task)]
    _init_columns(summary, list(dict.fromkeys(names)))
    for experiment, rows, labels, in_exp, exp, chosen in prepared:
        task = exp.task
        summary.loc[rows, "task"] = task.name
        summary.loc[rows, "primary_metric"] = task.primary
        summary.loc[rows, "primary_direction"] = task.primary_metric.direction
        measured = [m for m in resampled_metrics(task) if m == task.primary or _has_values(in_exp, m)]
        for name in measured:
            _means(summary, rows, labels, in_exp, name)
        for row, label in zip(rows, labels, strict=True):
            _intervals(summary, row, exp, label, measured)
        ref = choose_reference(labels, _reference_for(frame, experiment, reference, labels))
        summary.loc[rows, "reference"] = ref
        summary.loc[rows, "vs_ref_metric"] = chosen
        _reference_comparisons(summary, rows, labels, exp, ref, chosen)
        for name in measured:
            points = {}
            for label in labels:
                value = summary.loc[rows[labels.index(label)], f"test_{name}_mean"]
                if value == value and (exp.proportional(name) or exp.estimate(label, name) is not None):
                    points[label] = float(value)
            if not exp.proportional(name) and len(points) < len([r for r in exp.runs.values() if r.values]):
                continue  # without every run's per-example outputs: no test, no mark
            maximise = task.metric(name).direction == "max"
            marks = crossed.best_marks(points, exp.test(name), maximise=maximise)
            summary.loc[rows, f"test_{name}_mark"] = [marks.mark(label) for label in labels]
        _unresampled_marks(summary, rows, labels, in_exp, task)
        _seed_marks(summary, rows, labels, in_exp, task)
        _cost_marks(summary, rows, labels, in_exp)
    return summary


def _unresampled_marks(summary: Any, rows: Any, labels: list[str], in_exp: Any, task: TaskSpec) -> None:
    """A declared test metric with no per-example statistic (regression's MSE): Welch over seeds, its direction.

    Without a mark column the tables would bold the best displayed value, as for a deterministic cost.
    """
    for spec in task.metrics:
        if spec.statistic or f"test_{spec.name}_mean" not in summary.columns:
            continue
        values = _per_seed(in_exp, labels, f"metrics.test.{spec.name}")
        points = {label: float(np.mean(list(v.values()))) for label, v in values.items() if v}
        marks = crossed.best_marks(points, _seed_test(values), maximise=spec.direction == "max")
        if f"test_{spec.name}_mark" not in summary.columns:
            summary[f"test_{spec.name}_mark"] = None
        summary.loc[rows, f"test_{spec.name}_mark"] = [marks.mark(label) for label in labels]


def _init_columns(summary: Any, names: list[str]) -> None:
    numbers = ["vs_ref_seeds_to_resolve", "vs_ref_examples_to_resolve", "vs_ref_alpha", "vs_ref_n"]
    for m in names:
        numbers += [f"test_{m}_low", f"test_{m}_high"]
        numbers += [f"test_{m}_{q}_{end}" for q in "ab" for end in ("low", "high")]
    numbers += [f"vs_ref_{part}" for part in HEADLINE] + [f"vs_ref_{q}_{p}" for q in "ab" for p in HEADLINE]
    numbers += [f"{c}_{end}" for c in COST_SOURCES for end in ("low", "high")]
    for name in numbers:
        summary[name] = math.nan
    labels_ = ["reference", "vs_ref_test", "vs_ref_question", "vs_ref_metric", "task", "primary_metric"]
    labels_ += ["primary_direction"]
    for m in names:
        labels_ += [f"test_{m}_interval", f"test_{m}_question", f"test_{m}_mark"]
    for name in labels_:
        summary[name] = None


def _has_values(in_exp: Any, metric: str) -> bool:
    return bool(_column(in_exp, f"metrics.test.{metric}").notna().any())


def _means(summary: Any, rows: Any, labels: list[str], in_exp: Any, metric: str) -> None:
    """`test_<m>_mean`/`_ci95` from the records where the frame did not add them (a metric it does not list)."""
    mean, half = f"test_{metric}_mean", f"test_{metric}_ci95"
    for column in (mean, half):
        if column not in summary.columns:
            summary[column] = math.nan
    for row, label in zip(rows, labels, strict=True):
        if summary.loc[row, mean] == summary.loc[row, mean]:
            continue
        values = _column(in_exp[in_exp["label"] == label], f"metrics.test.{metric}").dropna().tolist()
        if values:
            summary.loc[row, [mean, half]] = [sum(values) / len(values), crossed.seed_half_width(values)]


def _intervals(summary: Any, row: Any, exp: _Experiment, label: str, metrics: list[str]) -> None:
    r = exp.runs[label]
    if not r.values:
        return
    for name in metrics:
        result = exp.estimate(label, name)
        if result is not None:
            _put(summary, row, f"test_{name}", result)
            _flag_coverage(summary, row, f"test_{name}_b", result, exp.engine_metric(name), "acc")
        elif exp.proportional(name) and r.proportion and all(a == a for a in r.proportion) and all(r.n):
            # no predictions: the old nested interval, labelled
            interval = fallback.method_interval(r.proportion, r.n, key=f"{exp.key}/{label}")
            summary.loc[row, [f"test_{name}_low", f"test_{name}_high"]] = [interval.low, interval.high]
            summary.loc[row, f"test_{name}_ci95"] = interval.half
            summary.loc[row, f"test_{name}_interval"] = f"{interval.kind}; {NESTED}"
            summary.loc[row, f"test_{name}_question"] = "nested"


def _flag_coverage(
    summary: Any, row: Any, prefix: str, result: crossed.Result, metric: crossed.Metric | None, kind: str
) -> None:
    """`<prefix>_coverage`/`_coverage_cell`: the calibration's measured (b) coverage where it is known to be low.

    Looked up in the calibration grid (peftlab/stats/calibration_grid.json, written by
    benchmarks/calibration.py) at this row's seeds, test size and widest observed seed spread;
    left empty where the grid has no such cell or measured the target. The grid simulates a share
    near 0.8, so only share metrics (accuracy, exact match: a mean of a 0..1 column) are looked up.
    """
    from peftlab.stats import calibration

    if metric is None or not (metric.linear and metric.bounds == (0.0, 1.0)) or not result.b.estimable:
        return
    spreads = [float(np.std(v, ddof=1)) for v in result.seed_values if len(v) > 1]
    if not spreads:
        return
    known = calibration.known_low_coverage(min(result.seeds), result.n, max(spreads), kind)
    if known is None:
        return
    if f"{prefix}_coverage" not in summary.columns:
        summary[f"{prefix}_coverage"] = math.nan
        summary[f"{prefix}_coverage_cell"] = None
    summary.loc[row, f"{prefix}_coverage"] = known.coverage
    summary.loc[row, f"{prefix}_coverage_cell"] = (
        f"{known.seeds} seeds, seed sd ≥ {known.seed_sd:.2f}, n = {known.n}: {known.replicates} replicates"
    )


def _put(summary: Any, row: Any, name: str, result: crossed.Result) -> None:
    head = result.headline
    for q in (crossed.MODELS, crossed.RECIPE):
        answer = result.answer(q)
        summary.loc[row, [f"{name}_{q}_low", f"{name}_{q}_high"]] = [answer.low, answer.high]
    summary.loc[row, [f"{name}_low", f"{name}_high"]] = [head.low, head.high]
    summary.loc[row, f"{name}_ci95"] = max(head.estimate - head.low, head.high - head.estimate)
    summary.loc[row, f"{name}_question"] = head.question
    summary.loc[row, f"{name}_interval"] = crossed.QUESTION[head.question]


def _reference_comparisons(summary: Any, rows: Any, labels: list[str], exp: _Experiment, ref: str, metric: str) -> None:
    """Each method − the reference for both questions; Holm over the family (methods vs reference) per question."""
    done: list[tuple[Any, crossed.Result | fallback.Comparison]] = []
    for row, label in zip(rows, labels, strict=True):
        if label == ref or not exp.runs[label].values or not exp.runs[ref].values:
            continue
        result = exp.difference(label, ref, metric)
        if result is None and exp.proportional(metric):
            result = exp.nested(label, ref)
        if result is not None:
            done.append((row, result))
    engine = [(row, r) for row, r in done if isinstance(r, crossed.Result)]
    for q in (crossed.MODELS, crossed.RECIPE):
        adjusted = crossed.holm([r.answer(q).p for _, r in engine])
        for (row, r), p_holm in zip(engine, adjusted, strict=True):
            a = r.answer(q)
            values = [a.estimate, a.low, a.high, a.p, p_holm, a.mdd()]
            summary.loc[row, [f"vs_ref_{q}_{part}" for part in HEADLINE]] = values
    for k, (row, r) in enumerate(engine):
        q = r.headline.question
        summary.loc[row, [f"vs_ref_{part}" for part in HEADLINE]] = [
            summary.loc[row, f"vs_ref_{q}_{part}"] for part in HEADLINE
        ]
        summary.loc[row, ["vs_ref_question", "vs_ref_test", "vs_ref_n"]] = [q, crossed.QUESTION[q], r.n]
        _flag_coverage(summary, row, "vs_ref_b", r, exp.engine_metric(metric), "diff")
        # what would resolve Δ faces the family's Holm, as its p does: the step-down α′ of this row
        alpha = crossed.holm_threshold([o.answer(q).p for j, (_, o) in enumerate(engine) if j != k])
        summary.loc[row, "vs_ref_alpha"] = alpha
        if q == crossed.RECIPE:
            summary.loc[row, "vs_ref_seeds_to_resolve"] = r.seeds_to_resolve(alpha)
        summary.loc[row, "vs_ref_examples_to_resolve"] = r.examples_to_resolve(q, alpha)
    nested = [(row, r) for row, r in done if isinstance(r, fallback.Comparison)]
    for (row, r), p_holm in zip(nested, crossed.holm([r.p for _, r in nested]), strict=True):
        summary.loc[row, ["vs_ref_diff", "vs_ref_low", "vs_ref_high", "vs_ref_p", "vs_ref_p_holm"]] = [
            r.diff, r.low, r.high, r.p, p_holm,
        ]  # fmt: skip
        summary.loc[row, ["vs_ref_question", "vs_ref_test"]] = ["nested", NESTED]


def _reference_for(frame: Any, experiment: Any, wanted: str | None, labels: list[str]) -> str | None:
    """The CLI's reference, else the records' `config.report.reference` (from the YAML), else None.

    A reference the records name that is no method of the experiment is a one-line error: the
    comparison the YAML asked for cannot be made, and silently using another would answer a
    different question.
    """
    if wanted is not None:
        return wanted
    column = "config.report.reference"
    if column not in frame.columns:
        return None
    mask = frame["experiment"] == experiment if "experiment" in frame.columns else np.ones(len(frame), dtype=bool)
    values = [v for v in frame.loc[mask, column].dropna().tolist() if isinstance(v, str) and v]
    if not values:
        return None
    inside = [v for v in values if v in labels]
    if not inside:
        raise UserError(
            f"report.reference {values[0]!r} of experiment {experiment} names no method of its records; "
            f"allowed: {', '.join(labels)}"
        )
    return max(set(inside), key=inside.count)


def _per_seed(in_exp: Any, labels: list[str], source: str) -> dict[str, dict[int, float]]:
    values: dict[str, dict[int, float]] = {label: {} for label in labels}
    if source in in_exp.columns:
        seeds = in_exp["seed"] if "seed" in in_exp.columns else [0] * len(in_exp)
        for label, seed, value in zip(in_exp["label"], seeds, _column(in_exp, source), strict=True):
            if value == value and str(label) in values:
                values[str(label)][int(seed) if seed == seed else 0] = float(value)
    return values


def _seed_test(values: dict[str, dict[int, float]]) -> Callable[[str, str], tuple[float, str] | None]:
    """Welch t over seeds for per-seed numbers without per-example outputs (validation score, gain, costs)."""

    def test(a: str, b: str) -> tuple[float, str] | None:
        p = crossed.seed_test(list(values[a].values()), list(values[b].values()))
        return (p, SEEDS_ONLY) if math.isfinite(p) else None

    return test


def _seed_marks(summary: Any, rows: Any, labels: list[str], in_exp: Any, task: TaskSpec) -> None:
    """Best/tied marks of the seed-level metrics (validation score: its direction; gain: max; forgetting: min):
    intersection–union of Welch tests."""
    sources = {f"val_{task.primary}": (f"metrics.validation.{task.primary}", task.primary_metric.direction == "max")}
    sources |= {name: (source, True) for name, source in METRIC_SOURCES.items()}
    marked = [(name, source, up) for name, (source, up) in sources.items() if f"{name}_mean" in summary.columns]
    for column in [c for c in summary.columns if c.startswith("forgetting_") and c.endswith("_mean")]:
        probe = column.removeprefix("forgetting_").removesuffix("_mean")
        marked.append((f"forgetting_{probe}", f"forgetting.{probe}.delta", False))
    for name, source, maximise in marked:
        values = _per_seed(in_exp, labels, source)
        points = {label: float(np.mean(list(v.values()))) for label, v in values.items() if v}
        marks = crossed.best_marks(points, _seed_test(values), maximise=maximise)
        summary.loc[rows, f"{name}_mark"] = [marks.mark(label) for label in labels]


def _cost_marks(summary: Any, rows: Any, labels: list[str], in_exp: Any) -> None:
    """Sampled costs: t-interval over seeds, and bold only where beyond seed noise (IUT of Welch tests).

    Rows that train nothing (zero-shot: no trainable parameter) do not contest a cost.
    """
    trains = {
        label: bool(_column(in_exp[in_exp["label"] == label], "params.trainable").fillna(0).max() > 0)
        for label in labels
    }
    for name, (source, maximise) in COST_SOURCES.items():
        if name not in summary.columns:
            continue
        values = _per_seed(in_exp, labels, source)
        for row, label in zip(rows, labels, strict=True):
            summary.loc[row, [f"{name}_low", f"{name}_high"]] = list(
                crossed.seed_interval(list(values[label].values()), bounds=(0.0, math.inf))  # costs are ≥ 0
            )
        points = {label: float(np.mean(list(v.values()))) for label, v in values.items() if v and trains[label]}
        marks = crossed.best_marks(points, _seed_test(values), maximise=maximise)
        summary.loc[rows, f"{name}_mark"] = [marks.mark(label) for label in labels]


def rank_line_differences(frame: Any, outcomes: dict[str, Any], sweep: Any, reference: str | None) -> Any:
    """Each cell of a rank table against the SAME line's reference rank: paired Δ, interval, Holm p per line.

    The summary pairs every variant with one reference (`lora-qv[r=8]`), so a `lora-q` cell's Δ
    mixes the rank with the target set. "Which ranks differ from r = 8?" is asked within a line:
    the reference rank is the rank of `report.reference` when it names a swept variant, else 8
    when every line has it, else each line's lowest rank. Holm runs over the ranks of a line (the
    family the question is about), per question. Adds `line_ref_rank`, `vs_line_diff/low/high/p_holm`
    and `vs_line_question` (the headline: (b) where estimable, else (a)) to a copy of `sweep`.
    """
    sweep = sweep.copy()
    for name in ("line_ref_rank", "vs_line_diff", "vs_line_low", "vs_line_high", "vs_line_p_holm"):
        sweep[name] = math.nan
    sweep["vs_line_question"] = None
    if sweep.empty:
        return sweep
    ranks_by_line = {line: set(part["rank"]) for line, part in sweep.groupby("line", sort=False)}
    ref_rank = None
    if reference is not None and reference in set(sweep["label"]):
        ref_rank = int(sweep.loc[sweep["label"] == reference, "rank"].iloc[0])
    elif all(8 in ranks for ranks in ranks_by_line.values()):
        ref_rank = 8
    ok = frame[frame["status"] == "ok"]
    num = _column(ok, "data.num_labels").dropna()
    num_labels = int(num.max()) if len(num) else None
    task = experiment_task(ok if len(ok) else frame)  # the records' chosen metric: the one a rank is judged by
    proportion = task.metric(task.primary).statistic == PROPORTION
    for line, part in sweep.groupby("line", sort=False):
        base_rank = ref_rank if ref_rank in ranks_by_line[line] else min(ranks_by_line[line])
        base_label = str(part.loc[part["rank"] == base_rank, "label"].iloc[0])
        sweep.loc[part.index, "line_ref_rank"] = base_rank
        runs = {
            str(label): _Runs(str(label), ok[ok["label"] == label], outcomes, num_labels, task.primary, proportion)
            for label in part["label"]
        }
        exp = _Experiment(f"rank/{line}", runs, task, num_labels)
        done = []
        for index, label in zip(part.index, part["label"], strict=True):
            if label == base_label:
                continue
            result = exp.difference(str(label), base_label, task.primary)
            if result is not None:
                done.append((index, result))
            else:
                old = exp.nested(str(label), base_label)
                if old is not None:
                    done.append((index, old))
        questions = {q: crossed.holm([_answer_p(r, q) for _, r in done]) for q in ("a", "b", "nested")}
        for k, (index, result) in enumerate(done):
            if isinstance(result, crossed.Result):
                head = result.headline
                values = [head.estimate, head.low, head.high, questions[head.question][k]]
                question = head.question
            else:
                values = [result.diff, result.low, result.high, questions["nested"][k]]
                question = "nested"
            sweep.loc[index, ["vs_line_diff", "vs_line_low", "vs_line_high", "vs_line_p_holm"]] = values
            sweep.loc[index, "vs_line_question"] = question
    return sweep


def _answer_p(result: Any, question: str) -> float:
    """p of `result` in the family of `question` (NaN when it belongs to another: Holm does not count it)."""
    if isinstance(result, crossed.Result):
        return result.headline.p if result.headline.question == question else math.nan
    return result.p if question == "nested" else math.nan
