"""One array task of `--launcher slurm|local`: a `--join` worker that submitit can requeue.

The task runs `python -m peftlab.run EXP --join` as a child process rather than in the submitit
process itself, for two reasons. SLURM signals every process of a job step (the USR2 warning
before a time limit included, whose default action is to terminate), so the worker's tree
ignores USR2 and only this process, where submitit installed its handler, reacts to it. And on
that signal `checkpoint` can stop the worker the way Ctrl-C does: it hands its run back to the
shared queue, and the resubmitted task (or any other worker) makes that run again. Nothing of a
half-trained run is kept; a run is small next to a time limit, and re-running it keeps its
record exactly what a run from the start would write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from submitit.helpers import Checkpointable, DelayedSubmission

# How long a stopped worker gets to hand its run back before it is killed; SLURM's warning comes
# `signal_delay_s` (90 s by submitit's default) before the end, so this fits well inside it.
STOP_GRACE_S = 30.0
POLL_S = 0.5


class WorkerFailedError(RuntimeError):
    """The `--join` worker exited non-zero: the task fails, and the launcher names its log."""


def _ignore_usr2() -> None:  # runs in the child between fork and exec
    """SLURM's USR2 is for submitit's handler in this task, not for the worker; and SIGINT is how
    `checkpoint` stops the worker, so it must reach it even where this task was started with
    SIGINT ignored (a shell's background job: an ignored signal stays ignored across exec, and
    Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class JoinWorker(Checkpointable):
    """A picklable `--join` worker: the experiment file (absolute), overrides and the submitter's folder.

    The working directory matters: relative `output_dir`, model and data paths resolve against
    it, as they did for the command the user typed.
    """

    experiment: str
    overrides: list[str]
    cwd: str
    python: str = sys.executable
    threads: int | None = None  # this worker's share of the cores; None: what SLURM allotted the task
    _process: Any = field(default=None, repr=False, compare=False)

    def command(self) -> list[str]:
        return [self.python, "-m", "peftlab.run", self.experiment, *self.overrides, "--join", "--quiet"]

    def env(self) -> dict[str, str]:
        """The task's environment, with OMP_NUM_THREADS set to the worker's share of the cores unless given.

        Torch otherwise starts a thread per core in every worker; workers sharing a node then spin
        against each other (measured: 2 workers on 2 cores, a tiny run 86 s instead of seconds).
        """
        env = dict(os.environ)
        threads = self.threads or int(env.get("SLURM_CPUS_PER_TASK") or env.get("SLURM_CPUS_ON_NODE") or 0)
        if threads and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(threads)
        return env

    def __call__(self) -> int:
        self._process = subprocess.Popen(self.command(), cwd=self.cwd, env=self.env(), preexec_fn=_ignore_usr2)
        # poll, never a blocking wait(): submitit's signal handler runs `checkpoint` in this thread,
        # and its own wait() on the process would deadlock on the lock a blocking wait() holds
        while (code := self._process.poll()) is None:
            time.sleep(POLL_S)
        self._process = None
        if code != 0:
            raise WorkerFailedError(f"{' '.join(self.command())} exited with code {code}")
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Timed out or preempted: stop the worker (its run goes back to the queue), resubmit a fresh one."""
        self.stop()
        fresh = JoinWorker(self.experiment, list(self.overrides), self.cwd, self.python, self.threads)
        return DelayedSubmission(fresh)

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # as Ctrl-C: the worker abandons its run to the queue
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_process"] = None  # a process handle does not travel; the resubmitted task starts its own
        return state
