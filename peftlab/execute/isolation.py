"""Fork isolation: each run in a forked child, so its memory peak, crash or OOM belongs to it alone.

The parent has imported the heavy libraries and tokenised the data once (the workspace); each
child inherits both for free. Where fork is unavailable, runs execute in-process.

Fork is safe only while the experiment process has never started torch's OpenMP thread pool: a
pool alive at fork time deadlocks the child in its first parallel op. That rule is enforced, not
hoped for: before each fork, `fork_is_safe` forks a probe that runs one small parallel op under a
time limit (the pool's threads cannot be told from the tokenizer's or BLAS's by looking at
/proc/self/task, so the probe tests the failure itself); if it hangs, the run is made in this
process instead, with one line saying why.

A planner's `report` hook (a search's pruner) stays in this, the parent, process: the child sends
each intermediate validation score up a pipe and waits for the answer (stop or go on), so the run
process never opens the planner's storage.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from peftlab.records.results import read_record, record_path, write_record

if TYPE_CHECKING:
    from peftlab.planners.base import OnRecord, Report, RunSpec
    from peftlab.runtime.workspace import Workspace


class Interrupts:
    """Ctrl-C in a process that talks to a planner's storage: noted at once, raised only at safe points.

    Python raises KeyboardInterrupt wherever the main thread is; inside a garbage collector's
    weakref callback (SQLAlchemy has many) it is printed as "Exception ignored" and lost, and the
    sweep goes on as if nothing was pressed. So while `deferred`, the handler only notes the
    signal, and `check` raises it between runs and between a run's reports.
    """

    pressed = False

    @classmethod
    def _note(cls, signum: int, frame: Any) -> None:
        cls.pressed = True

    @classmethod
    def check(cls) -> None:
        if cls.pressed:
            cls.pressed = False
            raise KeyboardInterrupt

    @classmethod
    @contextlib.contextmanager
    def deferred(cls) -> Iterator[None]:
        previous = signal.signal(signal.SIGINT, cls._note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def can_fork() -> bool:
    return hasattr(os, "fork") and sys.platform.startswith("linux")


PROBE_S = 20.0  # a small matmul takes milliseconds; a loaded machine gets a wide margin


def fork_is_safe(timeout: float = PROBE_S) -> bool:
    """Can a forked child compute? False when this process's torch thread pool would deadlock it."""
    import time

    if "torch" not in sys.modules or not can_fork():
        return True  # no torch here: no pool to inherit
    import torch

    if torch.get_num_threads() < 2:
        return True  # one thread: torch runs ops inline and never starts a pool
    sys.stdout.flush()
    sys.stderr.flush()
    parent, pid = os.getpid(), os.fork()
    if pid == 0:
        code = 1
        try:
            die_with_parent(parent)
            a = torch.ones(256, 256)
            code = 0 if float((a @ a).sum()) > 0 else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


def die_with_parent(parent_pid: int) -> None:
    """Make a forked child die when its parent does (Linux): an orphan would go on writing a record
    for a run that the re-run is about to start again. Other systems rely on the results lock."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(137)


class _ReportChannel:
    """Two pipes between a run's process and its parent: scores go up, the parent's verdict comes down."""

    def __init__(self) -> None:
        self.up_r, self.up_w = os.pipe()
        self.down_r, self.down_w = os.pipe()

    def child(self) -> Report:
        os.close(self.up_r)
        os.close(self.down_w)
        up, down = os.fdopen(self.up_w, "w"), os.fdopen(self.down_r, "r")

        def report(step: int, scores: dict[str, float]) -> bool:
            up.write(json.dumps({"step": step, "scores": scores}) + "\n")
            up.flush()
            return down.readline().strip() == "stop"

        return report

    def serve(self, report: Report) -> None:
        """In the parent, until the child closes its end (it finished or died): answer each score."""
        os.close(self.up_w)
        os.close(self.down_r)
        with os.fdopen(self.up_r, "r") as up, os.fdopen(self.down_w, "w") as down:
            for line in up:
                message = json.loads(line)
                verdict = report(int(message["step"]), message["scores"])
                try:
                    down.write("stop\n" if verdict else "go\n")
                    down.flush()
                except BrokenPipeError:
                    return


def run_isolated(
    ws: Workspace,
    spec: RunSpec,
    position: tuple[int, int],
    quiet: bool = False,
    *,
    report: Report | None = None,
    on_record: OnRecord | None = None,
    threads: int | None = None,
) -> dict:
    """Run in a forked child; a child that dies without a record gets one written for it here.
    Where a fork would deadlock (`fork_is_safe`), the run is made here instead, said in one line."""
    from peftlab.runtime.recipe import execute_run

    run_kwargs: dict[str, Any] = {"on_record": on_record, "threads": threads}
    if not fork_is_safe():
        return _unforked(ws, spec, position, quiet, report, run_kwargs)
    path = record_path(ws.results_dir, spec.run_id)
    before = path.stat().st_mtime_ns if path.exists() else None
    from peftlab.runtime.oom import oom_kill_count

    oom_kills = oom_kill_count()  # a SIGKILL is `oom` only if the kernel's count rises meanwhile
    channel = _ReportChannel() if report is not None else None
    sys.stdout.flush()
    sys.stderr.flush()
    # Collect the planner's garbage (dead storage objects, whose weakref callbacks a Ctrl-C could
    # otherwise interrupt at random) here, and let the child never re-examine what it inherits.
    gc.collect()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child: never returns
        gc.freeze()
        _child(parent, lambda report: execute_run(ws, spec, position, quiet, **run_kwargs, report=report), channel)
    try:
        if channel is not None and report is not None:
            channel.serve(report)
        _, status = os.waitpid(pid, 0)
    except KeyboardInterrupt:
        os.waitpid(pid, 0)
        raise
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130:
        raise KeyboardInterrupt
    if path.exists() and path.stat().st_mtime_ns != before:
        return read_record(path)
    return _record_for_dead_run(ws, spec, status, on_record, oom_kills)


def _unforked(
    ws: Workspace, spec: RunSpec, position: tuple[int, int], quiet: bool, report: Report | None, kwargs: dict
) -> dict:
    """The run in this process, said in one line: a fork would inherit a dead thread pool and hang."""
    from peftlab.runtime.recipe import execute_run

    print(
        f"peftlab: {spec.run_id}: not forked: this process already started torch's thread pool "
        "(it computed before forking), which deadlocks a forked run; running it in this process",
        file=sys.stderr,
        flush=True,
    )
    return execute_run(ws, spec, position, quiet, **kwargs, report=report)


def _child(parent: int, run: Any, channel: _ReportChannel | None) -> None:
    """The forked run process: make the run, then exit at once (no parent cleanup runs twice)."""
    code = 0
    try:
        die_with_parent(parent)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the run itself stops at once
        run(channel.child() if channel is not None else None)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _record_for_dead_run(
    ws: Workspace, spec: RunSpec, status: int, on_record: OnRecord | None, oom_kills: int | None
) -> dict[str, Any]:
    from peftlab.records.record import Outcome, assemble
    from peftlab.runtime.oom import killed_status
    from peftlab.runtime.recipe import base_record

    if os.WIFSIGNALED(status):
        ending, error = killed_status(os.WTERMSIG(status), oom_kills)
    else:
        ending, error = "failed", f"run process exited with code {os.WEXITSTATUS(status)} without writing a record"
    record = assemble(base_record(ws, spec), [Outcome(status=ending, error=error)]).as_json()
    if on_record is not None:
        record.update(on_record(record))
    write_record(ws.results_dir, record)
    return record
