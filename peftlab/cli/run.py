"""`python -m peftlab.run EXPERIMENT.yaml [key=value ...]`: plan, run what is missing, summarise.

The config is checked, and `--dry-run` prints the plan, without importing torch: a typo costs
a second. A user mistake ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
    _add_scaling_options(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def _add_scaling_options(parser: argparse.ArgumentParser) -> None:
    """Where the runs happen: worker processes on this host, its GPUs, or a shared queue across hosts."""
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="run this many worker processes at once (grid, search or tuned protocol; default 1, "
        "or every --devices slot); on CPU they split the cores",
    )
    parser.add_argument(
        "--devices",
        help="CUDA GPUs for the workers, e.g. 0,1,2,3: each worker sees only its own (CUDA_VISIBLE_DEVICES)",
    )
    parser.add_argument(
        "--runs-per-device",
        type=int,
        default=1,
        metavar="K",
        help="with --devices: K workers share each GPU (small models; default 1)",
    )
    parser.add_argument(
        "--join",
        action="store_true",
        help="join the experiment's shared queue (queue.storage: PostgreSQL or a journal file) from this "
        "host and take runs until none are left; start it on as many hosts as you like",
    )
    parser.add_argument(
        "--launcher",
        choices=("slurm", "local"),
        help="submit the runs as a submitit job array of --join workers (`launcher:` block: tasks, partition, "
        "time, ...): slurm through sbatch, local as processes on this machine; then watch it",
    )
    parser.add_argument("--no-wait", action="store_true", help="with --launcher: submit, print the job id and exit")


def _quiet_interrupted_finalizers() -> None:
    """Ctrl-C that lands inside an object's finalizer (a `datasets.Dataset.__del__` during garbage
    collection) is printed by Python as "Exception ignored in ..." with a traceback, beside the one-line
    "interrupted" message; the run is being stopped either way, so that report says nothing. Any other
    unraisable exception is reported as before."""
    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default(unraisable)

    sys.unraisablehook = hook


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    _quiet_interrupted_finalizers()  # before any worker is forked: they inherit it
    try:
        return _main(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are saved; run the same command again to continue.", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    """One path for a grid plan and a search: a planner yields run specs, an executor runs them, a report follows."""
    from peftlab.config import load_experiment

    experiment = load_experiment(args.experiment, args.overrides)
    only = _only(experiment, args)
    args.workers = _workers(args)
    planner = _planner(experiment, only, args.force, args.join)
    if args.dry_run:
        print("\n".join(planner.describe()))
        return 0

    if args.launcher is not None:  # issue 13: a job array of --join workers; this process only watches
        if args.methods or args.force or args.in_process:
            raise ConfigError(f"{args.experiment}: --launcher: --methods, --force, --in-process do not reach workers")
        from peftlab.cli.launcher import launch

        code = launch(experiment, planner, args.launcher, args.overrides, wait=not args.no_wait)
        return code if args.no_wait or code == 130 else _close(experiment, planner, args, code)

    from peftlab.runtime.distributed import check_launch  # under a launch every rank runs the plan; rank 0 writes

    launch = check_launch(experiment, args.experiment, args.workers)
    args.launched = launch.launched
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # runs fork; tokenizers' pool must not exist yet
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if args.join:
        return _join(experiment, planner, args)
    from peftlab.execute import can_fork, hold_results_lock

    results_dir = experiment.results_dir()
    if args.workers > 1 and not can_fork():
        raise ConfigError(f"{args.experiment}: --workers needs fork (Linux)")
    with leave_nothing_if_nothing_ran(results_dir):
        lock = hold_results_lock(results_dir) if launch.writes else None  # noqa: F841 - held until the process ends
        code = _work(experiment, planner, args)
    return _close(experiment, planner, args, code) if launch.writes else code


def _close(experiment: Any, planner: Any, args: argparse.Namespace, code: int) -> int:
    """The report, then one closing line naming what did not finish."""
    results_dir = experiment.results_dir()
    if not args.no_report:
        from peftlab.cli.report import write_experiment_report

        for path in write_experiment_report(results_dir, run_ids=planner.run_ids()):
            print(f"peftlab: wrote {path}")
        summary_md = results_dir / "summary.md"
        if experiment.search is None and summary_md.is_file():
            print()
            print(summary_md.read_text())
    closing = failure_line(results_dir, planner.run_ids())
    if closing:
        print(closing, flush=True)
    return code


def failure_line(results_dir: Any, run_ids: set[str]) -> str | None:
    """One closing line naming what did not finish and where its traceback is, or None when all did.

    Printed last, under the tables, so a newcomer's screen ends with what failed and where to
    look rather than with a wall of tables (failed runs stay in the tables too). Read from the
    records, so it also names failures left by an earlier invocation of the same plan.
    """
    from peftlab.records.results import load_records

    records = sorted(load_records([results_dir], run_ids), key=lambda r: (r.label or "", r.seed or 0))
    bad = [r for r in records if r.status not in ("ok", "pruned")]
    if not bad:
        return None
    first = bad[0]
    who = f"{first.label or first.method} seed {first.seed}"
    where = results_dir / "runs" / f"{first.run_id}.json"
    kinds = ", ".join(sorted({r.status for r in bad}))
    return (
        f"peftlab: {len(bad)} of {len(records)} runs did not finish ({kinds}); first: {who}: "
        f"{first.error or 'no error recorded'} — traceback in {where}"
    )


def _only(experiment: Any, args: argparse.Namespace) -> list[str] | None:
    """`--methods`: labels or method names in the file; a search keeps only those entries."""
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
    return only


def _workers(args: argparse.Namespace) -> int:
    """--workers, --devices and --runs-per-device as one pool size (devices checked: nothing is written yet)."""
    from peftlab.execute.devices import parse_devices, plan_workers

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"{args.experiment}: --workers: got {args.workers}, must be at least 1")
    args.device_list = parse_devices(args.devices) if args.devices else None
    if args.join and args.force:
        raise ConfigError(f"{args.experiment}: --force: a queue makes each run once; re-run without --join to force")
    return plan_workers(args.device_list, args.runs_per_device, args.workers)


def _work(experiment: Any, planner: Any, args: argparse.Namespace) -> int:
    """Load what every run shares, start the planner, run it to the end; the planner's outcome and the runs'."""
    from peftlab.execute import prepare_workspace

    print(f"peftlab: experiment {experiment.name} — {_what(experiment, planner)}; loading model source and data…")
    workspace = prepare_workspace(experiment)
    _say_workspace(workspace)
    for note in planner.start():
        print(f"peftlab: {note}", flush=True)
    return max(_executor(workspace, args).run(planner), planner.finish())


@contextmanager
def leave_nothing_if_nothing_ran(results_dir: Path) -> Iterator[None]:
    """A results folder this command created is removed again if it stops before writing any file.

    A data error, a target that matches no layer or an interrupt while loading is a user's
    mistake caught before the first run: it must not leave an empty `results/<name>/` behind
    (only the lock file and empty folders count as nothing), nor the parents it created for it
    (`results/` itself on a first run). A folder that existed before, or that holds anything
    else, is left as it is.
    """
    created = [d for d in (results_dir, *results_dir.parents) if not d.exists()]  # innermost first
    try:
        yield
    except BaseException:
        if created and results_dir.is_dir():
            written = [p for p in results_dir.rglob("*") if p.is_file() and p.name != ".lock"]
            if not written:
                shutil.rmtree(results_dir, ignore_errors=True)
                for parent in created[1:]:  # only while empty: another command may have written there
                    with contextlib.suppress(OSError):
                        parent.rmdir()
        raise


def _join(experiment: Any, planner: Any, args: argparse.Namespace) -> int:
    """`--join`: take runs from the shared queue until none are left; no lock of the whole folder, no report.

    Other hosts' workers write to the same results folder, so the folder is shared (a plain run
    cannot start while joiners work on this host), and the report is for whoever runs
    `peftlab report` (or the plain command) once every joiner is done.
    """
    from peftlab.execute import hold_results_lock
    from peftlab.planners.queue import check_reachable

    check_reachable(experiment)  # an unreachable database: one line, exit 2, nothing written
    with leave_nothing_if_nothing_ran(experiment.results_dir()):
        lock = hold_results_lock(experiment.results_dir(), shared=True)  # noqa: F841 - held until the process ends
        code = _work(experiment, planner, args)
    print(f"peftlab: joined {experiment.name}: nothing left to take; exit {code}", flush=True)
    return code


def _planner(experiment: Any, only: list[str] | None, force: bool, joining: bool = False) -> Any:
    if experiment.protocol is not None:
        from peftlab.planners.tuned import TunedProtocol

        return TunedProtocol(experiment, only, force, joining=joining)
    if experiment.search is not None:
        from peftlab.planners.optuna_search import OptunaSearch

        return OptunaSearch(experiment, joining=joining)
    if joining:
        from peftlab.planners.queue import RunQueue

        return RunQueue(experiment, only)
    from peftlab.planners.grid import GridPlanner

    return GridPlanner(experiment, only, force)


def _what(experiment: Any, planner: Any) -> str:
    if experiment.search is not None:
        return f"search of {experiment.search.trials} trials"
    if experiment.protocol is not None:
        return (
            f"tuned protocol: {experiment.protocol.trials} trials per method at seed {experiment.seeds[0]}, "
            f"then {len(planner.entries) * len(experiment.seeds)} runs"
        )
    return f"{len(planner.plan)} runs"


def _say_workspace(workspace: Any) -> None:
    sizes, experiment = workspace.data.sizes(), workspace.experiment
    print(
        f"peftlab: model {workspace.model_source.location} | data {experiment.data.source} "
        f"(train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']}; "
        f"fingerprint {workspace.data.fingerprint}) | results → {experiment.results_dir()}",
        flush=True,
    )


def _executor(workspace: Any, args: argparse.Namespace) -> Any:
    """Runs forked one by one, or a worker pool; in-process under a distributed launch (its collectives)."""
    from peftlab.execute import SerialExecutor, WorkerPoolExecutor, can_fork

    isolate = can_fork() and not args.in_process and not getattr(args, "launched", False)
    if args.workers > 1 or args.device_list is not None:
        return WorkerPoolExecutor(
            workspace,
            args.workers,
            isolate=isolate,
            quiet=args.quiet,
            devices=args.device_list,
            runs_per_device=args.runs_per_device,
        )
    return SerialExecutor(workspace, isolate=isolate, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
