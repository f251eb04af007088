"""`--launcher slurm|local`: submit a submitit job array whose tasks are `--join` workers, then watch it.

A thin wrapper over submitit: `slurm` is its `SlurmExecutor` (sbatch job array), `local` its
`LocalExecutor` (the same tasks as processes on this machine, for tests and single hosts).
Which run each task makes is the shared queue's business (`--join`); this module only asks for
workers, says where their logs are and how to watch them, and, unless `--no-wait`, counts
records until every task has ended. The launching process holds no results lock and never
loads the model: it can run on a login node.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peftlab.config.launcher import LauncherConfig
from peftlab.errors import UserError

if TYPE_CHECKING:
    from peftlab.config import Experiment
    from peftlab.planners.base import Planner

LAUNCHERS = ("slurm", "local")
POLL_S = {"slurm": 10.0, "local": 1.0}


def check_launcher(kind: str) -> None:
    """A missing submitit or sbatch: one line naming the setting, before anything is written."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError(
            f"--launcher {kind}: needs the submitit package; install it with pip install 'peftlab[slurm]'"
        ) from None
    if kind == "slurm":
        for tool in ("sbatch", "srun", "sacct"):
            if shutil.which(tool) is None:
                raise UserError(
                    f"--launcher slurm: {tool} not found on PATH; submit from a SLURM login node, "
                    "or use --launcher local to run the workers on this machine"
                )


def make_executor(kind: str, cfg: LauncherConfig, folder: Path, name: str) -> Any:
    """submitit's executor with the `launcher:` block's settings; `%j` gives each job its own log folder."""
    import submitit

    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder / "%j", max_num_timeout=cfg.requeues)
        executor.update_parameters(timeout_min=cfg.time, gpus_per_node=cfg.gpus_per_task, setup=cfg.setup)
        return executor
    executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=cfg.requeues)
    params: dict[str, Any] = {
        "job_name": cfg.job_name or f"peftlab-{name}",
        "time": cfg.time,
        "array_parallelism": cfg.parallelism(),
        "partition": cfg.partition,
        "cpus_per_task": cfg.cpus_per_task,
        "gpus_per_task": cfg.gpus_per_task or None,
        "mem": cfg.mem,
        "setup": cfg.setup or None,
        "additional_parameters": dict(cfg.sbatch) or None,
    }
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def launch(experiment: Experiment, planner: Planner, kind: str, overrides: list[str], wait: bool) -> int:
    """Submit `tasks` join workers; with `wait`, report progress and return 1 if any task failed."""
    check_launcher(kind)
    from peftlab.cli.join_worker import JoinWorker

    cfg = experiment.launcher or LauncherConfig()
    results_dir = experiment.results_dir()
    folder = results_dir / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    executor = make_executor(kind, cfg, folder, experiment.name)
    source = str(experiment.source_path or "")
    threads = max(1, (os.cpu_count() or 1) // cfg.parallelism()) if kind == "local" else None  # slurm: per task
    workers = [JoinWorker(source, list(overrides), os.getcwd(), sys.executable, threads) for _ in range(cfg.tasks)]
    jobs = executor.submit_array(workers)
    _say_submitted(kind, jobs, folder)
    if not wait:
        print(f"peftlab: not waiting (--no-wait); the records appear under {results_dir / 'runs'}", flush=True)
        return 0
    try:
        return watch(jobs, planner, experiment, POLL_S[kind])
    except KeyboardInterrupt:
        cancel = f"scancel {_array_id(jobs)}" if kind == "slurm" else "kill the submitit processes"
        print(f"\npeftlab: stopped watching; the tasks keep running ({cancel} to stop them)", file=sys.stderr)
        return 130


def _array_id(jobs: list[Any]) -> str:
    return str(jobs[0].job_id).split("_")[0]


def _say_submitted(kind: str, jobs: list[Any], folder: Path) -> None:
    if kind == "local":  # one local job per task, each named by its controller's pid
        ids = ", ".join(str(job.job_id) for job in jobs)
        print(f"peftlab: submitted local jobs {ids}: {len(jobs)} task(s), each a --join worker", flush=True)
        print(f"peftlab: logs in {folder}/<job id>/ (one .out/.err per task)", flush=True)
        return
    array = _array_id(jobs)
    print(f"peftlab: submitted slurm job {array}: {len(jobs)} task(s), each a --join worker", flush=True)
    print(f"peftlab: logs in {folder / array}_*/ (one .out/.err per task)", flush=True)
    print(f"peftlab: sbatch script {jobs[0].paths.submission_file}", flush=True)
    print(f"peftlab: watch with: squeue -j {array}   |   sacct -j {array}", flush=True)


def count_records(experiment: Experiment, planner: Planner) -> tuple[int, int]:
    """(finished, planned): records of the plan's runs on disk, and how many runs the plan has."""
    runs = experiment.results_dir() / "runs"
    ids = planner.run_ids()
    finished = sum(1 for run_id in ids if (runs / f"{run_id}.json").is_file())
    planned = experiment.search.trials if experiment.search is not None else len(ids)
    return finished, planned


def watch(jobs: list[Any], planner: Planner, experiment: Experiment, poll_s: float) -> int:
    """Poll until every task has ended, printing records finished / planned when it changes."""
    shown: tuple[int, int, int] | None = None
    while True:
        running = sum(1 for job in jobs if not job.done(force_check=True))
        finished, planned = count_records(experiment, planner)
        if (finished, planned, running) != shown:
            shown = (finished, planned, running)
            print(f"peftlab: {finished}/{planned} records, {running}/{len(jobs)} task(s) not ended", flush=True)
        if running == 0:
            break
        time.sleep(poll_s)
    failed = [job for job in jobs if job.exception() is not None]
    for job in failed:
        print(f"peftlab: task {job.job_id} failed ({job.state}); its log: {job.paths.stderr}", file=sys.stderr)
    return 1 if failed else 0
