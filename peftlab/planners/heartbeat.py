"""Liveness of a run held by a worker on any host: heartbeats, stale runs, and their retry.

A pid can be checked only on its own host, so workers that join one experiment from many hosts
prove they are alive by beating instead. On an RDB storage (PostgreSQL, SQLite) that is Optuna's
own heartbeat (`RDBStorage(heartbeat_interval=, grace_period=)`, a row per trial refreshed by
`record_heartbeat`, and `optuna.storages.fail_stale_trials`, which fails a silent trial exactly
once, however many workers notice it, and calls the storage's stale-trial callback). A journal
file has no heartbeat table, so the beat is a `heartbeat` user attribute (wall-clock seconds:
the hosts' clocks must agree to well within the grace period, as NTP keeps them) and the
take-over is the same atomic FAIL that Optuna uses. Either way the retry is `retry_stale_trial`:
a WAITING copy of the trial (same params, same `run_id`) that the next free worker pops.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peftlab.config.queue import QueueConfig

HOST_ENV = "PEFTLAB_WORKER_HOST"  # names this worker's host (a container's hostname may not be unique)


def worker_host() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def _process_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_identity() -> dict[str, Any]:
    return {"host": worker_host(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def worker_alive(worker: dict[str, Any] | None) -> bool:
    """Alive unless provably dead: another host's worker cannot be checked here (its heartbeat can)."""
    if not worker or worker.get("host") != worker_host():
        return worker is not None
    pid = int(worker["pid"])
    if worker.get("start") is not None and Path("/proc").is_dir():
        return _process_start(pid) == worker["start"]  # the same pid, not a reused one
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def retry_stale_trial(study: Any, trial: Any) -> None:
    """Queue a failed-for-staleness trial again: a WAITING copy with its params, `run_id` and grid point.

    Optuna's `RetryHeartbeatStaleTrialCallback` does the same, but would copy the dead worker's
    identity and heartbeat onto the copy, where a liveness check could take them for the new holder's.
    """
    import optuna
    from optuna.trial import TrialState

    attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("worker", "heartbeat", "status")}
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={**attrs, "retry_of": trial.number},
            system_attrs=dict(trial.system_attrs),
        )
    )


def rdb_heartbeat_kwargs(queue: QueueConfig) -> dict[str, Any]:
    """What `RDBStorage` takes to beat for every trial it holds and retry the ones that fall silent."""
    import warnings

    import optuna

    # experimental since Optuna 2.9 and stable in use since; the warning says nothing to a user
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return {
        "heartbeat_interval": queue.heartbeat_interval,
        "grace_period": queue.grace_s,
        "heartbeat_stale_trial_callback": retry_stale_trial,
    }


def _rdb_beats(storage: Any) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


class Heartbeat:
    """Beats for one trial while its run is in flight; `stop` when the run's record is told.

    On RDB the beat is Optuna's `record_heartbeat` (the row `fail_stale_trials` reads); on a
    journal, a `heartbeat` user attribute. The thread is a daemon: a worker that ends for any
    reason must not be kept alive by a forgotten beat (Optuna's own HeartbeatThread is not one).
    """

    def __init__(self, study: Any, trial_id: int, queue: QueueConfig) -> None:
        self.storage, self.trial_id, self.interval = study._storage, trial_id, queue.heartbeat_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        """Beat once now, then every interval: call it the moment the trial is taken, so a worker
        killed right after (its trial RUNNING, its run named) has a beat that can fall silent;
        a trial that never beat is never taken for stale."""
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="peftlab-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        if _rdb_beats(self.storage):
            self.storage.record_heartbeat(self.trial_id)
        else:
            self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except Exception:  # the trial was finished meanwhile (told, or taken over): nothing to keep alive
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def silent_trials(study: Any, queue: QueueConfig) -> list[Any]:
    """RUNNING trials whose worker stopped beating for longer than the grace period."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    storage = study._storage
    if _rdb_beats(storage):
        stale = set(storage._get_stale_trial_ids(study._study_id))
        return [t for t in running if t._trial_id in stale]
    now = time.time()
    return [t for t in running if "heartbeat" in t.user_attrs and now - t.user_attrs["heartbeat"] > queue.grace_s]


def dead_here(study: Any) -> list[Any]:
    """RUNNING trials whose worker was on this host and is gone (no need to wait out the grace period)."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t for t in running if t.user_attrs.get("worker") is not None and not worker_alive(t.user_attrs["worker"])]


def take_over(study: Any, trial: Any) -> bool:
    """Fail a dead worker's trial and queue its retry; False when another worker got there first.

    The FAIL is the atomic step (a finished trial cannot be failed again, on RDB and journal
    alike), so exactly one of the workers that notice a dead one queues the retry.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        if not study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:
        return False
    retry_stale_trial(study, study._storage.get_trial(trial._trial_id))
    return True


def fail_silent(study: Any, queue: QueueConfig) -> list[Any]:
    """Take over every silent trial; returns the ones this worker took over.

    RDB: Optuna's `fail_stale_trials` (its callback is `retry_stale_trial`); journal: `take_over`.
    """
    import warnings

    import optuna

    silent = silent_trials(study, queue)
    if not silent:
        return []
    if _rdb_beats(study._storage):
        before = {t.number for t in silent}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        retried = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False)}
        return [t for t in silent if t.number in before & retried]
    return [t for t in silent if take_over(study, t)]
