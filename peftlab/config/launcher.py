"""The `launcher:` block: how `--launcher slurm|local` asks for a job array of `--join` workers.

Kept in the config leaf (no submitit here) so a typo in a partition or a time limit is a
one-line error before anything is submitted. The block only says what to ask the scheduler
for; which runs exist is the planner's business and which worker makes which run is the shared
queue's. None of it is part of a run's identity: where a run was made does not change what it
computes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from peftlab.config.schema import build, check, fail


@dataclass
class LauncherConfig:
    """What each array task (one `--join` worker) asks the scheduler for.

    Names follow sbatch; `time` is minutes, as submitit's `timeout_min`. `sbatch` holds any
    other option, passed through as `#SBATCH --key=value` (submitit's `additional_parameters`);
    `setup` lines run in the job script before the worker (module loads, `source venv/bin/activate`).
    """

    tasks: int = 1  # array tasks, each one worker taking runs from the shared queue
    partition: str | None = None
    gpus_per_task: int = 0
    cpus_per_task: int | None = None
    mem: str | None = None  # per task, sbatch's spelling: 16G, 4000M
    time: int = 60  # minutes per task before SLURM stops it (then it is requeued, up to `requeues` times)
    array_parallelism: int | None = None  # array tasks running at once; None: all of them
    requeues: int = 3  # how many times a timed-out or preempted task is resubmitted
    job_name: str | None = None  # None: peftlab-<experiment name>
    sbatch: dict[str, str | int | bool] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check(self.tasks >= 1, "tasks", f"got {self.tasks}, must be at least 1")
        check(self.gpus_per_task >= 0, "gpus_per_task", f"got {self.gpus_per_task}, must be at least 0")
        check(self.cpus_per_task is None or self.cpus_per_task >= 1, "cpus_per_task", "must be at least 1 or null")
        check(self.time >= 1, "time", f"got {self.time}, minutes, must be at least 1")
        check(self.requeues >= 0, "requeues", f"got {self.requeues}, must be at least 0")
        check(
            self.array_parallelism is None or self.array_parallelism >= 1,
            "array_parallelism",
            "must be at least 1 or null",
        )
        check(
            self.mem is None or re.fullmatch(r"\d+[KMGT]?", self.mem) is not None,
            "mem",
            f"got {self.mem!r}, sbatch's spelling: a number with an optional K, M, G or T (e.g. 16G)",
        )
        for key in self.sbatch:
            check(
                re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key) is not None,
                f"sbatch.{key}",
                "an sbatch option name without dashes, e.g. account, qos, constraint",
            )

    def parallelism(self) -> int:
        return min(self.tasks, self.array_parallelism or self.tasks)


def parse_launcher(raw: Any, origin: str) -> LauncherConfig | None:
    """The validated `launcher:` block, or None when the file has none (the defaults then apply)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        fail(origin, "launcher", f"got {raw!r}, expected a mapping (tasks, partition, time, gpus_per_task, ...)")
    return build(LauncherConfig, raw, origin, "launcher")
