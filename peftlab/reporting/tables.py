"""Summary tables (CSV, Markdown, booktabs LaTeX) and the macros file, all cut from one summary frame.

Each column is declared once (`Column`): how it is formatted, and whether more or less is better.
The table, the bold "best" marker and the `\\newcommand` the paper quotes use the same formatter,
so the text and the table cannot round the same number differently.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from peftlab.reporting.latex import camel, escape, newcommand, tag

if TYPE_CHECKING:
    from peftlab.records.record import RunRecord


def _fixed(digits: int) -> Callable[[float], str]:
    return lambda v: f"{v:.{digits}f}"


def _thousands(v: float) -> str:
    return f"{v:,.0f}"


def _pct(v: float) -> str:
    """Trainable % spans 100 down to 0.004: three significant digits keep both readable."""
    text = f"{v:.3g}"
    return f"{v:.5f}" if "e" in text else text


def _signed(v: float) -> str:
    return f"{v:+.3f}"


@dataclass(frozen=True)
class Column:
    key: str  # summary column holding the value (the mean for metrics)
    header: str  # Markdown / CSV-facing header
    latex: str  # LaTeX header (already LaTeX)
    macro: str  # macro suffix, letters only
    better: str  # "max" or "min"
    fmt: Callable[[float], str]
    ci: str | None = None  # summary column holding the 95% half-width, if any
    cost: bool = False  # a training cost: rows that train nothing (zero-shot) cannot win it


def columns(summary: Any) -> list[Column]:
    """The table's columns for this summary: forgetting columns only when the records carry them."""
    device = _main_device(summary)
    memory = "peak RSS (MB)" if device in (None, "cpu") else "peak alloc. (MB)"
    memory_tex = escape(memory[:1].upper() + memory[1:])
    cols = [*metric_columns(summary)]
    cols += [
        Column("trainable_pct", "trainable %", r"Train.\ \%", "TrainPct", "min", _pct, cost=True),
        Column("peak_memory_mb", memory, memory_tex, "PeakMem", "min", _thousands, cost=True),
        # CPU: weights + gradients + optimiser state + one step's activations (measure.training_state)
        Column("train_state_mb", "train state (MB)", r"Train state (MB)", "TrainStateMem", "min", _fixed(1), cost=True),
        Column("train_tokens_per_s", "train tok/s", "Tok/s", "TokPerSec", "max", _thousands, cost=True),
        # a sampling task's rollouts, timed apart from the update (speed.generation_tokens_per_s)
        Column("generation_tokens_per_s", "gen tok/s", r"Gen.\ tok/s", "GenTokPerSec", "max", _thousands, cost=True),
        Column("saved_mb", "saved MB", "Saved (MB)", "SavedMB", "min", _fixed(2), cost=True),
    ]
    cols.append(Column("learning_gain_mean", "learning gain", "Gain", "Gain", "max", _signed, "learning_gain_ci95"))
    for probe in _probes(summary):
        cols.append(
            Column(
                f"forgetting_{probe}_mean",
                f"forgetting {probe}",
                rf"Forg.\ {escape(probe)}",
                f"Forget{camel(probe)}",
                "min",  # delta = amount forgotten, positive = worse (loss up or accuracy down)
                _signed,
                f"forgetting_{probe}_ci95",
            )
        )
    return [c for c in cols if c.key in summary.columns and summary[c.key].notna().any()]


def metric_display(name: str) -> tuple[str, str, str]:
    """(Markdown name, LaTeX header, macro suffix) of a metric, as its task declares (`MetricSpec.display`)."""
    from peftlab.task_specs import declared_metric

    spec = declared_metric(name)
    if spec is not None and spec.display:
        return spec.display
    return name.replace("_", " "), escape(name.replace("_", " ")), camel(name)


def metric_words(name: str) -> str:
    """How a sentence names a metric (`accuracy`, `Pearson r`): the task's `words`, else its display name."""
    from peftlab.task_specs import declared_metric

    spec = declared_metric(name)
    return (spec.words if spec is not None else None) or metric_display(name)[0]


def _task_metrics(summary: Any) -> dict[str, Any]:
    """Declared MetricSpec by name, over the summary's tasks (task_specs); {} for summaries without `task`."""
    from peftlab.task_specs import get_task_spec

    out: dict[str, Any] = {}
    tasks = [t for t in dict.fromkeys(summary["task"]) if isinstance(t, str)] if "task" in summary.columns else []
    for task in tasks:
        try:
            spec = get_task_spec(task)
        except KeyError:
            continue
        for metric in spec.metrics:
            out.setdefault(metric.name, metric)
    return out


def primary_metrics(summary: Any) -> list[str]:
    """The summary's headline metrics: each experiment's primary, as its records' `task` block names it.

    A summary without it (no finished run) names the first metric with a mean, else none.
    """
    found = [m for m in dict.fromkeys(summary.get("primary_metric", [])) if isinstance(m, str)]
    if found:
        return found
    means = [str(c).removeprefix("test_").removesuffix("_mean") for c in summary.columns]
    return [m for m in means if f"test_{m}_mean" in summary.columns][:1]


def default_primaries(summary: Any) -> list[str]:
    """The default primary metric of each of the summary's tasks (shown with its interval under any `data.metric`)."""
    from peftlab.task_specs import get_task_spec

    tasks = [t for t in dict.fromkeys(summary["task"]) if isinstance(t, str)] if "task" in summary.columns else []
    out = []
    for task in tasks:
        try:
            out.append(get_task_spec(task).primary)
        except KeyError:
            continue
    return list(dict.fromkeys(out))


def headline_name(summary: Any) -> str:
    """How the notes, sentences and axes name the headline metric: `accuracy`, `Pearson r`, ..."""
    return " / ".join(metric_words(m) for m in primary_metrics(summary)) or "score"


def metric_columns(summary: Any) -> list[Column]:
    """The quality columns: each task's primary metric first, named as declared, then its other metrics.

    A metric's direction (`max`/`min`) comes from the task's declaration, so bold means better in
    that direction; a metric with an engine interval shows `[low, high]` and "(95% CI)".
    """
    declared = _task_metrics(summary)
    primaries = primary_metrics(summary)
    names = [m.removeprefix("test_").removesuffix("_mean") for m in summary.columns]
    names = [m for m in names if f"test_{m}_mean" in summary.columns and m in declared]
    order = list(dict.fromkeys([*primaries, *names]))
    cols = []
    for name in order:
        key = f"test_{name}_mean"
        if key not in summary.columns:
            continue
        spec = declared.get(name)
        if spec is None and name not in primaries:
            continue
        short, latex, macro = metric_display(name)
        ci = f"test_{name}_ci95"
        headed = name in primaries or name in default_primaries(summary)
        header = f"test {short} (95% CI)" if headed else f"test {short}"
        direction = spec.direction if spec is not None else "max"
        fmt = _fixed(3) if spec is None or spec.fmt == ".3f" else (lambda v, f=spec.fmt: format(v, f))
        cols.append(Column(key, header, latex, macro, direction, fmt, ci))
    return cols


def _direction(summary: Any, metric: str) -> str:
    """`max` or `min`: the declared direction of `metric` (max when no task declares it)."""
    spec = _task_metrics(summary).get(metric)
    return spec.direction if spec is not None else "max"


def _headline_questions(summary: Any) -> list[Any]:
    """Per row: the question its headline interval answers (its task's primary metric's)."""
    fallback = (primary_metrics(summary) or [""])[0]
    primaries = summary["primary_metric"] if "primary_metric" in summary.columns else [fallback] * len(summary)
    out = []
    for (_, row), metric in zip(summary.iterrows(), primaries, strict=True):
        metric = metric if isinstance(metric, str) else fallback
        out.append(row.get(f"test_{metric}_question"))
    return out


def _probes(summary: Any) -> list[str]:
    return [c.removeprefix("forgetting_").removesuffix("_mean") for c in summary.columns if _is_forget_mean(c)]


def _is_forget_mean(column: str) -> bool:
    return column.startswith("forgetting_") and column.endswith("_mean")


def _main_device(summary: Any) -> str | None:
    devices = summary["device"].dropna() if "device" in summary.columns else []
    return Counter(devices).most_common(1)[0][0] if len(devices) else None


def _finite(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _mark_column(col: Column) -> str:
    return col.key.removesuffix("_mean") + "_mark"


def marks(summary: Any, col: Column) -> list[str | None]:
    """ "best" / "tied" / None per row for a column with a significance test (peftlab/stats/crossed.py), else None."""
    column = _mark_column(col)
    if column not in summary.columns:
        return [None] * len(summary)
    return [m if m in ("best", "tied") else None for m in summary[column]]


def best_mask(summary: Any, col: Column) -> list[bool]:
    """Which rows are marked best.

    A metric, or a sampled cost (peak memory, tokens/s), is best only where the statistics found its
    leader significantly ahead of EVERY other row (`<metric>_mark`, intersection–union); the
    deterministic costs (trainable %, saved MB) are measured, not sampled, so the best displayed
    value wins (ties after rounding are all best).
    A zero-shot row has 0 trainable parameters and saves 0 MB; marking that "best" would praise a
    method for not training, so cost columns are contested only by rows that train something.
    """
    if _mark_column(col) in summary.columns:
        return [m == "best" for m in marks(summary, col)]
    shown = [col.fmt(v) if _finite(v) else None for v in summary[col.key]]
    if col.cost and "trainable_params" in summary.columns:
        shown = [s if _finite(n) and n > 0 else None for s, n in zip(shown, summary["trainable_params"], strict=True)]
    values = [float(v) for v, s in zip(summary[col.key], shown, strict=True) if _finite(v) and s is not None]
    if not values:
        return [False] * len(summary)
    best = col.fmt(max(values) if col.better == "max" else min(values))
    return [s is not None and s == best for s in shown]


TIED = "†"  # tied for best: not significantly different from the leader


def _cell(
    value: Any, half: Any, col: Column, *, latex: bool, best: bool, tied: bool = False, bounds: Any = None
) -> str:
    """`mean [low, high]` when the interval is asymmetric (bootstrap), else `mean ± half`; bold = best."""
    if not _finite(value):
        return "--" if latex else "—"
    text = col.fmt(float(value))
    low, high = bounds if bounds is not None else (None, None)
    if latex:
        text = text.replace("+", "$+$").replace("-", "$-$") if col.fmt is _signed else text.replace(",", "{,}")
        main = rf"\textbf{{{text}}}" if best else text
        main += r"$^\dagger$" if tied else ""
        if _finite(low) and _finite(high):
            return main + rf"\,{{\scriptsize[{col.fmt(float(low))}, {col.fmt(float(high))}]}}"
        return main + (rf"\,{{\scriptsize$\pm${col.fmt(float(half)).lstrip('+')}}}" if _finite(half) else "")
    main = (f"**{text}**" if best else text) + (TIED if tied else "")
    if _finite(low) and _finite(high):
        return main + f" [{col.fmt(float(low))}, {col.fmt(float(high))}]"
    return main + (f" ± {col.fmt(float(half)).lstrip('+')}" if _finite(half) else "")


def _multi(summary: Any) -> bool:
    return "experiment" in summary.columns and summary["experiment"].nunique() > 1


def display_frame(summary: Any, *, latex: bool) -> Any:
    """The formatted table (strings only), best values marked."""
    import pandas as pd

    cols = columns(summary)
    out: dict[str, list[str]] = {}
    if _multi(summary):
        out["Experiment" if latex else "experiment"] = [escape(e) if latex else str(e) for e in summary["experiment"]]
    out["Method" if latex else "method"] = [rf"\texttt{{{escape(m)}}}" if latex else str(m) for m in summary["method"]]
    planned = summary["runs_planned"] if "runs_planned" in summary.columns else summary["runs"]
    out["Runs" if latex else "runs ok/planned"] = [f"{a}/{b}" for a, b in zip(summary["runs_ok"], planned, strict=True)]
    notes = footnote_numbers(summary)
    out["Not ok" if latex else "not ok"] = [
        _not_ok(row, notes.get(i), latex=latex) for i, (_, row) in enumerate(summary.iterrows())
    ]
    questions = _headline_questions(summary)
    if not latex and any(isinstance(q, str) for q in questions):
        low = _low_coverage(summary, _headline_prefixes(summary))
        out["question"] = [
            (QUESTION_TEXT.get(q, "") + (f" {LOW_COVERAGE}" if q == "b" and flag else "")) if isinstance(q, str) else ""
            for q, flag in zip(questions, low, strict=True)
        ]
    for col in cols:
        mask = best_mask(summary, col)
        tied = [m == "tied" for m in marks(summary, col)]
        halves = summary[col.ci] if col.ci and col.ci in summary.columns else [None] * len(summary)
        base = col.key.removesuffix("_mean")
        bounds = (
            list(zip(summary[f"{base}_low"], summary[f"{base}_high"], strict=True))
            if f"{base}_low" in summary.columns
            else [None] * len(summary)
        )
        out[col.latex if latex else col.header] = [
            _cell(v, h, col, latex=latex, best=b, tied=t, bounds=lh)
            for v, h, b, t, lh in zip(summary[col.key], halves, mask, tied, bounds, strict=True)
        ]
        compared = "vs_ref_diff" in summary.columns and summary["vs_ref_diff"].notna().any()
        if col.key == f"test_{primary_metrics(summary)[0]}_mean" and compared:
            out.update(_reference_columns(summary, latex=latex))
    if not latex:
        if "trainable_params" in summary.columns:
            out["trainable params"] = [_thousands(v) if _finite(v) else "—" for v in summary["trainable_params"]]
        if "train_s" in summary.columns:
            out["train s"] = [f"{v:.0f}" if _finite(v) else "—" for v in summary["train_s"]]
    return pd.DataFrame(out)


LOW_COVERAGE = "‡"  # a (b) interval whose coverage the calibration measured below target at this design


def _headline_prefixes(summary: Any) -> list[str]:
    """Per row: `test_<its primary metric>_b`, where its headline (b) coverage flag lives."""
    fallback = (primary_metrics(summary) or [""])[0]
    primaries = summary["primary_metric"] if "primary_metric" in summary.columns else [fallback] * len(summary)
    return [f"test_{m if isinstance(m, str) else fallback}_b" for m in primaries]


def _low_coverage(summary: Any, prefixes: list[str]) -> list[bool]:
    return [
        _finite(row.get(f"{prefix}_coverage")) for (_, row), prefix in zip(summary.iterrows(), prefixes, strict=True)
    ]


def coverage_notes(summary: Any) -> list[str]:
    """One line per flagged (b) interval: the calibration cell that measured its coverage below target."""
    lines = []
    for (_, row), prefix in zip(summary.iterrows(), _headline_prefixes(summary), strict=True):
        for key, what in ((prefix, "interval"), ("vs_ref_b", "Δ interval")):
            if _finite(row.get(f"{key}_coverage")):
                lines.append(
                    f"{LOW_COVERAGE} {row['method']}: its recipe (b) {what} covers about "
                    f"{float(row[f'{key}_coverage']):.2f}, not 0.95, in the calibration cell of its design "
                    f"({row[f'{key}_coverage_cell']}; docs/statistics.md): more seeds narrow the doubt."
                )
    return lines


QUESTION_WORDS = {  # for the paper's sentences
    "b": "this training recipe (seeds and test examples random)",
    "a": "these trained models (test examples random)",
    "nested": "a nested bootstrap (no predictions)",
}
QUESTION_TEXT = {  # the `question` column: which question the row's headline intervals and marks answer
    "b": "recipe (b)",
    "a": "these models (a); (b) n.e.: 1 seed",
    "nested": "nested (no predictions)",
}


def _reference_columns(summary: Any, *, latex: bool) -> dict[str, list[str]]:
    """Δ vs the reference for both questions (interval, Holm p), the headline's MDD and what would resolve Δ."""
    refs = [r for r in dict.fromkeys(summary["reference"]) if isinstance(r, str)]
    name = refs[0] if len(refs) == 1 else "reference"
    metrics = [m for m in dict.fromkeys(summary.get("vs_ref_metric", [])) if isinstance(m, str)]
    short = metric_display(metrics[0])[0] if len(metrics) == 1 else "metric"
    cols: dict[str, list[str]] = {k: [] for k in ("b", "pb", "a", "pa", "mdd", "resolve", "head", "phead")}
    for _, row in summary.iterrows():
        if row["method"] == row["reference"]:
            for k in cols:
                cols[k].append("(reference)" if k in ("b", "a", "head") else "")
            continue
        question = row.get("vs_ref_question")
        if question == "nested":
            text = _diff_text(row, "vs_ref", latex=latex) + " (nested)"
            cols["b"].append(text)
            cols["pb"].append(_p_text(row["vs_ref_p_holm"], nested=True))
            cols["a"].append("")
            cols["pa"].append("")
            cols["head"].append(text)
            cols["phead"].append(_p_text(row["vs_ref_p_holm"], nested=True))
            cols["mdd"].append("")
            cols["resolve"].append("")
            continue
        if not isinstance(question, str):
            for k in cols:
                cols[k].append("--" if latex and k in ("b", "a", "head") else "—" if k in ("b", "a", "head") else "")
            continue
        b_ok = _finite(row.get("vs_ref_b_diff")) and _finite(row.get("vs_ref_b_low"))
        flag = f" {LOW_COVERAGE}" if _finite(row.get("vs_ref_b_coverage")) else ""
        cols["b"].append(_diff_text(row, "vs_ref_b", latex=latex) + flag if b_ok else "not estimable (one seed)")
        cols["pb"].append(_p_text(row["vs_ref_b_p_holm"]) if b_ok else "")
        cols["a"].append(_diff_text(row, "vs_ref_a", latex=latex))
        cols["pa"].append(_p_text(row["vs_ref_a_p_holm"]))
        cols["head"].append(_diff_text(row, "vs_ref", latex=latex))
        cols["phead"].append(_p_text(row["vs_ref_p_holm"]))
        cols["mdd"].append(f"{row['vs_ref_mdd']:.3f} ({question})" if _finite(row.get("vs_ref_mdd")) else "")
        cols["resolve"].append(_resolve_text(row))
    if latex:
        questions = {q for q in summary.get("vs_ref_question", []) if isinstance(q, str)}
        tag = f" ({questions.pop()})" if len(questions) == 1 else ""
        return {
            rf"$\Delta$ vs \texttt{{{escape(name)}}}{tag}": cols["head"],
            rf"$p_{{\mathrm{{Holm}}}}${tag}": [c.replace("<", "$<$") for c in cols["phead"]],
        }
    return {
        f"Δ {short} vs {name}, recipe (b) [95% CI]": cols["b"],
        "p (b, Holm)": cols["pb"],
        f"Δ {short} vs {name}, these models (a) [95% CI]": cols["a"],
        "p (a, Holm)": cols["pa"],
        "MDD": cols["mdd"],
        "to resolve Δ": cols["resolve"],
    }


def _diff_text(row: Any, prefix: str, *, latex: bool) -> str:
    if not _finite(row.get(f"{prefix}_diff")):
        return "--" if latex else "—"
    text = f"{row[f'{prefix}_diff']:+.3f} [{row[f'{prefix}_low']:+.3f}, {row[f'{prefix}_high']:+.3f}]"
    return _latex_number(text) if latex else text


def _resolve_text(row: Any) -> str:
    """What would detect the observed Δ at 80% power: seeds per method (b), else test examples."""
    from peftlab.stats.crossed import ALPHA

    if _finite(row.get("vs_ref_p_holm")) and row["vs_ref_p_holm"] < ALPHA:
        return "resolved"
    seeds, examples = row.get("vs_ref_seeds_to_resolve"), row.get("vs_ref_examples_to_resolve")
    if row.get("vs_ref_question") == "b" and _finite(seeds) and not math.isinf(seeds):
        return f"{int(seeds)} seeds"
    if _finite(examples) and not math.isinf(examples):
        return f"{_thousands(examples)} examples" + (" (and seeds)" if row.get("vs_ref_question") == "b" else "")
    return "Δ ≈ 0" if _finite(row.get("vs_ref_diff")) and abs(row["vs_ref_diff"]) < 5e-4 else "—"


def _p_text(p: Any, *, nested: bool = False) -> str:
    """Never `0`: the engine's p below 0.001 prints `< 0.001`; the nested bootstrap's floor is `< 1/B`."""
    from peftlab.stats.crossed import p_text
    from peftlab.stats.nested import DRAWS

    return p_text(p, DRAWS if nested else None) if _finite(p) else ""


def footnote_numbers(summary: Any) -> dict[int, int]:
    """Row position → footnote number, for rows with an error to quote."""
    numbers: dict[int, int] = {}
    if "first_error" not in summary.columns:
        return numbers
    for i, error in enumerate(summary["first_error"]):
        if isinstance(error, str) and error:
            numbers[i] = len(numbers) + 1
    return numbers


def _not_ok(row: Any, note: int | None, *, latex: bool) -> str:
    """`2 failed, 1 oom` (+ footnote mark) or empty: no run may leave a row silently."""
    from peftlab.reporting.frame import NOT_OK

    parts = [f"{int(row[f'runs_{s}'])} {s}" for s in NOT_OK if _finite(row.get(f"runs_{s}")) and row[f"runs_{s}"]]
    planned = row.get("runs_planned")
    missing = int(planned) - int(row["runs"]) if _finite(planned) else 0
    if missing > 0:
        parts.append(f"{missing} not run")
    text = ", ".join(parts)
    if note is not None and text:
        text += f"$^{{{note}}}$" if latex else f" [{note}]"
    return text


def table_notes(summary: Any) -> list[str]:
    """Lines printed under the Markdown table: the two questions, tests, marks, power, failures."""
    from peftlab.stats.crossed import ALPHA, POWER, QUESTION

    lines: list[str] = []
    experiments = list(dict.fromkeys(summary["experiment"])) if "experiment" in summary.columns else [None]
    for experiment in experiments:
        part = summary if experiment is None else summary[summary["experiment"] == experiment]
        head = f"{experiment}: " if len(experiments) > 1 else ""
        primary = primary_metrics(part)[0]
        what = headline_name(part)
        asked = [q for q in dict.fromkeys(_headline_questions(part)) if isinstance(q, str)]
        if asked:
            lines.append(
                f"{head}Two questions, named in the `question` column and in every Δ header: {QUESTION['b']}; "
                f"{QUESTION['a']}. Headline intervals and marks answer (b) where estimable (≥ 2 seeds with "
                "predictions), else (a); (b) is not estimable at one seed and no width is invented for it."
            )
        kinds = [k for k in dict.fromkeys(part.get(f"test_{primary}_interval", [])) if isinstance(k, str)]
        if kinds:
            lines.append(
                f"{head}Test {what} (the task's primary metric): mean over seeds [95% interval: {'; '.join(kinds)}]. "
                "(b): seeds × examples crossed variance components, t on Satterthwaite df; (a): the example "
                "bootstrap with the same examples for every seed and method, normal reference (docs/statistics.md)."
            )
        if "vs_ref_test" in part.columns and part["vs_ref_diff"].notna().any():
            metric = next((m for m in part.get("vs_ref_metric", []) if isinstance(m, str)), primary)
            counts = {q: int(part[f"vs_ref_{q}_p"].notna().sum()) for q in "ab" if f"vs_ref_{q}_p" in part.columns}
            family = ", ".join(f"{n} for ({q})" for q, n in counts.items() if n)
            lines.append(
                f"{head}Δ = method − `{part['reference'].iloc[0]}` in test {metric}, paired on the test examples; "
                f"p Holm-adjusted within the declared family (every method vs the reference, one metric, one "
                f"question: {family or 'none'}). p is never printed as 0 (< 0.001)."
            )
            lines.append(
                f"{head}MDD: this row's minimum detectable difference for its headline question ({POWER:.0%} power, "
                f"two-sided α = {ALPHA}); to resolve Δ: seeds per method (b, today's examples) or test examples "
                "(a, or b when seeds alone cannot) at which the observed Δ would be detected with that power, "
                "projected from the row's own interval (its variance components and reference distribution) at "
                "the α′ Holm's step-down gives the row in its family."
            )
        mark, mean = f"test_{primary}_mark", f"test_{primary}_mean"
        if mark in part.columns and mean in part.columns and part[mean].notna().sum() > 1:
            lower = _direction(part, primary) == "min"
            best = part.loc[part[mark] == "best", "method"].tolist()
            ranked = part.sort_values(mean, ascending=lower)
            tied = ranked.loc[ranked[mark] == "tied", "method"].tolist()  # leader first
            better = "lower" if lower else "higher"
            if best:
                lines.append(
                    f"{head}**Bold**: significantly better in test {what} ({better} is better) than EVERY other "
                    f"method (intersection–union, each test at α = {ALPHA}): {best[0]}."
                )
            elif tied:
                lines.append(
                    f"{head}No method is significantly best in test {what}; {TIED} marks the tie set (the leader "
                    f"and every method not significantly {'above' if lower else 'below'} it, α = {ALPHA}): "
                    f"{', '.join(tied)}."
                )
    lines += coverage_notes(summary)
    notes = footnote_numbers(summary)
    for position, number in notes.items():
        row = summary.iloc[position]
        bad = int(row["runs"]) - int(row["runs_ok"])
        total = int(row["runs"])
        lines.append(f"[{number}] {row['method']}: {bad} of {total} run(s) not ok; first error: {row['first_error']}")
    return lines


def summary_markdown(summary: Any, *, notes: bool = False) -> str:
    """The Markdown table; with `notes`, the lines that explain it (intervals, tests, power, failures) below."""
    table = display_frame(summary, latex=False).to_markdown(index=False)
    if not notes:
        return table
    return table + "\n\n" + "\n".join(f"- {line}" for line in table_notes(summary))


def summary_latex(summary: Any) -> str:
    """A bare booktabs tabular: the paper wraps it in its own table float and caption."""
    table = display_frame(summary, latex=True)
    align = "l" * (2 if _multi(summary) else 1) + "c" + "r" * (len(table.columns) - (3 if _multi(summary) else 2))
    return table.to_latex(index=False, escape=False, column_format=align)


# ---------------------------------------------------------------- macros


def _mode(values: Any) -> Any:
    values = [v for v in values if _finite(v) and v != ""]
    return Counter(map(str, values)).most_common(1)[0][0] if values else None


def macro_values(summary: Any, records: list[RunRecord]) -> dict[str, str]:
    """Macro name → LaTeX text, for every number and setup fact the paper quotes.

    Per-method numbers use the table's formatter; setup facts (model, data, hardware, versions)
    come from the records' config/env blocks, taking the most common value across runs.
    """
    from peftlab.records.results import flatten

    macros: dict[str, str] = {}
    cols = columns(summary)
    experiments = list(dict.fromkeys(summary["experiment"])) if "experiment" in summary.columns else [""]
    for experiment in experiments:
        prefix = tag(experiment)
        part = summary[summary["experiment"] == experiment] if "experiment" in summary.columns else summary
        runs = [flatten(r) for r in records if (r.experiment or "") == experiment] or [flatten(r) for r in records]
        ok = [r for r in runs if r.get("status") == "ok"] or runs

        def put(name: str, value: Any, *, pre: str = prefix, raw: bool = False) -> None:
            if value is None:
                return
            key = pre + name
            if key in macros:
                raise ValueError(f"two values map to the macro \\{key}; rename a method label")
            macros[key] = str(value) if raw else escape(value)

        def first(key: str, ok: list[dict[str, Any]] = ok) -> Any:
            return _mode(r.get(key) for r in ok)

        put("Name", experiment)
        put("Model", first("model.spec") or first("config.model"))
        put("ModelType", first("model.model_type"))
        put("Dataset", first("data.source"))
        put("DatasetName", first("data.name") or first("data.source"))  # what the rows exactly are
        put("DatasetCitation", first("data.citation") or "(no citation recorded)")
        put("MetricName", headline_name(part))  # what the records were scored by: captions name it
        for split in ("train", "validation", "test"):
            value = first(f"data.sizes.{split}")
            put(f"{camel(split)}Size", _latex_number(_thousands(float(value))) if value is not None else None, raw=True)
        put("NumLabels", first("data.num_labels"))
        put("MaxLength", first("data.max_length"))
        put("Steps", first("config.train.steps"))
        put("BatchSize", first("config.train.batch_size"))
        put("GradAccum", first("config.train.grad_accum"))
        put("Scheduler", first("config.train.scheduler"))
        put("WarmupRatio", first("config.train.warmup_ratio"))
        put("EvalEvery", first("config.train.eval_every"))
        put("Precision", first("config.train.precision"))
        put("DeviceType", first("env.device.type"))
        put("DeviceName", first("env.device.name"))
        put("CpuCount", first("env.device.cpu_count"))
        put("TorchThreads", first("env.device.torch_threads"))
        put("Python", first("env.device.python"))
        put("Platform", first("env.device.platform"))
        put("GpuMemoryMB", first("env.device.gpu_memory_mb"))
        put("Cuda", first("env.device.cuda"))
        put("Hardware", _hardware(first))
        versions = sorted({k for r in ok for k in r if k.startswith("env.versions.")})
        for key in versions:
            put(f"Version{camel(key.removeprefix('env.versions.'))}", first(key))
        seeds = sorted({r.get("seed") for r in ok if r.get("seed") is not None})
        put("NumSeeds", len(seeds))
        put("NumRuns", len(runs))
        put("NumRunsOk", sum(1 for r in runs if r.get("status") == "ok"))
        put("NumMethods", len(part))

        for _, row in part.iterrows():
            name = camel(row["method"])
            put(f"{name}Label", row["method"])
            put(f"{name}Seeds", int(row["runs_ok"]))
            lrs = {r.get("hyperparameters.lr") for r in runs if r.get("label") == row["method"]}
            if len(lrs) == 1 and _finite(next(iter(lrs))):
                put(f"{name}LR", f"{next(iter(lrs)):.0e}".replace("e-0", "e-"), raw=True)
            if _finite(row.get("trainable_params")):
                put(f"{name}TrainParams", _latex_number(_thousands(float(row["trainable_params"]))), raw=True)
            for col in cols:
                if _finite(row[col.key]):
                    put(f"{name}{col.macro}", _latex_number(col.fmt(float(row[col.key]))), raw=True)
                if col.ci and _finite(row.get(col.ci)):
                    put(f"{name}{col.macro}CI", _latex_number(col.fmt(float(row[col.ci])).lstrip("+")), raw=True)
            for metric in dict.fromkeys([*default_primaries(part), *primary_metrics(part)]):
                low, high = row.get(f"test_{metric}_low"), row.get(f"test_{metric}_high")
                if _finite(low) and _finite(high):  # the headline interval's ends (e.g. AccLow, PearsonHigh)
                    suffix = metric_display(metric)[2]
                    put(f"{name}{suffix}Low", _fixed(3)(float(low)), raw=True)
                    put(f"{name}{suffix}High", _fixed(3)(float(high)), raw=True)
            if _finite(row.get("vs_ref_diff")):
                for suffix, key in (("Diff", "vs_ref_diff"), ("DiffLow", "vs_ref_low"), ("DiffHigh", "vs_ref_high")):
                    put(f"{name}{suffix}", _latex_number(f"{float(row[key]):+.3f}"), raw=True)
                put(f"{name}DiffP", _p_text(row["vs_ref_p_holm"]).replace("<", "$<$"), raw=True)
                if isinstance(row.get("vs_ref_question"), str):
                    put(f"{name}DiffQuestion", QUESTION_WORDS.get(row["vs_ref_question"], row["vs_ref_question"]))
                if _finite(row.get("vs_ref_mdd")):
                    put(f"{name}DiffMDD", _fixed(3)(float(row["vs_ref_mdd"])), raw=True)
            if not row.get("runs_ok") and isinstance(row.get("first_error"), str):
                put(f"{name}Error", row["first_error"])
        lr_keys = {label: f"{prefix}{camel(label)}LR" for label in part["method"]}
        lr_text = [rf"\texttt{{{escape(label)}}} {macros[key]}" for label, key in lr_keys.items() if key in macros]
        put("LearningRates", ", ".join(lr_text) if lr_text else None, raw=True)
        put("LRProtocol", _lr_protocol(ok), raw=True)
        for col in cols:
            mask = best_mask(part, col)
            tied = [m == "tied" for m in marks(part, col)]
            winners = [m for m, b in zip(part["method"], mask, strict=True) if b]
            if not winners and any(tied):  # no significant leader: the tied leaders, leader first
                order = part[tied].sort_values(col.key, ascending=col.better == "min")
                winners, mask = list(order["method"]), [m in set(order["method"]) for m in part["method"]]
            if winners:
                put(f"Best{col.macro}Method", ", ".join(winners))
                values = part[col.key][mask]
                top = values.max() if col.better == "max" else values.min()
                put(f"Best{col.macro}", _latex_number(col.fmt(float(top))), raw=True)
        for name, text in stats_macros(part).items():
            put(name, text, raw=True)
    return macros


def stats_macros(part: Any) -> dict[str, str]:
    """Sentences and facts of the statistics, for the paper: best-or-tied, reference, question, failures.

    The sentence follows the table's rule and names its question: a method is called the most
    accurate only where it is significantly ahead of every other (intersection–union); otherwise
    the tie set is named.
    """
    from peftlab.stats.crossed import ALPHA

    out: dict[str, str] = {}
    primary = primary_metrics(part)[0]
    mark, mean = f"test_{primary}_mark", f"test_{primary}_mean"
    if mark not in part.columns or mean not in part.columns:
        return out
    what = metric_words(primary)
    lower = _direction(part, primary) == "min"
    ranked = part.dropna(subset=[mean]).sort_values(mean, ascending=lower)
    acc = {m: _fixed(3)(float(v)) for m, v in zip(ranked["method"], ranked[mean], strict=True)}
    best = ranked.loc[ranked[mark] == "best", "method"].tolist()
    tied = ranked.loc[ranked[mark] == "tied", "method"].tolist()
    questions = [q for q in dict.fromkeys(part.get(f"test_{primary}_question", [])) if isinstance(q, str)]
    about = " and ".join(QUESTION_WORDS.get(q, q) for q in questions) or "the test examples"
    tt = lambda m: rf"\texttt{{{escape(m)}}}"  # noqa: E731
    proportion = getattr(_task_metrics(part).get(primary), "statistic", None) == "mean:correct"  # share correct
    leading = "most accurate" if proportion else f"best in test {escape(what)}"
    if best and len(ranked) > 1:
        runner = ranked["method"].iloc[1]
        out["BestAccSentence"] = (
            f"The {leading} variant is {tt(best[0])} (test {escape(what)} {acc[best[0]]}), significantly ahead of "
            f"every other variant, the runner-up {tt(runner)} ({acc[runner]}) included (question: {escape(about)}; "
            f"each paired test at $\\alpha={ALPHA}$)"
        )
    elif best:
        out["BestAccSentence"] = f"Only {tt(best[0])} finished (test {escape(what)} {acc[best[0]]})"
    elif tied:
        names = ", ".join(f"{tt(m)} ({acc[m]})" for m in tied)
        out["BestAccSentence"] = (
            f"No variant is significantly the {leading.removeprefix('best in ')}: {names} are tied "
            if proportion
            else f"No variant is significantly best in test {escape(what)}: {names} are tied "
        ) + (
            f"(none is significantly {'above' if lower else 'below'} the leader; question: {escape(about)}; "
            f"paired tests, $\\alpha={ALPHA}$)"
        )
    if questions:
        out["Question"] = escape(about)
    refs = [r for r in dict.fromkeys(part.get("reference", [])) if isinstance(r, str)]
    if refs:
        out["Reference"] = tt(refs[0])
    tests = [t for t in dict.fromkeys(part.get("vs_ref_test", [])) if isinstance(t, str)]
    if tests:
        out["DiffTest"] = escape("; ".join(tests))
    kinds = [k for k in dict.fromkeys(part.get(f"test_{primary}_interval", [])) if isinstance(k, str)]
    if kinds:
        out["IntervalMethod"] = escape("; ".join(kinds))
    mdd = part["vs_ref_mdd"].dropna() if "vs_ref_mdd" in part.columns else []
    if len(mdd):  # each comparison has its own MDD: the paper quotes their range and the question
        low, high = _fixed(3)(float(mdd.min())), _fixed(3)(float(mdd.max()))
        asked = [q for q in dict.fromkeys(part.loc[mdd.index, "vs_ref_question"]) if isinstance(q, str)]
        out["MDD"] = (low if low == high else f"{low}--{high}") + f" (question {', '.join(asked)})"
        n = part["vs_ref_n"].dropna() if "vs_ref_n" in part.columns else []
        if len(n):
            out["MDDExamples"] = _latex_number(_thousands(float(n.min())))
        ref_rows = part[part["method"] == part["reference"]]
        if len(ref_rows):
            out["MDDSeeds"] = str(int(ref_rows["runs_ok"].iloc[0]))
    notes = footnote_numbers(part)
    if notes:
        rows = [part.iloc[i] for i in notes]
        out["TableNotes"] = "; ".join(
            rf"$^{{{n}}}$\,{tt(r['method'])}: {escape(str(r['first_error']))}"
            for n, r in zip(notes.values(), rows, strict=True)
        )
    failed = [m for m, ok in zip(part["method"], part["runs_ok"], strict=True) if not ok]
    if failed:
        out["MethodsWithoutRun"] = ", ".join(tt(m) for m in failed)
    return out


def _lr_protocol(ok: list[dict[str, Any]]) -> str:
    """How the learning rates were chosen, for the paper: by hand per method, or tuned on validation.

    A sentence the paper cannot get wrong: it comes from the records' `protocol` block (written by
    the tuned planner, peftlab/planners/tuned.py), not from the YAML the paper's author remembers.
    """
    tuned = [r for r in ok if r.get("protocol.tuned")]
    if not tuned:
        return "Each method keeps its own, hand-picked learning rate (no tuning protocol)."
    trials = "/".join(str(t) for t in sorted({int(r["protocol.trials"]) for r in tuned if r.get("protocol.trials")}))
    seed, objective = _mode(r.get("protocol.seed") for r in tuned), _mode(r.get("protocol.objective") for r in tuned)
    share = "" if len(tuned) == len(ok) else f" ({len(tuned)} of {len(ok)} runs)"
    return (
        f"Each method's learning rate (and any declared search space) was tuned on validation "
        f"({escape(str(objective))}) with {trials} TPE trials at seed {seed}{share}; the chosen configuration was then "
        "run at every seed and evaluated once on test."
    )


def _hardware(first: Callable[[str], Any]) -> str | None:
    """One phrase for the setup section, e.g. `NVIDIA H100 GPU (80 GB, CUDA 12.8)` or `AMD EPYC CPU (2 cores)`."""
    name, kind = first("env.device.name"), first("env.device.type")
    if name is None:
        return None
    if kind == "cuda":
        details = (
            [f"{float(first('env.device.gpu_memory_mb')) / 1024:.0f} GB"] if first("env.device.gpu_memory_mb") else []
        )
        details += [f"CUDA {first('env.device.cuda')}"] if first("env.device.cuda") else []
        return f"{name} GPU" + (f" ({', '.join(details)})" if details else "")
    details = [f"{first('env.device.cpu_count')} cores"] if first("env.device.cpu_count") else []
    details += [f"{first('env.device.torch_threads')} PyTorch threads"] if first("env.device.torch_threads") else []
    return f"{name} {(kind or 'cpu').upper()}" + (f" ({', '.join(details)})" if details else "")


def _latex_number(text: str) -> str:
    """`1,345` → `1{,}345` (no space after a thousands comma), `-0.010` → `$-$0.010`."""
    return text.replace(",", "{,}").replace("-", "$-$").replace("+", "$+$")


def macros_tex(summary: Any, records: list[RunRecord]) -> str:
    lines = [
        "% Generated by `python -m peftlab.report` from run records: do not edit, re-run the report.",
        "% Numbers use the same formatter as summary.tex. AccCI: the larger half of the headline interval (question",
        "% (b) recipe where estimable, else (a) these models; peftlab/stats/crossed.py), AccLow/AccHigh its ends;",
        "% other ± values are 95% t-interval half-widths over seeds.",
    ]
    lines += [newcommand(name, value) for name, value in macro_values(summary, records).items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- rank sweeps


def rank_sweep(runs: Any, summary: Any = None) -> Any:
    """Long table of a rank ablation: one row per (line, rank), the records' chosen metric's mean and 95% interval.

    A line is a method variant without its rank (`lora-q[r=4]` → `lora-q`), the same grouping as
    the metric-vs-rank figure. Empty when no line varies its rank. With the `summary`, each cell
    carries that variant's headline interval (peftlab/stats/crossed.py: (b) where estimable, else (a))
    and its paired difference against the experiment's reference (set `report.reference:
    lora-q[r=8]` to read a sweep against r = 8); without it, the t-interval over seeds. The metric
    and its direction are the records' `task` block's (columns `metric`, `direction` of each row).
    """
    import pandas as pd

    from peftlab.reporting.frame import chosen_metric, ci95

    metric, direction = chosen_metric(runs)
    value = f"test_{metric}"
    if metric is None or value not in runs.columns:
        return pd.DataFrame()
    ok = runs[(runs["status"] == "ok")].dropna(subset=["rank", value])
    by_label = summary.set_index("method") if summary is not None and f"{value}_low" in summary else None
    rows = []
    for (line, targets), group in ok.groupby(["rank_line", "targets"], sort=False):
        if group["rank"].nunique() < 2:
            continue
        for rank, cell in group.groupby("rank"):
            values = cell[value].tolist()
            label = str(cell["label"].iloc[0])
            row = {
                "line": line,
                "targets": targets,
                "rank": int(rank),
                "label": label,
                "seeds": len(values),
                "metric": metric,
                "direction": direction,
                f"{value}_mean": sum(values) / len(values),
                f"{value}_ci95": ci95(values),
                "trainable_params": float(cell["trainable_params"].mean()),
            }
            if by_label is not None and label in by_label.index:
                stat = by_label.loc[[label]].iloc[0]
                for key in (f"{value}_low", f"{value}_high", f"{value}_ci95", "reference",
                            "vs_ref_diff", "vs_ref_low", "vs_ref_high", "vs_ref_p_holm"):  # fmt: skip
                    row[key] = stat.get(key)
            rows.append(row)
    return pd.DataFrame(rows)


def _sweep_metric(sweep: Any) -> tuple[str, bool]:
    """(`test_<metric>` column prefix, higher is better) of a rank sweep table."""
    metric = str(sweep["metric"].iloc[0])
    return f"test_{metric}", sweep["direction"].iloc[0] != "min"


def rank_best(sweep: Any) -> dict[tuple[str, int], str]:
    """(line, rank) → "best" / "tied": best only where its interval clears every other rank's of the line.

    The cells of a rank table have no paired test between them (the summary's Δ column pairs each with
    the reference), so "best" uses the conservative rule that non-overlapping 95% intervals differ;
    overlapping leaders are marked tied. "Clears" is in the metric's direction (lower-is-better: below).
    """
    marks: dict[tuple[str, int], str] = {}
    value, up = _sweep_metric(sweep)
    low = f"{value}_low" if f"{value}_low" in sweep.columns else None
    for line, part in sweep.groupby("line", sort=False):
        part = part.sort_values(f"{value}_mean", ascending=not up)
        top = part.iloc[0]
        if low is not None and _finite(top[low]):
            lows, highs = part[low], part[f"{value}_high"]
        else:
            lows = part[f"{value}_mean"] - part[f"{value}_ci95"]
            highs = part[f"{value}_mean"] + part[f"{value}_ci95"]
        near, far = (lows, highs) if up else (-highs, -lows)  # the leader's inner end against the others' outer
        top_near = near.iloc[0]
        others = far.iloc[1:]
        if len(others) and _finite(top_near) and others.notna().all() and (top_near > others).all():
            marks[(line, int(top["rank"]))] = "best"
            continue
        for (_, row), reach in zip(part.iterrows(), far, strict=True):
            if row is top or not _finite(top_near) or not _finite(reach) or reach >= top_near:
                marks[(line, int(row["rank"]))] = "tied"
    return marks


def rank_markdown(sweep: Any) -> str:
    """Ranks down, lines across: `mean [low, high]` per cell (+ Δ vs the reference); best bold, tied †."""
    lines = list(dict.fromkeys(sweep["line"]))
    ranks = sorted(set(sweep["rank"]))
    marks = rank_best(sweep)
    value, _ = _sweep_metric(sweep)
    header = "| rank | " + " | ".join(lines) + " |"
    rule = "|---:|" + "|".join(":---" for _ in lines) + "|"
    body = []
    for rank in ranks:
        cells = []
        for line in lines:
            match = sweep[(sweep["line"] == line) & (sweep["rank"] == rank)]
            if match.empty:
                cells.append("—")
                continue
            row = match.iloc[0]
            mark = marks.get((line, int(rank)))
            mean = _fixed(3)(row[f"{value}_mean"])
            mean = f"**{mean}**" if mark == "best" else mean + (TIED if mark == "tied" else "")
            low, high = row.get(f"{value}_low"), row.get(f"{value}_high")
            if _finite(low) and _finite(high):
                text = f"{mean} [{low:.3f}, {high:.3f}]"
            else:
                ci = row[f"{value}_ci95"]
                text = f"{mean} ± {_fixed(3)(ci)}" if _finite(ci) else mean
            if "line_ref_rank" in row and _finite(row.get("line_ref_rank")):  # Δ within the line
                if _finite(row.get("vs_line_diff")):
                    text += (
                        f"; Δ {row['vs_line_diff']:+.3f} [{row['vs_line_low']:+.3f}, {row['vs_line_high']:+.3f}]"
                        f" p {_p_text(row['vs_line_p_holm'])}"
                    )
                elif int(row["line_ref_rank"]) == int(rank):
                    text += " (line reference)"
            elif _finite(row.get("vs_ref_diff")):
                text += f"; Δ {row['vs_ref_diff']:+.3f} (p {_p_text(row['vs_ref_p_holm'])})"
            elif row.get("reference") == row.get("label"):
                text += " (reference)"
            cells.append(text)
        body.append(f"| {rank} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *body])
