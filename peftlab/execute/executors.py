"""Executors: take assignments from a planner, run each (forked or in-process), tell the planner the record.

`SerialExecutor` runs one assignment after another in this process's care; `WorkerPoolExecutor`
forks N worker processes, each a serial executor with its own planner (own storage connection),
sharing the machine's cores. This is the seam where a SLURM array or workers joining from other
hosts plug in: anything that turns assignments into records.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

from peftlab.execute.devices import pin_worker
from peftlab.execute.isolation import Interrupts, can_fork, die_with_parent, run_isolated
from peftlab.planners.base import fmt_duration

if TYPE_CHECKING:
    from peftlab.planners.base import Assignment, Planner
    from peftlab.runtime.workspace import Workspace


class SerialExecutor:
    """One run at a time, each in a forked child when `isolate` (the default where fork exists)."""

    def __init__(self, ws: Workspace, *, isolate: bool, quiet: bool, threads: int | None = None, tag: str = "") -> None:
        self.ws, self.isolate, self.quiet, self.threads, self.tag = ws, isolate, quiet, threads, tag

    def run_one(self, assignment: Assignment) -> dict[str, Any]:
        from peftlab.runtime.recipe import execute_run

        run = run_isolated if self.isolate else execute_run
        return run(
            self.ws,
            assignment.spec,
            assignment.position,
            self.quiet,
            report=assignment.report,
            on_record=assignment.on_record,
            threads=self.threads,
        )

    def run(self, planner: Planner) -> int:
        if not self.isolate:  # the run is in this process: Ctrl-C must stop it at once
            return self._run(planner)
        with Interrupts.deferred():
            return self._run(planner)

    def _run(self, planner: Planner) -> int:
        started, times = time.perf_counter(), []
        while (assignment := planner.next()) is not None:
            run_started = time.perf_counter()
            try:
                Interrupts.check()
                record = self.run_one(assignment)
            except KeyboardInterrupt:
                planner.abandon(assignment)
                raise
            note = planner.tell(assignment, record)
            Interrupts.check()  # the record is told: a Ctrl-C now loses nothing
            times.append(time.perf_counter() - run_started)
            left = assignment.remaining
            eta = f", ~{fmt_duration(left * sum(times) / len(times))} left" if left else ""
            elapsed = f"  (elapsed {fmt_duration(time.perf_counter() - started)}{eta})" if left is not None else ""
            print(f"{self.tag}{summary_line(record, assignment.position)}{note}{elapsed}", flush=True)
        return 0


class WorkerPoolExecutor:
    """`workers` forked worker processes on one planner (a grid, a study, a queue), each with its share.

    N workers × all cores of OpenMP threads on a small CPU spin against each other (measured:
    2 workers on 2 cores, 3.5-6 s per step instead of ~0.6 s), so unless `train.threads` is set
    each run uses cores / workers threads. With `devices` each worker sees only its GPU
    (devices.py: `CUDA_VISIBLE_DEVICES`, `runs_per_device` workers to a GPU).
    """

    def __init__(
        self,
        ws: Workspace,
        workers: int,
        *,
        isolate: bool,
        quiet: bool,
        devices: list[str] | None = None,
        runs_per_device: int = 1,
    ) -> None:
        self.ws, self.workers, self.isolate, self.quiet = ws, workers, isolate, quiet
        self.devices, self.runs_per_device = devices, runs_per_device

    def run(self, planner: Planner) -> int:
        if not can_fork():
            raise RuntimeError("a worker pool needs fork (Linux)")
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        share = getattr(planner, "share", None)
        if share is not None:  # a plan known up front: one shared cursor, so each run goes to one worker
            share()
        sys.stdout.flush()
        sys.stderr.flush()
        parent, pids = os.getpid(), []
        for index in range(1, self.workers + 1):
            pid = os.fork()
            if pid == 0:
                self._worker(parent, index, planner, threads)  # never returns
            pids.append(pid)
        codes = []
        try:
            for pid in pids:
                codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        except KeyboardInterrupt:
            for pid in pids[len(codes) :]:
                os.waitpid(pid, 0)  # let each worker re-queue its trial before we exit
            raise
        if 130 in codes:
            raise KeyboardInterrupt
        return max(codes)

    def _worker(self, parent: int, index: int, planner: Planner, threads: int) -> None:
        """A forked worker process: a serial executor on its own planner; exits with its status."""
        status = 1
        try:
            die_with_parent(parent)
            device = pin_worker(self.devices, self.runs_per_device, index)
            tag = f"[w{index}{f' gpu{device}' if device is not None else ''}] "
            worker = SerialExecutor(self.ws, isolate=self.isolate, quiet=self.quiet, threads=threads, tag=tag)
            worker_planner = planner.for_worker(index)
            status = max(worker.run(worker_planner), getattr(worker_planner, "code", 0))
        except KeyboardInterrupt:
            status = 130
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)


def _headline(record: dict[str, Any], test: dict[str, Any]) -> str:
    """The test scores the task's declaration shows (primary first), e.g. `acc 0.812  F1 0.800`."""
    from peftlab.task_specs import TaskChoice

    chosen = TaskChoice.from_block(record.get("task"))  # as config resolved it for this run
    if chosen is None:
        return "no score"
    spec = chosen.spec
    shown = [spec.metric(chosen.metric), *(m for m in spec.metrics if m.short and m.name != chosen.metric)]
    parts = [f"{m.short or m.name} {test[m.name]:{m.fmt}}" for m in shown if isinstance(test.get(m.name), (int, float))]
    return "  ".join(parts) or "no score"


def summary_line(record: dict[str, Any], position: tuple[int, int]) -> str:
    index, total = position
    head = f"[{index}/{total}] {record['label']} s{record['seed']}"
    if record["status"] != "ok":
        return f"✗ {head}: {record['status']} — {record.get('error')}"
    test = record["metrics"]["test"]
    mem = record["memory"].get("peak_mb")
    speed = record["speed"].get("train_tokens_per_s")
    return (
        f"✓ {head}: test {_headline(record, test)} | "
        f"trainable {record['params']['trainable_pct']:.2f}% | "
        + (f"{speed:,.0f} tok/s | peak {mem:,.0f} MB | " if speed is not None and mem is not None else "no training | ")
        + f"saved {record['size']['saved_mb']:.2f} MB | {record['time']['total_s']:.0f}s"
    )
