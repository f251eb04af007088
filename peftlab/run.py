"""`python -m peftlab.run EXPERIMENT.yaml [key=value ...]`: plan, run what is missing, summarise.

The config is checked, and `--dry-run` prints the plan, without importing torch: a typo costs
a second. A user mistake ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from peftlab.errors import ConfigError, UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m peftlab.run",
        description="Run a PEFT comparison experiment: every method × seed in the file, one training loop, "
        "one record per run under results/<name>/runs/, then summary tables and figures.",
        epilog="examples:\n  python -m peftlab.run experiments/bert_cls.yaml\n"
        "  python -m peftlab.run experiments/bert_cls.yaml train.steps=50 seeds=[0] --methods lora,full\n"
        "  python -m peftlab.run experiments/bert_cls.yaml --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", help="experiment YAML file")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="override a config value, e.g. train.steps=50, seeds=[0,1], methods.lora.r=16",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit without loading anything")
    parser.add_argument("--methods", help="comma-separated method labels to run (default: all in the file)")
    parser.add_argument("--force", action="store_true", help="re-run runs that already have a finished record")
    parser.add_argument("--no-report", action="store_true", help="skip the summary tables and figures")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every run in this process instead of a forked child per run (memory peaks are then less separable)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="with a search: block, run this many worker processes on the one study (default 1)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def _fmt_duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    try:
        return _main(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are saved; run the same command again to continue.", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    from peftlab.config import load_experiment
    from peftlab.errors import ConfigError
    from peftlab.plan import make_plan

    experiment = load_experiment(args.experiment, args.overrides)
    only = [m.strip() for m in args.methods.split(",")] if args.methods else None
    if only:
        known = {e.label for e in experiment.methods} | {e.method for e in experiment.methods}
        unknown = [m for m in only if m not in known]
        if unknown:
            raise ConfigError(
                f"{args.experiment}: --methods: {', '.join(unknown)} not in the file; "
                f"methods in it: {', '.join(e.label for e in experiment.methods)}"
            )
    if only and experiment.search is not None:
        experiment.methods = [e for e in experiment.methods if e.label in only or e.method in only]
    if args.workers < 1 or (args.workers > 1 and experiment.search is None):
        raise ConfigError(f"{args.experiment}: --workers: needs a search: block and a count of at least 1")
    results_dir = experiment.results_dir()
    if experiment.search is not None:
        return _search(experiment, args)
    plan = make_plan(experiment, only)

    if args.dry_run:
        from peftlab.results import finished_record

        print(f"experiment {experiment.name}: {len(plan)} runs → {results_dir}")
        print(
            f"model {experiment.model} | data {experiment.data.source} | {experiment.train.steps} steps × "
            f"batch {experiment.train.batch_size} × accum {experiment.train.grad_accum} | seeds {experiment.seeds}"
        )
        for i, spec in enumerate(plan, 1):
            done = " (finished, will skip)" if finished_record(results_dir, spec.run_id) and not args.force else ""
            print(f"  {i:>3}. {spec.run_id:<32} {spec.describe()}{done}")
        return 0

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # runs fork; tokenizers' pool must not exist yet
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    print(f"peftlab: experiment {experiment.name} — {len(plan)} runs; loading model source and data…", flush=True)
    started = time.perf_counter()
    from peftlab.results import finished_record
    from peftlab.runner import (
        can_fork,
        execute_isolated,
        execute_run,
        hold_results_lock,
        prepare_workspace,
        summary_line,
    )

    lock = hold_results_lock(results_dir)  # noqa: F841 - held until the process ends
    workspace = prepare_workspace(experiment)
    sizes = workspace.data.sizes()
    print(
        f"peftlab: model {workspace.model_source.location} | data {experiment.data.source} "
        f"(train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']}; "
        f"fingerprint {workspace.data.fingerprint}) | results → {results_dir}",
        flush=True,
    )

    isolate = can_fork() and not args.in_process
    todo = [
        (i, spec) for i, spec in enumerate(plan, 1) if args.force or finished_record(results_dir, spec.run_id) is None
    ]
    skipped = len(plan) - len(todo)
    if skipped:
        print(f"peftlab: {skipped} of {len(plan)} runs already finished, skipping them (--force re-runs)", flush=True)
    run_times: list[float] = []
    statuses: dict[str, int] = {}
    records: list[dict[str, Any]] = []
    for done, (i, spec) in enumerate(todo):
        run_started = time.perf_counter()
        position = (i, len(plan))
        if isolate:
            record = execute_isolated(workspace, spec, position, args.quiet)
        else:
            record = execute_run(workspace, spec, position, args.quiet)
        run_times.append(time.perf_counter() - run_started)
        records.append(record)
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
        remaining = len(todo) - done - 1
        eta = f", ~{_fmt_duration(remaining * sum(run_times) / len(run_times))} left" if remaining else ""
        print(
            f"{summary_line(record, position)}  (elapsed {_fmt_duration(time.perf_counter() - started)}{eta})",
            flush=True,
        )

    total_s = time.perf_counter() - started
    counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) or "nothing to run"
    print(
        f"peftlab: {len(todo)} runs in {_fmt_duration(total_s)} ({counts}); records in {results_dir / 'runs'}",
        flush=True,
    )
    if not args.no_report:
        from peftlab.report import write_experiment_report

        outputs = write_experiment_report(results_dir, run_ids={s.run_id for s in plan})
        for path in outputs:
            print(f"peftlab: wrote {path}")
        summary_md = results_dir / "summary.md"
        if summary_md.is_file():
            print()
            print(summary_md.read_text())
    closing = failure_line(records, results_dir)
    if closing:
        print(closing, flush=True)
    return 1 if statuses.get("failed") else 0


def failure_line(records: list[dict[str, Any]], results_dir: Any) -> str | None:
    """One closing line naming what did not finish and where its traceback is, or None when all did.

    It is printed last, under the tables, so a newcomer's screen ends with what failed and
    where to look rather than with a wall of tables (failed runs stay in the tables too).
    """
    bad = [r for r in records if r.get("status") not in ("ok", "pruned")]
    if not bad:
        return None
    first = bad[0]
    who = f"{first.get('label') or first.get('method')} seed {first.get('seed')}"
    where = results_dir / "runs" / f"{first['run_id']}.json"
    kinds = ", ".join(sorted({r["status"] for r in bad}))
    return (
        f"peftlab: {len(bad)} of {len(records)} runs did not finish ({kinds}); first: {who}: "
        f"{first.get('error', 'no error recorded')} — traceback in {where}"
    )


def _search(experiment: Any, args: argparse.Namespace) -> int:
    """A search: block: trials from an Optuna study instead of a fixed plan; same records, same report."""
    from peftlab import search

    if args.dry_run:
        print(f"experiment {experiment.name}: search → {experiment.results_dir()}")
        print(
            f"model {experiment.model} | data {experiment.data.source} | {experiment.train.steps} steps × "
            f"batch {experiment.train.batch_size} × accum {experiment.train.grad_accum}"
        )
        print("\n".join(search.describe(experiment)))
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from peftlab.runner import can_fork, hold_results_lock, prepare_workspace

    results_dir = experiment.results_dir()
    lock = hold_results_lock(results_dir)  # noqa: F841 - held until the process ends
    print(f"peftlab: experiment {experiment.name} — search of {experiment.search.trials} trials; loading…", flush=True)
    workspace = prepare_workspace(experiment)
    isolate = can_fork() and not args.in_process
    if args.workers > 1 and not can_fork():
        raise ConfigError(f"{args.experiment}: --workers needs fork (Linux)")
    code = search.run_search(workspace, args.workers, isolate, args.quiet)
    if not args.no_report:
        from peftlab.report import write_experiment_report

        for path in write_experiment_report(results_dir, run_ids=search.trial_run_ids(experiment)):
            print(f"peftlab: wrote {path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
