"""Liveness of a search trial held by a worker on any host: heartbeats, silent trials, and their retry.

A pid can be checked only on its own host, so workers that join one search from many hosts prove
they are alive by beating instead: a `heartbeat` user attribute (wall-clock seconds: the hosts'
clocks must agree to well within the grace period, as NTP keeps them), on every storage alike.
Taking over a silent or dead worker's trial is telling it FAIL, which a storage does atomically
(a finished trial cannot be told again), so exactly one of the workers that notice it queues its
retry (`retry_stale_trial`: a WAITING copy with the same params and `run_id`).

This serves searches that sample (TPE, random), whose trials have no identity to keep: a grid
search's points and a grid plan's runs go through the point queue instead (planners/points.py),
where taking over and handing on is one atomic step. Only public Optuna API is used here: the
study's storage is the one peftlab opened (`storage_of`), trials are found by number.
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


_STORAGES: Any = None  # study -> the storage it was loaded from (a WeakKeyDictionary, made on first use)


def remember_storage(study: Any, storage: Any) -> Any:
    """Note which storage `study` was loaded from (planners/optuna_search.load_study does), and return the study."""
    global _STORAGES
    import weakref

    if _STORAGES is None:
        _STORAGES = weakref.WeakKeyDictionary()
    _STORAGES[study] = storage
    return study


def storage_of(study: Any) -> Any:
    """The storage peftlab opened for `study` (Optuna keeps its own reference private)."""
    return _STORAGES[study]


def trial_id_of(study: Any, number: int) -> int:
    """A trial's storage id from its number, through the storage's public methods."""
    storage = storage_of(study)
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


class Heartbeat:
    """Beats for one trial while its run is in flight (a `heartbeat` user attribute); `stop` when it is told.

    The thread is a daemon: a worker that ends for any reason must not be kept alive by a
    forgotten beat.
    """

    def __init__(self, study: Any, number: int, queue: QueueConfig) -> None:
        self.storage, self.trial_id = storage_of(study), trial_id_of(study, number)
        self.interval = queue.heartbeat_interval
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
    now = time.time()
    return [t for t in running if "heartbeat" in t.user_attrs and now - t.user_attrs["heartbeat"] > queue.grace_s]


def dead_here(study: Any) -> list[Any]:
    """RUNNING trials whose worker was on this host and is gone (no need to wait out the grace period)."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t for t in running if t.user_attrs.get("worker") is not None and not worker_alive(t.user_attrs["worker"])]


def take_over(study: Any, trial: Any) -> bool:
    """Fail a dead worker's trial and queue its retry; False when another worker got there first.

    Telling FAIL is the atomic step (a finished trial cannot be told again, on RDB and journal
    alike), so exactly one of the workers that notice a dead one queues the retry.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        study.tell(trial.number, state=TrialState.FAIL)
    except (UpdateFinishedTrialError, ValueError, RuntimeError):  # finished already, by another worker
        return False
    retry_stale_trial(study, trial)
    return True


def fail_silent(study: Any, queue: QueueConfig) -> list[Any]:
    """Take over every silent trial; returns the ones this worker took over."""
    return [t for t in silent_trials(study, queue) if take_over(study, t)]
