"""The results explorer: one self-contained HTML page to browse a comparison before choosing the paper's figure.

`python -m peftlab.report RESULTS... --html` writes `explorer.html`. The page works offline from
disk or a shared folder: plotly.js is inlined from the `plotly` Python package (the `explorer`
extra), the data is embedded as JSON, and the page's own script and style are the template files
in `peftlab/reporting/assets/` (package data).

Nothing here computes a statistic: the summary table is `tables.display_frame` of the report's
summary (the same cells as summary.md, marks and intervals included), the scatter's error bars
are the summary's interval columns and the forest plot its paired comparisons. The page only
filters, sorts and draws. Its Pareto front is not computed in the page: for every pair of axes the
payload holds which methods dominate each point (peftlab/reporting/pareto.py, the rule the figures
draw with), and the script keeps the shown points none of whose dominators is shown.
The quality axes, the runs' score column and the forest plot follow the metric the records were
scored by (their `task` block) and its direction.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from peftlab.errors import UserError
from peftlab.records.results import record_path
from peftlab.reporting.frame import device_types
from peftlab.reporting.pareto import dominators
from peftlab.reporting.tables import (
    columns,
    display_frame,
    headline_name,
    metric_display,
    primary_metrics,
    table_notes,
)

EXPLORER_NAME = "explorer.html"
INSTALL_HINT = "pip install 'peftlab[explorer]'"
# summary columns the scatter offers besides the table's own (tables.columns): costs without an interval
EXTRA_AXES = {
    "trainable_params": ("trainable params", "min"),
    "train_s": ("train time (s)", "min"),
}
# the order the axis dropdowns list them in: the chosen metric first, the task's other metrics, then the costs
AXIS_ORDER = (
    "trainable_params",
    "trainable_pct",
    "peak_memory_mb",
    "train_state_mb",
    "train_tokens_per_s",
    "generation_tokens_per_s",
    "saved_mb",
    "train_s",
    "learning_gain_mean",
)


def plotly_js() -> str:
    """plotly.min.js from the plotly package, or a one-line error naming the extra that brings it."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as err:
        raise UserError(f"--html needs the plotly package: {INSTALL_HINT}") from err
    return get_plotlyjs()


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> null, numpy scalars -> Python, containers recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _axes(summary: Any) -> list[dict[str, Any]]:
    """The metrics a scatter axis can show: the table's columns (with their interval) and the plain costs."""
    axes = []
    for col in columns(summary):
        base = col.key.removesuffix("_mean")
        bounds = f"{base}_low" in summary.columns and f"{base}_high" in summary.columns
        axes.append(
            {
                "key": col.key,
                "label": col.header,
                "better": col.better,
                "low": f"{base}_low" if bounds else None,
                "high": f"{base}_high" if bounds else None,
                "ci": col.ci,
            }
        )
    for key, (label, better) in EXTRA_AXES.items():
        if key in summary.columns and summary[key].notna().any():
            axes.append({"key": key, "label": label, "better": better, "low": None, "high": None, "ci": None})
    primaries = [f"test_{m}_mean" for m in primary_metrics(summary)]
    quality = [a["key"] for a in axes if a["key"].startswith("test_") and a["key"] not in primaries]
    rank = {key: i for i, key in enumerate([*primaries, *quality, *AXIS_ORDER])}
    axes.sort(key=lambda a: rank.get(a["key"], len(rank)))
    return axes


def _dominance(summary: Any, axes: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[str]]]]:
    """`"x|y"` → experiment → method → the methods that dominate it on those two axes (pareto.dominators).

    The page's front over the methods shown is then a look-up: a shown point is on it when none of its
    dominators is shown. Points without both values are left out, as the page leaves them out.
    """
    out: dict[str, dict[str, dict[str, list[str]]]] = {}
    for ax in axes:
        for ay in axes:
            if ax["key"] == ay["key"]:
                continue
            pair: dict[str, dict[str, list[str]]] = {}
            for experiment in dict.fromkeys(summary["experiment"]):
                part = summary[summary["experiment"] == experiment]
                rows = [
                    (str(r["method"]), _number(r.get(ax["key"])), _number(r.get(ay["key"]))) for _, r in part.iterrows()
                ]
                rows = [(m, x, y) for m, x, y in rows if x is not None and y is not None]
                beaten = dominators([(x, y) for _, x, y in rows], (ax["better"] == "max", ay["better"] == "max"))
                names = [m for m, _, _ in rows]
                pair[str(experiment)] = {m: [names[j] for j in by] for m, by in zip(names, beaten, strict=True)}
            out[f"{ax['key']}|{ay['key']}"] = pair
    return out


def _point(row: Any, axis: dict[str, Any]) -> dict[str, float | None]:
    """One summary cell for the scatter: mean and interval bounds (asymmetric bootstrap or mean ± half)."""
    mean = _number(row.get(axis["key"]))
    low = _number(row.get(axis["low"])) if axis["low"] else None
    high = _number(row.get(axis["high"])) if axis["high"] else None
    if (low is None or high is None) and axis["ci"] and mean is not None:
        half = _number(row.get(axis["ci"]))
        low, high = (mean - half, mean + half) if half is not None else (None, None)
    return {"mean": mean, "low": low, "high": high}


def _colors(methods: list[str]) -> dict[str, str]:
    """The static figures' colour per method (reporting/style.py), as CSS hex; never two methods alike.

    The figures' colour-blind palette has ten colours and tells an eleventh method apart by its
    marker; here the marker names the experiment, so methods past ten take the darker palette's.
    """
    import seaborn as sns
    from matplotlib.colors import to_hex

    from peftlab.reporting.style import method_styles

    colors = {m: to_hex(s["color"]) for m, s in method_styles(methods).items()}
    distinct = list(dict.fromkeys(sns.color_palette("colorblind").as_hex() + sns.color_palette("dark").as_hex()))
    for i, method in enumerate(dict.fromkeys(methods)):
        if i >= 10:
            colors[method] = distinct[i % len(distinct)]
    return colors


def _record_links(frame: Any, results_dirs: list[Path], out_dir: Path) -> list[str | None]:
    """Each run's record file relative to the page (so the links survive moving the folder as a whole).

    Looked up by (experiment, run id): two experiments may hold runs with the same id.
    """
    from peftlab.records.results import load_records

    where: dict[tuple[str, str], Path] = {}
    for results_dir in results_dirs:
        for record in load_records([results_dir]):
            path = record_path(results_dir, record.run_id)
            if path.is_file():
                where.setdefault((str(record.experiment), record.run_id), path)
    experiments = frame["experiment"] if "experiment" in frame.columns else [None] * len(frame)
    run_ids = frame["run_id"] if "run_id" in frame.columns else [None] * len(frame)
    links: list[str | None] = []
    for experiment, run_id in zip(experiments, run_ids, strict=True):
        found = where.get((str(experiment), str(run_id)))
        links.append(None if found is None else Path(os.path.relpath(found.resolve(), out_dir.resolve())).as_posix())
    return links


def _curves(value: Any) -> dict[str, list[float | None]]:
    """A record's `metrics.curve` (a list of per-evaluation dicts) as columns: step, train_loss, val_*; or its
    `metrics.rollout` (per-step dicts): step, reward, zero_std_fraction, ... (the page's `rollout:` series)."""
    if not isinstance(value, list):
        return {}
    keys = list(dict.fromkeys(k for point in value if isinstance(point, dict) for k in point))
    if "step" not in keys:
        return {}
    points = [p for p in value if isinstance(p, dict) and _number(p.get("step")) is not None]
    return {k: [_number(p.get(k)) for p in points] for k in keys}


def _runs(frame: Any, summary: Any, results_dirs: list[Path], out_dir: Path) -> list[dict[str, Any]]:
    """One entry per run of the comparison, keyed to its summary row's method name (device-suffixed if pooled)."""
    rows = set(zip(summary["experiment"].astype(str), summary["method"].astype(str), strict=True))
    devices = device_types(frame)
    links = _record_links(frame, results_dirs, out_dir)

    def get(name: str, i: int) -> Any:
        return frame[name].iloc[i] if name in frame.columns else None

    runs = []
    for i in range(len(frame)):
        experiment, label = str(get("experiment", i)), str(get("label", i))
        method = label if (experiment, label) in rows else f"{label} ({devices.iloc[i] or 'unknown device'})"
        runs.append(
            {
                "run_id": get("run_id", i),
                "experiment": experiment,
                "method": method,
                "seed": get("seed", i),
                "status": get("status", i),
                # the run's score in the metric its record was scored by (its `task` block)
                "score": _number(get(f"metrics.test.{get('task.primary', i)}", i)),
                "record": links[i],
                "curve": _curves(get("metrics.curve", i)),
                "rollout": _curves(get("metrics.rollout", i)),  # a sampling task's per-step rollouts (reward, ...)
            }
        )
    return runs


def explorer_payload(summary: Any, frame: Any, results_dirs: Iterable[Path], out_dir: Path) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (the page's script only filters, sorts and draws)."""
    results_dirs = [Path(d) for d in results_dirs]
    summary = summary.reset_index(drop=True)
    display = display_frame(summary, latex=False)
    experiments = [str(e) for e in dict.fromkeys(summary["experiment"])]
    methods = [str(m) for m in dict.fromkeys(summary["method"])]
    axes = _axes(summary)
    keys = [a["key"] for a in axes]
    costs = [k for k in ("train_state_mb", "peak_memory_mb", "trainable_params", "trainable_pct") if k in keys]
    default_x = costs[0] if costs else (keys[-1] if keys else None)  # None: no finished run has a number
    primary = next(iter(primary_metrics(summary)), None)
    default_y = f"test_{primary}_mean" if f"test_{primary}_mean" in keys else (keys[0] if keys else None)
    rows = []
    for i, row in summary.iterrows():
        rows.append(
            {
                "experiment": str(row["experiment"]),
                "method": str(row["method"]),
                "cells": [str(v) for v in display.iloc[i]],
                "points": {a["key"]: _point(row, a) for a in axes},
                "forest": {
                    "reference": row.get("reference"),
                    "diff": row.get("vs_ref_diff"),
                    "low": row.get("vs_ref_low"),
                    "high": row.get("vs_ref_high"),
                    "p_holm": row.get("vs_ref_p_holm"),
                    "question": row.get("vs_ref_question"),  # (a) these models or (b) this recipe
                    "test": row.get("vs_ref_test"),
                    "mdd": row.get("vs_ref_mdd"),  # this row's own, for its question
                },
            }
        )
    return _clean(
        {
            "title": ", ".join(experiments),
            "experiments": experiments,
            "methods": methods,
            "colors": _colors(methods),
            "table": {"columns": [str(c) for c in display.columns], "rows": rows, "notes": table_notes(summary)},
            "axes": axes,
            "dominated_by": _dominance(summary, axes),
            # how the runs table, the forest plot and the curves name the chosen metric
            "metric": {"key": primary, "words": headline_name(summary), "short": metric_display(primary)[0]}
            if primary
            else None,
            "default_x": default_x,
            "default_y": default_y,
            "runs": _runs(frame, summary, results_dirs, out_dir),
        }
    )


def _asset(name: str) -> str:
    return resources.files("peftlab.reporting").joinpath("assets", name).read_text(encoding="utf-8")


def _script_json(payload: dict[str, Any]) -> str:
    """JSON safe inside a <script> element: no `</script>` or `<!--` can end or confuse it."""
    text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_explorer(payload: dict[str, Any], plotly: str) -> str:
    """The page: the template with the style, plotly.js, the data and the page's script filled in, in one pass."""
    from html import escape

    fills = {
        "TITLE": escape(f"peftlab explorer: {payload['title']}"),
        "STYLE": _asset("explorer.css"),
        "PLOTLY_JS": plotly,
        "DATA_JSON": _script_json(payload),
        "EXPLORER_JS": _asset("explorer.js"),
    }
    placeholder = r"\{\{(TITLE|STYLE|PLOTLY_JS|DATA_JSON|EXPLORER_JS)\}\}"
    return re.sub(placeholder, lambda m: fills[m[1]], _asset("explorer.html"))


def write_explorer(summary: Any, frame: Any, results_dirs: Iterable[Path], out_dir: Path) -> Path:
    """`out_dir/explorer.html` (written atomically: a reader never opens half a page)."""
    plotly = plotly_js()  # first: a missing extra must write nothing
    out_dir = Path(out_dir)
    page = render_explorer(explorer_payload(summary, frame, results_dirs, out_dir), plotly)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / EXPLORER_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
