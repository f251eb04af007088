"""One owner per results folder: an flock on `results/<experiment>/.lock`.

Workers that `--join` one experiment from many hosts share the folder instead: each takes the
lock shared (so a plain run, which needs it alone, cannot start on this host meanwhile), and
which run each makes is settled per run by the queue's claims (planners/queue.py), not here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def hold_results_lock(results_dir: Path, wait_s: float = 5.0, shared: bool = False) -> Any:
    """Take `results/<exp>/.lock` for this process, or fail with one line naming the owner.

    An flock, not a pid file: the kernel releases it when the owner and every forked child that
    inherited it are gone, so a SIGKILLed sweep never leaves a stale lock, and a re-run cannot
    start while an orphaned run from the killed sweep is still writing. A killed sweep's processes
    take a moment to exit, hence the short wait. Keep the returned file open. `shared`: a joiner's
    lock, held alongside other joiners'; it writes no pid and removes no other writer's temp file.
    """
    import fcntl

    from peftlab.errors import UserError

    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / ".lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the life of the process
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            if shared:
                raise UserError(
                    f"{results_dir} is in use by pid {owner} (a run without --join); wait for it to finish, then join"
                ) from None
            raise UserError(
                f"{results_dir} is in use by pid {owner}; wait for it to finish or stop it, then run again"
            ) from None
    if shared:
        return handle
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    for tmp in (results_dir / "runs").glob(".*.tmp"):  # a record write cut short by a kill
        tmp.unlink(missing_ok=True)
    return handle
