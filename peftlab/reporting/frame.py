"""Records → one tidy DataFrame, and the per-method summary every table, macro and figure is cut from.

Everything downstream reads these two frames only, so a number in the paper, the CSV and a figure
cannot disagree: they are the same cell formatted three ways.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peftlab.records.record import RunRecord

# flattened record column -> tidy name; the metrics are averaged with a 95% interval, the costs averaged.
# A task's metrics join them from its declaration and its records' `task` block (`task_metric_columns`)
METRIC_COLUMNS = {
    "learning.gain": "learning_gain",  # target score after training − baseline (see peftlab/probes/suite.py)
}


def _record_tasks(frame: Any) -> list[tuple[str, str]]:
    """(task, chosen metric) pairs the records' `task` blocks name, in order of appearance."""
    if "task.name" not in frame.columns or "task.primary" not in frame.columns:
        return []
    pairs = zip(frame["task.name"], frame["task.primary"], strict=True)
    return [(t, m) for t, m in dict.fromkeys(pairs) if isinstance(t, str) and isinstance(m, str)]


def task_metric_columns(frame: Any) -> dict[str, str]:
    """`metrics.test.<m>` → `test_<m>` for each metric the records' tasks declare with a short name (plus the
    chosen primary, `val_<primary>` too) that the records have, in declaration order: the headline metrics."""
    from peftlab.task_specs import get_task_spec, task_names

    out: dict[str, str] = {}
    for task, primary in _record_tasks(frame):
        declared = get_task_spec(task).metrics if task in task_names() else ()
        names = [primary, *(m.name for m in declared if m.short)]
        for name in dict.fromkeys(names):
            column = f"metrics.test.{name}"
            # a metric only some runs compute (sft's bleu, rouge_l: `data.metric`) adds no empty column
            if column in frame.columns or name == primary:
                out[column] = f"test_{name}"
        out[f"metrics.validation.{primary}"] = f"val_{primary}"
    return out


def chosen_metric(frame: Any) -> tuple[str | None, str]:
    """(metric, direction) that a tidy runs frame (`metric`/`direction`) or a summary (`primary_metric`/
    `primary_direction`) is headlined by: the records' `task` block, the most common over rows.
    (None, "max") where no record names one."""
    for metric_col, direction_col in (("metric", "direction"), ("primary_metric", "primary_direction")):
        if metric_col in frame.columns:
            pairs = [
                (m, d if d in ("max", "min") else "max")
                for m, d in zip(frame[metric_col], frame.get(direction_col, [None] * len(frame)), strict=True)
                if isinstance(m, str)
            ]
            if pairs:
                return max(set(pairs), key=pairs.count)
    return None, "max"


COST_COLUMNS = {
    "params.trainable": "trainable_params",
    "params.trainable_pct": "trainable_pct",
    "memory.peak_mb": "peak_memory_mb",
    "memory.training_state.total_mb": "train_state_mb",
    "speed.train_tokens_per_s": "train_tokens_per_s",
    # a sampling task (grpo): tokens sampled per second of rollout, and the share of the step spent sampling
    "speed.generation_tokens_per_s": "generation_tokens_per_s",
    "speed.generation_share": "generation_share",
    "size.saved_mb": "saved_mb",
    "time.train_s": "train_s",
}
# forgetting.<probe>.delta: the amount forgotten, positive = worse (see peftlab/probes/suite.py)
# a sampling task's base-model probe rollout before step 1 (`metrics.base_rollout`): the figures' reference line
ROLLOUT_COLUMNS = {
    "metrics.base_rollout.reward": "base_rollout_reward",
    "metrics.base_rollout.zero_std_fraction": "base_rollout_zero_std_fraction",
}
LIST_COLUMNS = ("curve", "rollout")  # per-step series: one cell each in the frame, not written to runs.csv
FORGETTING = re.compile(r"^forgetting\.(?P<probe>.+)\.delta$")
_GRID_TAG = re.compile(r"\[(?P<tag>[^\]]*)\]$")


def ci95(values: Any) -> float:
    """Half-width of the 95% t-interval of the mean over seeds (crossed.seed_half_width)."""
    from peftlab.stats.crossed import seed_half_width

    return seed_half_width(list(values), 0.95)


def forgetting_probes(frame: Any) -> list[str]:
    """Probe names of the `forgetting.<probe>.delta` columns, in column order (empty for today's records)."""
    return [m["probe"] for c in frame.columns if (m := FORGETTING.match(str(c)))]


def label_without(label: str, key: str) -> str:
    """`lora[r=4,lr=0.001]` without `r` → `lora[lr=0.001]`: the line a rank sweep point belongs to."""
    match = _GRID_TAG.search(label)
    if not match:
        return label
    kept = [part for part in match["tag"].split(",") if part and part.split("=", 1)[0].strip() != key]
    base = label[: match.start()]
    return f"{base}[{','.join(kept)}]" if kept else base


def _targets(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(sorted(str(v) for v in value))
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def tidy_runs(frame: Any) -> Any:
    """One row per run, friendly column names: what runs.csv holds and the figures plot."""
    import pandas as pd

    def col(name: str) -> Any:
        return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index)

    tidy = pd.DataFrame(
        {
            "experiment": col("experiment"),
            "label": col("label"),
            "method": col("method"),
            "seed": col("seed"),
            "status": col("status"),
        }
    )
    tidy["task"] = col("task.name")  # what each run is scored by: its record's `task` block
    tidy["metric"] = col("task.primary")
    tidy["direction"] = col("task.direction")
    for source, name in {**task_metric_columns(frame), **METRIC_COLUMNS, **COST_COLUMNS, **ROLLOUT_COLUMNS}.items():
        tidy[name] = pd.to_numeric(col(source), errors="coerce")
    # example counts behind each score: the two-level bootstrap of the figures' bands needs them
    tidy["test_n"] = pd.to_numeric(col("metrics.test.n"), errors="coerce").fillna(
        pd.to_numeric(col("data.sizes.test"), errors="coerce")
    )
    tidy["val_n"] = pd.to_numeric(col("data.sizes.validation"), errors="coerce")
    tidy["lr"] = pd.to_numeric(col("hyperparameters.lr"), errors="coerce")
    tidy["rank"] = pd.to_numeric(col("hyperparameters.r"), errors="coerce")
    targets = col("hyperparameters.resolved_target_modules")
    fallback = col("hyperparameters.target_modules")
    tidy["targets"] = [_targets(t) or _targets(f) for t, f in zip(targets, fallback, strict=True)]
    tidy["rank_line"] = [label_without(str(label), "r") for label in tidy["label"]]
    tidy["device_type"] = col("env.device.type")
    tidy["device_name"] = col("env.device.name")
    for probe in forgetting_probes(frame):
        tidy[f"forgetting_{probe}"] = pd.to_numeric(frame[f"forgetting.{probe}.delta"], errors="coerce")
    tidy["curve"] = col("metrics.curve")
    tidy["rollout"] = col("metrics.rollout")  # a sampling task's per-step rollout series ([] or NaN otherwise)
    for column in frame.columns:
        if str(column).startswith("trial."):
            tidy[str(column)] = frame[column]
    return tidy


def _row_order(key: tuple[str, str, str]) -> tuple:
    """Experiment, then the full fine-tuning baseline first, then labels in natural order (r=2 before r=16).

    Records are read in file-name order, which would put `lora[r=16]` before `lora[r=2]`.
    """
    experiment, label, device = str(key[0]), str(key[1]), str(key[2])
    parts = tuple(
        (0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(re.split(r"(\d+(?:\.\d+)?)", label))
    )
    return (experiment, label != "full", parts, device)


def device_types(frame: Any) -> Any:
    """Each run's device type: where it ran (`env.device.type`), else what its config resolved, else ''.

    A row of a table never pools device types: CPU RSS and CUDA memory, or CPU and GPU numerics,
    are different measurements.
    """
    import pandas as pd

    empty = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    ran = frame["env.device.type"] if "env.device.type" in frame.columns else empty
    planned = frame["config.train.device"] if "config.train.device" in frame.columns else empty
    planned = planned.where(planned != "auto")  # records from before run ids named the device
    return ran.where(ran.notna(), planned).fillna("").astype(str)


NOT_OK = ("failed", "diverged", "oom", "killed", "pruned")  # counted per row, never dropped silently


def summarise(
    frame: Any, outcomes: dict[str, Any] | None = None, reference: str | None = None, metric: str | None = None
) -> Any:
    """One row per (experiment, method variant, device type): metrics with intervals, paired comparisons, costs.

    Only `ok` runs count towards numbers; every other status is counted in its own column and the
    first line of a failure is kept (`first_error`), so a method whose runs all failed is a row.
    A variant run on several device types gets one row per type, its label suffixed ` (cuda)`.
    The chosen primary metric gets the crossed seeds × examples intervals of both questions and the paired
    comparison against the reference (peftlab/reporting/comparison.py, peftlab/stats/crossed.py);
    `outcomes` maps run ids to their per-example test outcomes (None: records without predictions,
    compared by the old nested bootstrap and labelled so); `metric` the one the Δ columns compare.
    """
    import pandas as pd

    from peftlab.reporting.comparison import add_statistics

    ok = frame[frame["status"] == "ok"]
    experiments = (
        frame["experiment"] if "experiment" in frame.columns else pd.Series([""] * len(frame), index=frame.index)
    )
    devices = device_types(frame)
    keys = sorted(dict.fromkeys(zip(experiments, frame["label"], devices, strict=True)), key=_row_order)
    pooled = {(e, lab) for e, lab, _ in keys if sum(1 for k in keys if k[:2] == (e, lab)) > 1}
    seeds_planned = {
        e: frame.loc[experiments == e, "seed"].nunique() if "seed" in frame.columns else 1 for e in set(experiments)
    }
    probes = forgetting_probes(frame)
    extra_metrics = task_metric_columns(frame)  # each task's headline metrics, the chosen primary first
    rows = []
    for experiment, label, device in keys:
        in_group = (experiments == experiment) & (frame["label"] == label) & (devices == device)
        group = ok[in_group[ok.index]]
        all_runs = frame[in_group]
        row: dict[str, Any] = {
            "method": f"{label} ({device or 'unknown device'})" if (experiment, label) in pooled else label,
            "base_method": all_runs["method"].iloc[0],
            "runs_ok": len(group),
            "runs": len(all_runs),
            "runs_planned": max(len(all_runs), int(seeds_planned[experiment])),
        }
        statuses = all_runs["status"].tolist()
        for status in NOT_OK:
            row[f"runs_{status}"] = statuses.count(status)
        row["first_error"] = _first_error(all_runs)
        for column, name in {**extra_metrics, **METRIC_COLUMNS}.items():
            values = pd.to_numeric(group[column], errors="coerce").dropna().tolist() if column in group else []
            row[f"{name}_mean"] = sum(values) / len(values) if values else float("nan")
            row[f"{name}_ci95"] = ci95(values)
        for column, name in COST_COLUMNS.items():
            values = pd.to_numeric(group[column], errors="coerce") if column in group else pd.Series(dtype=float)
            row[name] = float(values.mean()) if len(values.dropna()) else float("nan")
        row["device"] = group["memory.device"].iloc[0] if "memory.device" in group and len(group) else None
        for probe in probes:
            values = pd.to_numeric(group[f"forgetting.{probe}.delta"], errors="coerce").dropna().tolist()
            row[f"forgetting_{probe}_mean"] = sum(values) / len(values) if values else float("nan")
            row[f"forgetting_{probe}_ci95"] = ci95(values)
        row["device_type"] = device
        row["experiment"] = experiment
        rows.append(row)
    return add_statistics(pd.DataFrame(rows), frame, outcomes or {}, reference, metric)


def _first_error(runs: Any) -> str | None:
    """First line of the first non-ok run's error (what a footnote under the table quotes)."""
    if "error" not in runs.columns:
        return None
    bad = runs[(runs["status"] != "ok") & runs["error"].notna()]
    for error in bad["error"]:
        text = str(error).strip()
        if text:
            return text.splitlines()[0]
    return None


def load_frame(results_dirs: Iterable[Any], run_ids: set[str] | None = None) -> tuple[list[RunRecord], Any]:
    """The records under the given experiment folders and their flattened frame."""
    from peftlab.records.results import load_records, records_frame

    records = load_records(list(results_dirs), run_ids)
    return records, records_frame(records) if records else None
