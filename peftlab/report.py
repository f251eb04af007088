"""Tables and figures from run records: `python -m peftlab.report results/<experiment> [...]`.

Analysis never touches training code: it reads records, so any figure can be regenerated from
results alone, and every number shown comes from a record.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from peftlab.results import load_records, records_frame

# (column in the flattened record, name in the table, how to aggregate)
METRIC_COLUMNS = {
    "metrics.test.accuracy": "test_accuracy",
    "metrics.test.f1_macro": "test_f1_macro",
    "metrics.validation.accuracy": "val_accuracy",
}
COST_COLUMNS = {
    "params.trainable": "trainable_params",
    "params.trainable_pct": "trainable_pct",
    "memory.peak_mb": "peak_memory_mb",
    "speed.train_tokens_per_s": "train_tokens_per_s",
    "size.saved_mb": "saved_mb",
    "time.train_s": "train_s",
}


def ci95(values: Any) -> float:
    """Half-width of the 95% t-interval of the mean (NaN for fewer than two values)."""
    from scipy import stats

    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(values)
    if n < 2:
        return float("nan")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))


def summarise(frame: Any) -> Any:
    """One row per method variant: mean and 95% interval over seeds, plus the costs (mean over seeds)."""
    import pandas as pd

    ok = frame[frame["status"] == "ok"]
    rows = []
    order = list(dict.fromkeys(frame["label"]))  # the order of the experiment file
    for label in order:
        group = ok[ok["label"] == label]
        all_runs = frame[frame["label"] == label]
        row: dict[str, Any] = {
            "method": label,
            "base_method": all_runs["method"].iloc[0],
            "runs_ok": len(group),
            "runs": len(all_runs),
        }
        for column, name in METRIC_COLUMNS.items():
            values = group[column].dropna().tolist() if column in group else []
            row[f"{name}_mean"] = sum(values) / len(values) if values else float("nan")
            row[f"{name}_ci95"] = ci95(values)
        for column, name in COST_COLUMNS.items():
            row[name] = group[column].mean() if column in group and len(group) else float("nan")
        row["device"] = group["memory.device"].iloc[0] if "memory.device" in group and len(group) else None
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean: float, half: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if not math.isnan(half) else f"{mean:.{digits}f}"


def summary_markdown(summary: Any) -> str:
    import pandas as pd

    device = summary["device"].dropna().iloc[0] if summary["device"].notna().any() else "cpu"
    mem_name = "peak RSS (MB)" if device == "cpu" else "peak alloc. (MB)"
    table = pd.DataFrame(
        {
            "method": summary["method"],
            "seeds": [f"{a}/{b}" for a, b in zip(summary["runs_ok"], summary["runs"], strict=True)],
            "test acc (95% CI)": [
                _pm(m, h) for m, h in zip(summary["test_accuracy_mean"], summary["test_accuracy_ci95"], strict=True)
            ],
            "test macro-F1": [
                _pm(m, h) for m, h in zip(summary["test_f1_macro_mean"], summary["test_f1_macro_ci95"], strict=True)
            ],
            "trainable params": [f"{v:,.0f}" if not math.isnan(v) else "—" for v in summary["trainable_params"]],
            "trainable %": [f"{v:.2f}" if not math.isnan(v) else "—" for v in summary["trainable_pct"]],
            mem_name: [f"{v:,.0f}" if not math.isnan(v) else "—" for v in summary["peak_memory_mb"]],
            "train tok/s": [f"{v:,.0f}" if not math.isnan(v) else "—" for v in summary["train_tokens_per_s"]],
            "saved MB": [f"{v:.2f}" if not math.isnan(v) else "—" for v in summary["saved_mb"]],
            "train s": [f"{v:.0f}" if not math.isnan(v) else "—" for v in summary["train_s"]],
        }
    )
    return table.to_markdown(index=False)


# ---------------------------------------------------------------- figures


def _style() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)


def _save(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{stem}.{ext}"
        fig.savefig(path, dpi=200 if ext == "png" else None, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def figure_accuracy_vs_params(summary: Any, out_dir: Path, experiment: str) -> list[Path]:
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = summary.dropna(subset=["test_accuracy_mean", "trainable_params"])
    if data.empty:
        return []
    _style()
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    palette = dict(zip(data["method"], sns.color_palette("colorblind", len(data)), strict=False))
    for _, row in data.iterrows():
        err = row["test_accuracy_ci95"] if not math.isnan(row["test_accuracy_ci95"]) else 0.0
        ax.errorbar(
            row["trainable_params"],
            row["test_accuracy_mean"],
            yerr=err,
            fmt="o",
            ms=6,
            capsize=3,
            color=palette[row["method"]],
            label=row["method"],
        )
        ax.annotate(
            row["method"],
            (row["trainable_params"], row["test_accuracy_mean"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test accuracy (mean, 95% CI)")
    ax.set_title(f"{experiment}: accuracy vs trainable parameters", fontsize=10)
    ax.legend(fontsize=7, loc="best", frameon=True)
    return _save(fig, out_dir, "accuracy_vs_trainable_params")


def figure_training_curves(frame: Any, out_dir: Path, experiment: str) -> list[Path]:
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    rows = []
    for _, run in frame[frame["status"] == "ok"].iterrows():
        for point in run.get("metrics.curve") or []:
            rows.append(
                {
                    "method": run["label"],
                    "seed": run["seed"],
                    "step": point["step"],
                    "validation accuracy": point.get("val_accuracy"),
                }
            )
    if not rows:
        return []
    curves = pd.DataFrame(rows).dropna()
    _style()
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    sns.lineplot(data=curves, x="step", y="validation accuracy", hue="method", errorbar=("ci", 95), marker="o", ax=ax)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("validation accuracy (mean, 95% CI)")
    ax.set_title(f"{experiment}: training curves", fontsize=10)
    ax.legend(fontsize=7, title=None)
    return _save(fig, out_dir, "training_curves")


# ---------------------------------------------------------------- entry points


def write_experiment_report(
    results_dir: Path, run_ids: set[str] | None = None, out_dir: Path | None = None
) -> list[Path]:
    """summary.csv, summary.md and figures for the records in `results_dir` (optionally only `run_ids`)."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir or results_dir)
    records = load_records([results_dir], run_ids)
    if not records:
        print(f"peftlab.report: no run records under {results_dir / 'runs'}; nothing to report", file=sys.stderr)
        return []
    frame = records_frame(records)
    experiment = str(frame["experiment"].iloc[0])
    summary = summarise(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "figures").mkdir(exist_ok=True)
    written = []
    csv_path = out_dir / "summary.csv"
    summary.to_csv(csv_path, index=False, float_format="%.6g")
    written.append(csv_path)
    md_path = out_dir / "summary.md"
    device = records[0].get("env", {}).get("device", {})
    md_path.write_text(
        f"### {experiment}: test metrics (mean ± 95% t-interval over seeds) and costs\n\n"
        f"{summary_markdown(summary)}\n\n"
        f"Device: {device.get('name', '?')} ({device.get('type', '?')}). Generated by `python -m peftlab.report` "
        f"from {len(records)} run records.\n"
    )
    written.append(md_path)
    written += figure_accuracy_vs_params(summary, out_dir / "figures", experiment)
    written += figure_training_curves(frame, out_dir / "figures", experiment)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m peftlab.report", description="Tables and figures from the run records of experiments."
    )
    parser.add_argument("results", nargs="+", type=Path, help="experiment result folders, e.g. results/bert_cls")
    args = parser.parse_args(argv)
    status = 0
    for results_dir in args.results:
        if not (results_dir / "runs").is_dir():
            print(f"error: {results_dir}: no runs/ folder (expected results/<experiment>)", file=sys.stderr)
            status = 2
            continue
        for path in write_experiment_report(results_dir):
            print(f"wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
