"""Tables and figures from run records: `python -m peftlab.report results/<experiment> [...] [--out DIR]`.

Analysis never touches training code: it reads records, so any table, figure or LaTeX macro can be
regenerated from results alone, and every number shown comes from a record.

Outputs (in the experiment folder, or DIR):
  summary.csv / summary.md / summary.tex  per-method mean, 95% interval, paired Δ vs the reference, costs,
                                          run counts; best marked only where significant (peftlab/stats/crossed.py)
  macros.tex                              one \\newcommand per number and setup fact the paper quotes
  runs.csv                                one row per run (the tidy frame the figures plot)
  figures/*.{png,pdf}                     every figure the records allow; the others are named as skipped

With --html, only explorer.html: the same summary in one self-contained page to browse in a browser
(sortable table, Pareto scatter over any two metrics, method filter, forest plot, curves; docs/explorer.md).

With --bundle OUT, only a bundle: the records and per-example predictions as parquet tables with a
dataset card, which loads with `datasets` and which this command reads back as a source (docs/sharing.md).
Sources are results folders and bundles alike; with --out their runs are pooled, and runs of several
sources share a row only where config hash and data fingerprint agree (reporting/sources.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from peftlab.records.record import Protocol, RunRecord
from peftlab.records.results import records_frame
from peftlab.reporting.frame import COST_COLUMNS, LIST_COLUMNS, METRIC_COLUMNS, ci95, summarise, tidy_runs
from peftlab.reporting.tables import TIED, macros_tex, summary_latex, summary_markdown

__all__ = [
    "COST_COLUMNS",
    "METRIC_COLUMNS",
    "ci95",
    "main",
    "summarise",
    "summary_latex",
    "summary_markdown",
    "write_experiment_report",
    "write_report",
]


def _note(message: str) -> None:
    print(f"peftlab.cli.report: {message}", flush=True)


def write_report(
    results_dirs: Iterable[Path],
    out_dir: Path,
    run_ids: set[str] | None = None,
    log: Callable[[str], None] = _note,
    reference: str | None = None,
    metric: str | None = None,
) -> list[Path]:
    """All tables, macros and figures for the records of one or more experiments, into `out_dir`.

    `reference`: the method every other is paired against (default: the records' `report.reference`
    from the YAML, else `full` when present, else the first method). `metric`: the one the Δ columns
    compare (the task's primary metric by default; any metric the task declares with a statistic).
    """
    results_dirs = [Path(d) for d in results_dirs]
    out_dir = Path(out_dir)
    compared = compare_records(results_dirs, run_ids, log, reference, metric)
    if compared is None:
        where = ", ".join(str(d / "runs") for d in results_dirs)
        print(f"peftlab.cli.report: no run records under {where}; nothing to report", file=sys.stderr)
        return []
    records, frame, runs, outcomes, summary = compared
    from peftlab.reporting.comparison import rank_line_differences
    from peftlab.reporting.environments import cpu_note, environment_note

    experiments = list(dict.fromkeys(str(e) for e in summary["experiment"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    csv_path = out_dir / "summary.csv"
    summary.to_csv(csv_path, index=False, float_format="%.6g")
    runs_path = out_dir / "runs.csv"
    flat = runs.drop(columns=[c for c in LIST_COLUMNS if c in runs.columns])  # per-step series stay in the records
    flat.to_csv(runs_path, index=False, float_format="%.6g")
    md_path = out_dir / "summary.md"
    device = frame["env.device.name"].dropna() if "env.device.name" in frame.columns else []
    device_type = frame["env.device.type"].dropna() if "env.device.type" in frame.columns else []
    data_names = frame["data.name"].dropna().unique() if "data.name" in frame.columns else []
    md_path.write_text(
        f"### {', '.join(experiments)}: test metrics (mean and 95% interval) and costs\n\n"
        f"{summary_markdown(summary, notes=True)}\n\n"
        f"{protocol_note(records)}"
        f"{environment_note(records)}"
        f"{cpu_note(records)}"
        f"**Bold** marks a method significantly ahead of EVERY other method (intersection–union: each test "
        f"leader vs other at α = 0.05); otherwise {TIED} marks the tie set (the leader and every method not "
        f"significantly behind it). The task's declared metrics are tested by the crossed engine on the question named "
        f"in the `question` column; the validation score, learning gain, forgetting, peak memory and tokens/s by a "
        f"Welch t-test over seeds (no mark at one seed), their [interval] a t-interval over seeds. Trainable % and "
        f"saved MB are deterministic: best value in bold (min), among methods that train. Forgetting is the amount "
        f"forgotten per probe, positive = worse. "
        f"Device: {device.iloc[0] if len(device) else '?'} ({device_type.iloc[0] if len(device_type) else '?'}). "
        f"{'Data: ' + '; '.join(map(str, data_names)) + '. ' if len(data_names) else ''}"
        f"Generated by `python -m peftlab.report` from {len(records)} run records.\n"
    )
    tex_path = out_dir / "summary.tex"
    tex_path.write_text(
        "% Generated by `python -m peftlab.report` from run records: do not edit.\n" + summary_latex(summary)
    )
    macros_path = out_dir / "macros.tex"
    macros_path.write_text(macros_tex(summary, records))
    written += [csv_path, md_path, tex_path, macros_path, runs_path]
    written += _rank_tables(
        runs[runs["trial.number"].isna()] if "trial.number" in runs.columns else runs,
        out_dir,
        summary,
        line_differences=lambda sweep: rank_line_differences(
            frame, outcomes, sweep, _asked_reference(frame, reference)
        ),
    )

    from peftlab.reporting.figures import write_figures

    written += write_figures(runs, summary, out_dir / "figures", log=log)
    return written


class Compared(NamedTuple):
    """What every report output is cut from: the records, their frame, the tidy runs, outcomes and the summary."""

    records: list[RunRecord]
    frame: Any  # flattened records of the comparison (search trials left out)
    runs: Any  # tidy_runs of every record, search trials included (the Optuna figures need them)
    outcomes: dict[str, Any]  # run id -> per-example test outcomes (paired statistics)
    summary: Any  # summarise(): one row per experiment x method, intervals, comparisons, marks


def compare_records(
    results_dirs: Iterable[Path],
    run_ids: set[str] | None = None,
    log: Callable[[str], None] = _note,
    reference: str | None = None,
    metric: str | None = None,
) -> Compared | None:
    """The records of the experiments and the statistics over them (None when there is no record).

    `results_dirs` are results folders and bundles alike (reporting/sources.py): runs of several
    sources share a row only where their config hash and data fingerprint agree (a UserError
    naming the difference otherwise), and the statistics use every pooled seed. The tables, the figures
    and the browser explorer (reporting/explorer.py) all start here, so
    they show the same summary.
    """
    from peftlab.reporting.sources import load_sources

    results_dirs = [Path(d) for d in results_dirs]
    loaded = load_sources(results_dirs, run_ids, log)  # folders and bundles; refuses runs that are not comparable
    records = loaded.records
    if not records:
        return None
    frame = records_frame(records)
    runs = tidy_runs(frame)  # every run: the Optuna figures need the search trials
    if "trial.number" in frame.columns and frame["trial.number"].isna().any():
        # search trials are not the comparison: one row each would drown the table and the method figures
        log(
            f"{int(frame['trial.number'].notna().sum())} search-trial runs left out of the tables (Optuna figures only)"
        )
        frame = frame[frame["trial.number"].isna()].reset_index(drop=True)
    _warn_mixed_configs(frame, log)
    outcomes = loaded.outcomes
    summary = summarise(frame, outcomes, reference, metric)
    return Compared(records, frame, runs, outcomes, summary)


def protocol_note(records: list[RunRecord]) -> str:
    """The tuned protocol's chosen values, read off the final runs' `protocol` blocks ('' when none was tuned)."""
    chosen: dict[str, Protocol] = {}
    for record in sorted(records, key=lambda r: str(r.label)):
        if record.protocol is not None and record.protocol.tuned:
            chosen.setdefault(str(record.label), record.protocol)
    if not chosen:
        return ""
    blocks = list(chosen.values())
    trials = sorted({b.trials for b in blocks if b.trials is not None})
    values = "; ".join(
        f"{label} "
        + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (b.chosen or {}).items())
        for label, b in chosen.items()
    )
    return (
        f"Protocol: each method's configuration was tuned on validation ({blocks[0].objective}) at seed "
        f"{blocks[0].seed} with {'/'.join(map(str, trials))} TPE trials each; the rows above are the chosen "
        f"configuration re-run at every seed and evaluated on test. Chosen: {values}.\n\n"
    )


def _asked_reference(frame: Any, reference: str | None) -> str | None:
    """The reference the user named (CLI, else the YAML's `report.reference`), never the default first method.

    A rank table's default is r = 8 of each line; the summary's fallback (the first method, often
    r = 1 of the first line) is no reason to move it.
    """
    if reference is not None:
        return reference
    column = "config.report.reference"
    values = frame[column].dropna() if column in frame.columns else []
    return str(values.iloc[0]) if len(values) else None


def _rank_tables(
    runs: Any, out_dir: Path, summary: Any = None, line_differences: Callable[[Any], Any] | None = None
) -> list[Path]:
    """rank_sweep.csv / .md: the table behind the metric-vs-rank figure, when the records hold a rank sweep.

    `line_differences` adds each cell's paired difference against its own line's reference rank
    (reporting/comparison.py::rank_line_differences), the question a rank table asks.
    """
    from peftlab.reporting.tables import metric_words, rank_markdown, rank_sweep

    sweep = rank_sweep(runs, summary)
    if line_differences is not None and not sweep.empty:
        sweep = line_differences(sweep)
    paths = [out_dir / "rank_sweep.csv", out_dir / "rank_sweep.md"]
    if sweep.empty:
        for stale in paths:  # a table of older records would mislead
            stale.unlink(missing_ok=True)
        return []
    sweep.to_csv(paths[0], index=False, float_format="%.6g")
    paths[1].write_text(
        f"### Test {metric_words(str(sweep['metric'].iloc[0]))} by LoRA rank (mean [95% interval of "
        + _question_meaning(sweep)
        + "]; Δ: paired difference vs "
        + _delta_meaning(sweep)
        + ")\n\n"
        f"Best rank per line in **bold** only where its interval clears every other rank's; {TIED}: tied leaders "
        "(intervals overlap the best's).\n\n"
        f"{rank_markdown(sweep)}\n\n"
        + "\n".join(
            f"- `{line}`: target modules {targets or 'default'}"
            for line, targets in dict.fromkeys(zip(sweep["line"], sweep["targets"], strict=True))
        )
        + "\n"
    )
    return paths


def _question_meaning(sweep: Any) -> str:
    """Which question the cells' intervals answer (docs/statistics.md): the summary's headline, per line."""
    from peftlab.stats.crossed import MODELS, QUESTION, RECIPE

    asked = set(sweep["vs_line_question"].dropna()) if "vs_line_question" in sweep.columns else set()
    if not asked or asked == {"nested"}:
        return "the nested two-level bootstrap: no predictions files, so seeds × examples cannot be crossed"
    named = [QUESTION[q] for q in (RECIPE, MODELS) if q in asked]
    return "; ".join(named) + (" (each cell: (b) where it has ≥ 2 seeds, else (a))" if len(named) > 1 else "")


def _delta_meaning(sweep: Any) -> str:
    if "line_ref_rank" in sweep.columns and sweep["line_ref_rank"].notna().any():
        ranks = sorted({int(r) for r in sweep["line_ref_rank"].dropna()})
        return (
            f"the same line at r = {'/'.join(map(str, ranks))} [95% interval, same question, paired on the "
            "same test sentences], p Holm-adjusted over the line's ranks"
        )
    return "the summary's reference, by its test, p Holm-adjusted"


def _warn_mixed_configs(frame: Any, log: Callable[[str], None]) -> None:
    """Say so when one row pools runs of different configurations (an edited experiment's old records)."""
    if "config_hash" not in frame.columns:
        return
    keys = [c for c in ("experiment", "label") if c in frame.columns]
    for key, group in frame.groupby(keys, sort=False):
        hashes = group["config_hash"].dropna().unique()
        if len(hashes) > 1:
            name = "/".join(map(str, key if isinstance(key, tuple) else (key,)))
            log(
                f"warning: {name} pools runs of {len(hashes)} configurations ({', '.join(map(str, hashes))}); "
                "report a subset of run ids or move the stale records away"
            )


def write_experiment_report(
    results_dir: Path, run_ids: set[str] | None = None, out_dir: Path | None = None
) -> list[Path]:
    """The report of one experiment, by default into its own folder (what `peftlab.cli.run` calls at the end)."""
    results_dir = Path(results_dir)
    return write_report([results_dir], Path(out_dir or results_dir), run_ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m peftlab.report",
        description="Tables (CSV, Markdown, LaTeX), LaTeX macros and figures from the run records of experiments.",
        epilog="Without --out each experiment is reported into its own folder; with --out the records of all the "
        "given experiments are pooled into one report there.",
    )
    parser.add_argument("results", nargs="+", type=Path, help="experiment result folders, e.g. results/bert_cls")
    parser.add_argument("--out", type=Path, help="write one combined report here instead of into each folder")
    parser.add_argument(
        "--reference", help="method label every other is compared with (default: report.reference, else full)"
    )
    parser.add_argument(
        "--html",
        action="store_true",
        help="write only the browser explorer (explorer.html: one self-contained page, works offline); "
        "needs pip install 'peftlab[explorer]'",
    )
    parser.add_argument(
        "--metric",
        help="metric the Δ columns compare with the crossed statistics (default: the task's primary metric; "
        "any metric the task declares with a statistic, e.g. accuracy, f1_macro, pearson, spearman, bleu); "
        "needs every run's predictions file",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        metavar="OUT",
        help="write only a bundle: the records and per-example predictions as parquet tables with a dataset card, "
        "a new folder that loads with datasets.load_dataset('parquet', ...) and that peftlab report reads back",
    )
    args = parser.parse_args(argv)
    from peftlab.reporting.sources import is_bundle, missing_sources

    if args.bundle is not None:
        return _bundle_main(args.results, args.bundle)
    if args.html:
        return _html_main(args.results, args.out, args.reference, args.metric)
    missing = [d for d in args.results if not (d / "runs").is_dir() and not is_bundle(d)]
    for line in missing_sources(missing):
        print(f"error: {line}", file=sys.stderr)
    present = [d for d in args.results if d not in missing]
    if any(is_bundle(d) for d in present) and args.out is None:
        print("error: a bundle is read-only: give --out DIR for its report", file=sys.stderr)
        return 2
    groups = [([d], d) for d in present]  # each experiment into its own folder
    if args.out is not None:
        groups = [(present, args.out)] if present else []
    from peftlab.errors import UserError

    for dirs, out in groups:
        try:
            written = write_report(dirs, out, reference=args.reference, metric=args.metric)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}")
    return 2 if missing else 0


def _bundle_main(results: list[Path], out: Path) -> int:
    """`--bundle OUT`: the runs of every source as one bundle (reporting/bundle.py); all or nothing."""
    from peftlab.errors import UserError
    from peftlab.reporting.bundle import write_bundle
    from peftlab.reporting.sources import load_sources, missing_sources

    problems = missing_sources(results)
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    try:
        written = write_bundle(load_sources(results, None, log=lambda _: None), results, out)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {written} (loads with datasets.load_dataset('parquet', data_files=...); see its README.md)")
    return 0


def _html_main(results: list[Path], out: Path | None, reference: str | None, metric: str | None = None) -> int:
    """`--html`: explorer.html per experiment folder, or one over all of them in `out`; all or nothing.

    Every folder is checked before anything is written, so a typo in one path leaves no page behind.
    """
    from peftlab.errors import UserError
    from peftlab.reporting.explorer import plotly_js, write_explorer
    from peftlab.reporting.sources import is_bundle

    for results_dir in results:
        if is_bundle(results_dir):
            continue
        if not (results_dir / "runs").is_dir():
            print(f"error: {results_dir}: no runs/ folder (expected results/<experiment>)", file=sys.stderr)
            return 2
        if not any((results_dir / "runs").glob("*.json")):
            print(f"error: {results_dir}/runs: no run records; nothing to explore", file=sys.stderr)
            return 2
    groups = [(list(results), out)] if out is not None else [([d], d) for d in results]
    try:
        plotly_js()
        for dirs, where in groups:
            compared = compare_records(dirs, reference=reference, metric=metric)
            if compared is None:  # only unreadable .json files
                where_text = ", ".join(map(str, dirs))
                print(f"error: {where_text}: no readable run records; nothing to explore", file=sys.stderr)
                return 2
            print(f"wrote {write_explorer(compared.summary, compared.frame, dirs, where)}")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
