"""The report's figures. Each takes the tidy runs / summary frames and either writes PNG+PDF or
raises `Skipped` with the reason, because an experiment without a rank sweep is not an error:
the report says what it left out and goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peftlab.reporting import pareto, style
from peftlab.reporting.frame import ci95
from peftlab.reporting.pareto import non_dominated


class Skipped(Exception):
    """The records do not hold the data this figure needs; the message says which."""


def _ok(runs: Any) -> Any:
    return runs[runs["status"] == "ok"]


def _mem_label(summary_or_runs: Any) -> str:
    column = "device" if "device" in summary_or_runs.columns else "device_type"
    devices = summary_or_runs[column].dropna().tolist()
    cpu = not devices or max(set(devices), key=devices.count) == "cpu"
    return "peak memory, process RSS (MB)" if cpu else "peak GPU memory allocated (MB)"


def _legend(fig: Any, ax: Any, ncols: int = 3) -> None:
    """A shared legend under the axes: inside it would cover points at single-column width."""
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(labels)), frameon=False)


BAND = {  # what a band answers, for the axis labels
    "b": "95% band: recipe (b)",
    "a": "95% band: these models (a)",
    "seeds": "95% band: t over seeds",
}


def _mean_band(frame: Any, x: str, y: str, n: str | None = None) -> Any:
    """Mean and 95% band (`low`, `high`, `question`) of `y` at each `x` over seeds.

    For a proportion with its example count in column `n`: peftlab/stats/crossed.py's answer from the
    per-seed values (`from_seed_values`: question (b) where ≥ 2 seeds, else (a); the example term
    bounded by the binomial, since curves and rank lines carry no per-example outputs, so the band
    is conservative and never counts one test set S times); otherwise the t-interval over seeds.
    """
    import pandas as pd

    from peftlab.stats.crossed import from_seed_values

    rows = []
    for xv, group in frame.groupby(x, sort=True):
        group = group.dropna(subset=[y])
        values = group[y].tolist()
        if not values:
            continue
        mean = sum(values) / len(values)
        counts = group[n].tolist() if n and n in group.columns else []
        if counts and all(c == c and c > 0 for c in counts):
            head = from_seed_values(values, int(min(counts)), name=f"{y}/{xv}").headline
            low, high, question = head.low, head.high, head.question
        else:
            half = ci95(values)
            low, high, question = mean - half, mean + half, "seeds"
        rows.append({x: xv, "mean": mean, "low": low, "high": high, "n": len(values), "question": question})
    return pd.DataFrame(rows)


def band_label(bands: list[Any]) -> str:
    """The axis-label phrase naming the question(s) the drawn bands answer."""
    asked = [q for band in bands if "question" in band for q in dict.fromkeys(band["question"])]
    return "; ".join(BAND[q] for q in dict.fromkeys(asked) if q in BAND)


def missing_methods(summary: Any) -> list[str]:
    """`qlora (2 failed)` for each method without a finished run: a figure must not drop it silently."""
    from peftlab.reporting.frame import NOT_OK

    out = []
    for _, row in summary.iterrows():
        if row.get("runs_ok", 1):
            continue
        counts = [
            f"{int(row[f'runs_{s}'])} {s}"
            for s in NOT_OK
            if row.get(f"runs_{s}", 0) and row[f"runs_{s}"] == row[f"runs_{s}"]
        ]
        out.append(f"{row['method']} ({', '.join(counts) or 'no run'})")
    return out


def note_missing(ax: Any, summary: Any) -> None:
    """Name the methods that have no finished run above the axes (empty when every method finished)."""
    missing = missing_methods(summary)
    if missing:
        ax.set_title("no finished run: " + "; ".join(missing), fontsize=7, loc="left", color="0.3")


class Headline:
    """The metric a figure plots: the records' chosen primary (their `task` block), its direction and its words."""

    def __init__(self, *frames: Any) -> None:
        """From the first frame (tidy runs, or the summary) whose rows name a metric."""
        from peftlab.reporting.frame import chosen_metric
        from peftlab.reporting.tables import metric_words
        from peftlab.task_specs import declared_metric

        metric, direction = None, "max"
        for frame in frames:
            metric, direction = chosen_metric(frame)
            if metric is not None:
                break
        if metric is None:
            raise Skipped("no record names the metric it is scored by (its `task` block)")
        self.metric, self.up = metric, direction != "min"
        self.words = metric_words(metric)
        declared = declared_metric(metric)
        statistic = declared.statistic if declared is not None else None
        # a share of correct examples: bounded by [0, 1], with an example count the bands may use
        self.proportion = bool(statistic) and str(statistic).startswith("mean:correct")

    @property
    def test(self) -> str:
        return f"test_{self.metric}"

    @property
    def val(self) -> str:
        return f"val_{self.metric}"

    def axis(self, split: str = "test", note: str = "") -> str:
        """`test accuracy (95% interval)`; a lower-is-better metric says so."""
        inside = "; ".join(p for p in (note, "" if self.up else "lower is better") if p)
        return f"{split} {self.words}" + (f" ({inside})" if inside else "")

    def clip(self, ax: Any) -> None:
        """Bands over few seeds can run past what a proportion can be."""
        if self.proportion:
            low, high = ax.get_ylim()
            ax.set_ylim(max(low, 0.0), min(high, 1.02))


def _score_points(ax: Any, data: Any, x: str, styles: dict, head: Headline) -> None:
    """One marker per method at (x, mean test score) with its 95% interval, where one exists.

    The interval is the summary's headline (peftlab/stats/crossed.py: (b) where estimable, else (a));
    summaries without it (older callers) fall back to the half-width (clipped to [0, 1] for a proportion).
    """
    for _, row in data.iterrows():
        half, mean = row.get(f"{head.test}_ci95", math.nan), row[f"{head.test}_mean"]
        low, high = row.get(f"{head.test}_low", math.nan), row.get(f"{head.test}_high", math.nan)
        if low == low and high == high:
            yerr = [[max(mean - low, 0.0)], [max(high - mean, 0.0)]]
        elif half != half:
            yerr = None
        else:
            yerr = [[min(half, mean)], [min(half, 1.0 - mean)]] if head.proportion else [[half], [half]]
        ax.errorbar(
            row[x],
            mean,
            yerr=yerr,
            fmt=styles[row["method"]]["marker"],
            color=styles[row["method"]]["color"],
            capsize=2,
            label=row["method"],
            zorder=3,
        )
    head.clip(ax)


def metric_vs_trainable_params(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    head = Headline(summary)
    data = summary.dropna(subset=[f"{head.test}_mean", "trainable_params"])
    if data.empty:
        raise Skipped(f"no finished run with a test {head.words} and a parameter count")
    fig, ax = style.figure()
    _score_points(ax, data, "trainable_params", styles, head)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (count, log scale)")
    ax.set_ylabel(head.axis("test", "95% interval"))
    note_missing(ax, summary)
    _legend(fig, ax)
    return style.save(fig, out, "metric_vs_trainable_params")


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = True) -> list[tuple[float, float]]:
    """(cost, score) points not dominated by one with less (or equal) cost and a better score, cheapest first.

    peftlab/reporting/pareto.py's rule, the one the explorer embeds too. A lower-is-better score (MSE)
    flips the front.
    """
    return pareto.front(points, (False, higher_is_better))


def memory_column(summary: Any) -> str:
    """The memory a method changes: the training state where measured (on a CPU the process's peak RSS is
    mostly the runtime), else the peak."""
    has_state = "train_state_mb" in summary.columns and summary["train_state_mb"].notna().any()
    return "train_state_mb" if has_state else "peak_memory_mb"


def metric_vs_memory(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    head = Headline(summary)
    key = memory_column(summary)
    data = summary.dropna(subset=[f"{head.test}_mean", key])
    if data.empty:
        raise Skipped(f"no finished run with a test {head.words} and a peak memory")
    fig, ax = style.figure()
    _score_points(ax, data, key, styles, head)
    front = pareto_front(list(zip(data[key], data[f"{head.test}_mean"], strict=True)), head.up)
    front.append((float(data[key].max()), front[-1][1]))  # the frontier runs on to the costliest point
    xs, ys = zip(*front, strict=True)
    ax.step(xs, ys, where="post", color="0.45", linestyle="--", linewidth=0.9, label="Pareto frontier", zorder=2)
    if max(xs) / max(min(data[key]), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(
        "training state (MB): weights, gradients,\noptimiser state, one step's activations"
        if key == "train_state_mb"
        else _mem_label(summary)
    )
    ax.set_ylabel(head.axis("test", "95% interval"))
    note_missing(ax, summary)
    _legend(fig, ax)
    return style.save(fig, out, "metric_vs_memory")


def throughput(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    import seaborn as sns

    data = _ok(runs).dropna(subset=["train_tokens_per_s"])
    if data.empty:
        raise Skipped("no finished run with a training throughput")
    order = [m for m in summary["method"] if m in set(data["label"])]
    palette = {m: styles[m]["color"] for m in order}
    fig, ax = style.figure(height=0.35 * len(order) + 0.9)
    sns.barplot(
        data=data,
        y="label",
        x="train_tokens_per_s",
        hue="label",
        order=order,
        hue_order=order,
        palette=palette,
        errorbar=None,
        alpha=0.75,
        legend=False,
        ax=ax,
    )
    sns.stripplot(data=data, y="label", x="train_tokens_per_s", order=order, color="0.15", size=3, jitter=0.15, ax=ax)
    ax.set_xlabel("training throughput (tokens/s, mean; dots: seeds)")
    ax.set_ylabel("")
    note_missing(ax, summary)
    return style.save(fig, out, "throughput")


def paired_differences(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    """Forest plot: each method minus the reference, headline question's 95% interval, Holm p and question at the right.

    Each row also shows its own minimum detectable difference (grey bar, ± MDD around 0 at that row):
    the old single band pooled very different comparisons into one number.
    """
    if "vs_ref_diff" not in summary.columns:
        raise Skipped("no paired statistics in the summary")
    data = summary.dropna(subset=["vs_ref_diff", "vs_ref_low", "vs_ref_high"])
    if data.empty:
        raise Skipped("no method to compare with the reference (one method, or no finished runs)")
    multi = "experiment" in data.columns and data["experiment"].nunique() > 1
    names = [f"{e}: {m}" if multi else str(m) for e, m in zip(data["experiment"], data["method"], strict=True)]
    fig, ax = style.figure(height=0.32 * len(data) + 1.1)
    ys = list(range(len(data)))[::-1]
    for y, (_, row) in zip(ys, data.iterrows(), strict=True):
        color = styles.get(row["method"], {}).get("color", "0.2")
        ax.errorbar(
            row["vs_ref_diff"],
            y,
            xerr=[[row["vs_ref_diff"] - row["vs_ref_low"]], [row["vs_ref_high"] - row["vs_ref_diff"]]],
            fmt="o",
            color=color,
            capsize=2,
            zorder=3,
        )
        mdd = row.get("vs_ref_mdd")
        if isinstance(mdd, float) and math.isfinite(mdd):
            ax.plot([-mdd, mdd], [y, y], color="0.85", linewidth=6, solid_capstyle="butt", zorder=0)
        p = row["vs_ref_p_holm"]
        text = "p<0.001" if p < 0.001 else f"p={p:.3f}"
        question = row.get("vs_ref_question")
        text += f" ({question})" if isinstance(question, str) else ""
        ax.annotate(text, (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=6.5, color="0.3")
    ax.axvline(0.0, color="0.5", linestyle="--", linewidth=0.8, zorder=1)
    if "vs_ref_mdd" in data.columns and data["vs_ref_mdd"].notna().any():
        ax.plot([], [], color="0.85", linewidth=6, label="± this row's min. detectable diff.")
    ax.set_yticks(ys, names)
    ax.set_ylim(-0.7, len(data) - 0.3)
    refs = [r for r in dict.fromkeys(data["reference"]) if isinstance(r, str)]
    tests = [t for t in dict.fromkeys(data["vs_ref_test"]) if isinstance(t, str)]
    short = [t.split(":")[0] for t in tests]
    from peftlab.reporting.tables import headline_name

    metric = headline_name(summary)  # the task's primary metric: the one the Δ columns compare
    ax.set_xlabel(f"Δ test {metric} vs {', '.join(refs)} (95% interval)\n{'; '.join(short)}; p Holm-adjusted")
    note_missing(ax, summary)
    _legend(fig, ax)
    return style.save(fig, out, "paired_differences")


def training_curves(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    import pandas as pd

    head = Headline(runs, summary)
    points = [
        {
            "label": run["label"],
            "seed": run["seed"],
            "step": p.get("step"),
            head.val: p.get(head.val),
            "val_n": run.get("val_n"),
        }
        for _, run in _ok(runs).iterrows()
        for p in (run["curve"] if isinstance(run["curve"], list) else [])
    ]
    curves = pd.DataFrame(points).dropna(subset=["step", head.val]) if points else pd.DataFrame()
    if curves.empty:
        raise Skipped(f"no validation curve of {head.words} in these records")
    fig, ax = style.figure()
    bands = []
    for label in [m for m in summary["method"] if m in set(curves["label"])]:
        n = "val_n" if head.proportion else None  # the binomial bound holds for a proportion only
        band = _mean_band(curves[curves["label"] == label], "step", head.val, n=n)
        bands.append(band)
        color, marker = styles[label]["color"], styles[label]["marker"]
        ax.plot(band["step"], band["mean"], color=color, marker=marker, markersize=3, label=label)
        low, high = band["low"].fillna(band["mean"]), band["high"].fillna(band["mean"])
        ax.fill_between(band["step"], low, high, color=color, alpha=0.18, lw=0)
    ax.set_xlabel("optimiser step")
    label = head.axis("validation")
    ax.set_ylabel(f"{label}\n({band_label(bands)})" if band_label(bands) else label)
    head.clip(ax)
    note_missing(ax, summary)
    _legend(fig, ax)
    return style.save(fig, out, "training_curves")


# The per-step rollout series every sampling task records (`metrics.rollout`, peftlab/records/record.py):
# the rollout contract's keys in words, for the axes. They are not a task's metric (those come from its `task` block).
ROLLOUT_WORDS = {
    "reward": "rollout reward\n(mean per completion)",
    "reward_std": "reward spread within a group\n(std, mean over groups)",
    "correct": "rollout completions correct\n(share)",
    "format_rate": "rollout completions in format\n(share)",
    "zero_std_fraction": "groups with no reward spread\n(share: no learning signal)",
    "completion_tokens": "completion length\n(tokens, mean)",
    "generated_tokens": "tokens sampled per step",
    "entropy": "policy entropy on its samples\n(nats per token)",
    "kl": "KL to the reference policy\n(per token)",
}
ROLLOUT_PANELS = ("reward", "zero_std_fraction", "entropy")  # the figure's panels, where the records have them
SHARES = ("correct", "format_rate", "zero_std_fraction")  # series bounded by [0, 1]
ROLLOUT_BAND = "line: mean over seeds, band: their min–max"


def rollout_words(key: str) -> str:
    """How an axis names a rollout series (`zero_std_fraction` → its words); unknown keys as written, spaced."""
    return ROLLOUT_WORDS.get(key, key.replace("_", " "))


def _rollout_points(runs: Any) -> Any:
    """One row per (run, rollout step) of the finished runs: label, seed, step and every numeric series."""
    import pandas as pd

    if "rollout" not in runs.columns:
        return pd.DataFrame()
    points = [
        {"label": run["label"], "seed": run["seed"], **{k: v for k, v in p.items() if isinstance(v, (int, float))}}
        for _, run in _ok(runs).iterrows()
        for p in (run["rollout"] if isinstance(run["rollout"], list) else [])
        if isinstance(p, dict)
    ]
    frame = pd.DataFrame(points)
    return frame.dropna(subset=["step"]) if "step" in frame.columns else pd.DataFrame()


def rollout_curves(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    """A sampling task's training signal per optimiser step: rollout reward, groups without signal, entropy.

    One line per method, the mean over its seeds at each step, the band the seeds' min–max (two or three
    seeds: a t-interval would be wider than anything the runs did); the dashed line in the method's colour
    is the base model's probe rollout before step 1 (`metrics.base_rollout`, mean over the method's runs).
    The second panel is the share of prompt groups whose completions all got the same reward: the
    group-normalised advantage is zero there, so those prompts teach nothing. Entropy joins where recorded.
    """
    points = _rollout_points(runs)
    if points.empty:
        raise Skipped("no per-step rollout series in these records (metrics.rollout: a sampling task's)")
    keys = [k for k in ROLLOUT_PANELS if k in points.columns and points[k].notna().any()]
    if "reward" not in keys:
        raise Skipped("the records' rollout series have no reward (metrics.rollout[].reward)")
    labels = [m for m in summary["method"] if m in set(points["label"])]
    fig, axes = _panels(len(keys))
    base = _ok(runs)
    many = points["step"].nunique() > 30  # long runs: lines only, markers would hide them
    for ax, key in zip(axes[:, 0], keys, strict=True):
        for label in labels:
            group = points[points["label"] == label].dropna(subset=[key])
            if group.empty:
                continue
            band = group.groupby("step", sort=True)[key].agg(["mean", "min", "max"]).reset_index()
            look = styles[label]
            ax.plot(band["step"], band["mean"], color=look["color"], marker=None if many else look["marker"],
                    markersize=3, linewidth=1.0, label=label)  # fmt: skip
            if group["seed"].nunique() > 1:
                ax.fill_between(band["step"], band["min"], band["max"], color=look["color"], alpha=0.18, lw=0)
            column = f"base_rollout_{key}"
            if column in base.columns:
                start = base.loc[base["label"] == label, column].dropna()
                if len(start):
                    ax.axhline(float(start.mean()), color=look["color"], linestyle="--", linewidth=0.8, alpha=0.8)
        if key in SHARES:
            ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(rollout_words(key))
    top = axes[0][0]
    if "base_rollout_reward" in base.columns and base["base_rollout_reward"].notna().any():
        top.plot([], [], color="0.3", linestyle="--", linewidth=0.8, label="base model, before step 1 (probe)")
    if (points.groupby("label")["seed"].nunique() > 1).any():
        top.fill_between([], [], [], color="0.5", alpha=0.25, lw=0, label=ROLLOUT_BAND)
    else:
        top.plot([], [], linestyle="none", label="one seed per method: no band")  # a note, no line
    note_missing(top, summary)
    axes[-1][0].set_xlabel("optimiser step")
    _legend(fig, top)
    return style.save(fig, out, "rollout_curves")


def _rank_lines(runs: Any, y: str) -> dict[tuple[str, str, str], Any]:
    """Runs grouped into one line per (method, variant without r, targets) whose rank varies."""
    data = _ok(runs).dropna(subset=["rank", y])
    return {
        key: group
        for key, group in data.groupby(["method", "rank_line", "targets"], sort=False)
        if group["rank"].nunique() > 1
    }


def _draw_rank_lines(
    ax: Any, lines: dict[tuple[str, str, str], Any], y: str, include: tuple[float, ...] = (), n: str | None = None
) -> str:
    """Mean ± 95% band of `y` against rank, each seed's run as a faint point, log2 axis.

    Bands of a proportion (with its example count `n`) are crossed.py's answers from the per-seed
    values (`_mean_band`: (b) where ≥ 2 seeds, else (a)); other quantities keep the
    t-interval over seeds, which with two or three seeds is many times wider than the spread of the
    runs (t = 12.7 for two), so the y axis spans the runs themselves and bands run off it where they
    must. The seed points show what the interval is made of.
    """
    line_styles = style.method_styles([f"{m}|{line}|{t}" for m, line, t in lines])
    several_targets = len({t for _, _, t in lines}) > 1
    ranks: set[float] = set()
    values = list(include)  # reference lines the axis must show (zero, full fine-tuning's mean)
    bands = []
    for (method, line, targets), group in lines.items():
        band = _mean_band(group, "rank", y, n=n)
        bands.append(band)
        look = line_styles[f"{method}|{line}|{targets}"]
        label = f"{line} ({targets})" if several_targets and targets else line
        ax.plot(band["rank"], band["mean"], color=look["color"], marker=look["marker"], label=label)
        low, high = band["low"].fillna(band["mean"]), band["high"].fillna(band["mean"])
        ax.fill_between(band["rank"], low, high, color=look["color"], alpha=0.18, lw=0)
        ax.scatter(group["rank"], group[y], color=look["color"], marker=look["marker"], s=14, alpha=0.4, lw=0)
        ranks |= set(band["rank"])
        values += group[y].astype(float).tolist()
    low, high = min(values), max(values)
    pad = 0.12 * (high - low) or 0.05
    ax.set_ylim(low - pad, high + pad)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ranks), [f"{r:g}" for r in sorted(ranks)])
    ax.minorticks_off()
    return band_label(bands)


def metric_vs_rank(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    head = Headline(runs, summary)
    lines = _rank_lines(runs, head.test) if head.test in runs.columns else {}
    if not lines:
        raise Skipped("no rank sweep in these records (no method with a hyperparameters.r that varies)")
    fig, ax = style.figure()
    bands = _draw_rank_lines(ax, lines, head.test, n="test_n" if head.proportion else None)
    ax.set_xlabel("adapter rank $r$ (log$_2$ scale)")
    ax.set_ylabel(f"{head.axis('test')}\n({bands})" if bands else head.axis("test"))
    _legend(fig, ax, ncols=2)
    return style.save(fig, out, "metric_vs_rank")


def _forgetting_probes(runs: Any) -> list[str]:
    return [
        c.removeprefix("forgetting_")
        for c in runs.columns
        if str(c).startswith("forgetting_") and _ok(runs)[c].notna().any()
    ]


def _panels(count: int) -> tuple[Any, Any]:
    """Probes stacked one above the other, so the figure stays one column wide."""
    import matplotlib.pyplot as plt

    style.apply()
    return plt.subplots(
        count, 1, figsize=(style.WIDTH_IN, 0.6 + 1.9 * count), sharex=True, squeeze=False, layout="constrained"
    )


FORGETTING_AXIS = "forgetting: {probe}\n(+ = forgotten)"


def learning_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(learning, forgetting) points that no other point beats on both (more learnt, less forgotten),
    from the least to the most learning (peftlab/reporting/pareto.py, the reports' one rule)."""
    return pareto.front(points, (True, False))


def learning_vs_forgetting(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    """One point per run: what it learnt on the target task against what it forgot, per probe.

    Learning is the target-task gain over the untrained model when the records have it (the
    base score differs between runs only by their fresh head), else the test score; both in the
    records' chosen metric, oriented so that right is better (a lower-is-better score is negated).
    """
    probes = _forgetting_probes(runs)
    if not probes:
        raise Skipped("no forgetting deltas in these records (forgetting.<probe>.delta)")
    head = Headline(runs, summary)
    gain = "learning_gain" in runs.columns and _ok(runs)["learning_gain"].notna().any()
    x = "learning_gain" if gain else head.test
    if x not in runs.columns:
        raise Skipped(f"no learning gain and no test {head.words} in these records")
    if not gain and not head.up:
        runs = runs.assign(**{x: -runs[x]})
    fig, axes = _panels(min(len(probes), 3))
    order = [m for m in summary["method"] if m in set(_ok(runs)["label"])]
    for ax, probe in zip(axes[:, 0], probes[:3], strict=False):
        data = _ok(runs).dropna(subset=[x, f"forgetting_{probe}"])
        for label in order:
            part = data[data["label"] == label]
            if len(part):
                look = styles[label]
                ax.scatter(part[x], part[f"forgetting_{probe}"], color=look["color"], marker=look["marker"], s=16,
                           label=label, zorder=3)  # fmt: skip
        # the least forgetting attainable while learning at least x: steps up just after each front point
        front = learning_front(list(zip(data[x], data[f"forgetting_{probe}"], strict=True)))
        if len(front) > 1:
            xs, ys = zip(*front, strict=True)
            ax.step(xs, ys, where="pre", color="0.45", linestyle="--", linewidth=0.9, label="Pareto frontier")
        ax.axhline(0.0, color="0.5", linewidth=0.7, linestyle=":")
        ax.set_ylabel(FORGETTING_AXIS.format(probe=probe))
    axes[-1][0].set_xlabel(
        f"learning: test {head.words} gain over the untrained model"
        if gain
        else (head.axis("test") if head.up else f"− test {head.words} (right is better)")
    )
    _legend(fig, axes[0][0])
    return style.save(fig, out, "learning_vs_forgetting")


def forgetting_vs_rank(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    """Forgetting against adapter rank for each rank sweep; full fine-tuning as a reference line."""
    probes = [p for p in _forgetting_probes(runs) if _rank_lines(runs, f"forgetting_{p}")]
    if not probes:
        raise Skipped("no rank sweep with forgetting deltas in these records")
    fig, axes = _panels(min(len(probes), 3))
    for ax, probe in zip(axes[:, 0], probes[:3], strict=False):
        y = f"forgetting_{probe}"
        full = _ok(runs)[_ok(runs)["method"] == "full"][y].dropna()
        _draw_rank_lines(ax, _rank_lines(runs, y), y, include=(0.0, *([full.mean()] if len(full) else [])))
        if len(full):
            ax.axhline(full.mean(), color="0.3", linestyle="--", linewidth=0.9, label="full fine-tuning (mean)")
        ax.axhline(0.0, color="0.5", linewidth=0.7, linestyle=":")
        ax.set_ylabel(FORGETTING_AXIS.format(probe=probe))
    axes[-1][0].set_xlabel("adapter rank $r$ (log$_2$ scale)")
    _legend(fig, axes[0][0], ncols=2)
    return style.save(fig, out, "forgetting_vs_rank")


def _trials(runs: Any) -> Any:
    if "trial.number" not in runs.columns:
        raise Skipped("no Optuna trial information in these records (trial.number)")
    data = _ok(runs).dropna(subset=["trial.number"]).copy()
    try:
        fallback = Headline(runs).val  # records from before the trial block kept their values: the chosen metric
    except Skipped:
        fallback = "trial.value"
    recorded = "trial.value" in data.columns and data["trial.value"].notna().any()
    objective = "trial.value" if recorded or fallback not in data.columns else fallback
    if objective not in data.columns:
        raise Skipped("no objective value in the trial records (trial.value)")
    data["objective"] = data[objective]
    data = data.dropna(subset=["objective"]).sort_values("trial.number")
    if len(data) < 2:
        raise Skipped("fewer than two finished Optuna trials")
    return data


def optuna_history(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    """Each of the study's own objectives per trial, one panel each, with the best so far in its direction.

    Objectives and directions are read from the records' `trial` block (`values`, `directions`),
    as the search wrote them: a search on macro-F1 plots macro-F1, and a minimised objective's
    best so far is the running minimum. Records without that block (from before it existed)
    fall back to the records' chosen metric on validation, in its direction, and say so on the axis.
    """
    if "trial.number" not in runs.columns:
        raise Skipped("no Optuna trial information in these records (trial.number)")
    names = [str(c).removeprefix("trial.directions.") for c in runs.columns if str(c).startswith("trial.directions.")]
    names = [n for n in names if runs[f"trial.directions.{n}"].notna().any() and f"trial.values.{n}" in runs.columns]
    if names:
        data = _ok(runs).dropna(subset=["trial.number"]).sort_values("trial.number")
        objectives = [
            (f"trial.values.{n}", n.replace("_", " "), runs[f"trial.directions.{n}"].dropna().iloc[0] == "maximize")
            for n in names
        ]
    else:
        data = _trials(runs)
        head = Headline(runs)
        objectives = [("objective", f"validation {head.words} (no objective recorded)", head.up)]
    if all(data[column].notna().sum() < 2 for column, _, _ in objectives):
        raise Skipped("fewer than two finished Optuna trials")
    fig, axes = _panels(len(objectives))
    accent = style.method_styles(["x"])["x"]["color"]
    for ax, (column, name, up) in zip(axes[:, 0], objectives, strict=True):
        points = data.dropna(subset=[column])
        values = points[column].astype(float)
        ax.scatter(points["trial.number"], values, s=10, color="0.35", label="trial", zorder=3)
        best = values.cummax() if up else values.cummin()
        ax.step(points["trial.number"], best, where="post", color=accent, label="best so far")
        ax.set_ylabel(f"{name}\n({'higher' if up else 'lower'} is better)")
    axes[-1][0].set_xlabel("trial number")
    _legend(fig, axes[0][0])
    return style.save(fig, out, "optuna_history")


def optuna_importances(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    """fANOVA importances of a study rebuilt from the records: the records, not a study DB, are the truth."""
    data = _trials(runs)  # before importing optuna: records without trials must skip, wherever optuna is absent
    import optuna

    params = [c for c in data.columns if c.startswith("trial.params.") and data[c].nunique(dropna=True) > 1]
    if not params or len(data) < 4:
        raise Skipped("needs at least four trials and one hyperparameter that varies")
    distributions = {}
    for column in params:
        values = data[column].dropna()
        name = column.removeprefix("trial.params.")
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            low, high = float(values.min()), float(values.max())
            log = low > 0 and high / low >= 100
            if all(float(v).is_integer() for v in values) and not log:
                distributions[name] = optuna.distributions.IntDistribution(int(low), int(high))
            else:
                distributions[name] = optuna.distributions.FloatDistribution(low, high, log=log)
        else:
            distributions[name] = optuna.distributions.CategoricalDistribution(sorted({str(v) for v in values}))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for _, row in data.iterrows():
        chosen = {}
        for column in params:
            name = column.removeprefix("trial.params.")
            value = row[column]
            dist = distributions[name]
            chosen[name] = (
                str(value) if isinstance(dist, optuna.distributions.CategoricalDistribution)
                else int(value) if isinstance(dist, optuna.distributions.IntDistribution) else float(value)
            )  # fmt: skip
        study.add_trial(optuna.trial.create_trial(params=chosen, distributions=distributions, value=row["objective"]))
    importances = optuna.importance.get_param_importances(study)
    fig, ax = style.figure(height=0.3 * len(importances) + 0.9)
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color=style.method_styles(["x"])["x"]["color"])
    ax.set_xlabel("hyperparameter importance (fANOVA, fraction)")
    return style.save(fig, out, "optuna_importances")


def optuna_pareto(runs: Any, summary: Any, styles: dict, out: Path) -> list[Path]:
    """Multi-objective studies: every trial on the first two objectives, the Pareto-optimal ones joined."""
    if "trial.number" not in runs.columns:
        raise Skipped("no Optuna trial information in these records (trial.number)")
    names = [c.removeprefix("trial.directions.") for c in runs.columns if str(c).startswith("trial.directions.")]
    names = [n for n in names if runs[f"trial.directions.{n}"].notna().any()]
    if len(names) < 2:
        raise Skipped("not a multi-objective study (fewer than two objectives in trial.directions)")
    x_name, y_name = names[:2]
    if runs[f"trial.directions.{x_name}"].dropna().iloc[0] == "maximize":  # the quality objective goes up the y axis
        x_name, y_name = y_name, x_name
    columns = [f"trial.values.{x_name}", f"trial.values.{y_name}"]
    if not all(c in runs.columns for c in columns):
        raise Skipped("no objective values in the trial records (trial.values)")
    data = _ok(runs).dropna(subset=columns)
    if len(data) < 2:
        raise Skipped("fewer than two finished multi-objective trials")
    directions = [runs[f"trial.directions.{n}"].dropna().iloc[0] == "maximize" for n in (x_name, y_name)]
    xs, ys = data[columns[0]].astype(float).tolist(), data[columns[1]].astype(float).tolist()
    best = non_dominated(list(zip(xs, ys, strict=True)), (directions[0], directions[1]))
    fig, ax = style.figure()
    for method, group in data.assign(_best=best).groupby("method", sort=False):
        st = styles.get(method, style.method_styles([method])[method])
        ax.scatter(group[columns[0]], group[columns[1]], s=12, color=st["color"], marker=st["marker"], label=method)
    front = sorted((x, y) for x, y, b in zip(xs, ys, best, strict=True) if b)
    ax.plot([p[0] for p in front], [p[1] for p in front], color="0.2", linewidth=0.8, zorder=2, label="Pareto front")
    for values, scale in ((xs, ax.set_xscale), (ys, ax.set_yscale)):
        if min(values) > 0 and max(values) / min(values) >= 30:  # counts and sizes span orders of magnitude
            scale("log")
    for axis, name, up in ((ax.set_xlabel, x_name, directions[0]), (ax.set_ylabel, y_name, directions[1])):
        axis(f"{name.replace('_', ' ')} ({'higher' if up else 'lower'} is better)")
    _legend(fig, ax)
    return style.save(fig, out, "optuna_pareto")


FIGURES: dict[str, Callable[[Any, Any, dict, Path], list[Path]]] = {
    "metric_vs_trainable_params": metric_vs_trainable_params,
    "metric_vs_memory": metric_vs_memory,
    "throughput": throughput,
    "paired_differences": paired_differences,
    "training_curves": training_curves,
    "rollout_curves": rollout_curves,
    "metric_vs_rank": metric_vs_rank,
    "learning_vs_forgetting": learning_vs_forgetting,
    "forgetting_vs_rank": forgetting_vs_rank,
    "optuna_history": optuna_history,
    "optuna_importances": optuna_importances,
    "optuna_pareto": optuna_pareto,
}


def write_figures(runs: Any, summary: Any, out: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Every figure the data allows; the rest are named with the reason they were skipped."""
    import matplotlib.pyplot as plt

    styles = style.method_styles(list(summary["method"]))
    if "trial.number" in runs.columns and runs["trial.number"].isna().any():
        compared = runs[runs["trial.number"].isna()]
    else:
        compared = runs
    written: list[Path] = []
    for name, make in FIGURES.items():
        try:
            written += make(runs if name.startswith("optuna") else compared, summary, styles, out)
        except Skipped as why:
            plt.close("all")
            for stale in (out / f"{name}.png", out / f"{name}.pdf"):  # a figure of older records would mislead
                stale.unlink(missing_ok=True)
            log(f"skipped {name}: {why}")
    return written
