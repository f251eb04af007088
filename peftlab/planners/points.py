"""Planned points as queued items, each claimed atomically: exactly once by construction, not by timing.

A *point* is one unit of planned work with a stable key: a run id of a grid plan (`--join`), or
a grid point of a grid search. Each point is one row (PostgreSQL, SQLite) or one entry (a file
on a shared filesystem) holding `attempt`, `holder`, `beat`, `ref` and `done`. Every change is a
compare-and-set on `attempt`, in one step:

- claim: take the first point that is not done and whose holder is gone (none, silent past the
  grace period, or a dead process on this host), setting holder, beat and `attempt + 1`.
  Taking over a dead holder's point and handing it to the next worker is that one step, so a
  point is never between owners (the `[2, 2, 4]` race: a point failed, its retry not yet
  queued, and a worker that found nothing waiting invented a fresh trial and drew a point
  already made).
- beat / ref / complete / release: only while `attempt` is still the caller's. A worker that
  stalled past the grace period and comes back finds its attempt superseded: its beat says so,
  its completion is refused, and its result is set aside; exactly one attempt completes a point.
- a worker stops only when every point is done; while points are held by live workers it waits.

PostgreSQL claims with `SELECT … FOR UPDATE SKIP LOCKED` (workers never queue behind each
other's claims); SQLite serialises writers itself; the file store takes Optuna's journal file
lock (`JournalFileOpenLock`, public, made for shared filesystems) around a read-modify-rename of
one small JSON file, so a reader never sees a torn state.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peftlab.planners.heartbeat import worker_alive, worker_host

TABLE = "peftlab_points"
Change = Callable[["dict[str, PointState]"], Any]  # a change to the points, applied atomically


@dataclass(frozen=True)
class Claim:
    """What a worker holds: point `key` at `attempt`; `previous` is the holder it took over, if any."""

    key: str
    attempt: int
    previous: dict[str, Any] | None = None
    previous_ref: Any = None  # what the previous attempt left (a trial number), to be finished by the claimer
    done_before: bool = False


@dataclass
class PointState:
    key: str
    order: int
    attempt: int = 0
    holder: dict[str, Any] | None = None
    beat: float = 0.0
    ref: Any = None
    done: bool = False
    note: str | None = None  # how it ended (a record's status)
    history: list[int] = field(default_factory=list)  # attempts that completed (exactly one, by construction)


def holder_gone(state: PointState, now: float, grace: float) -> bool:
    """No holder, or one that is provably dead: on this host its process is gone; elsewhere it is silent."""
    if state.holder is None:
        return True
    if state.holder.get("host") == worker_host():
        return not worker_alive(state.holder)
    return now - state.beat > grace


class PointStore:
    """The shared store of one queue's points (see the module docstring); subclasses hold the storage."""

    def __init__(self, queue: str, grace: float) -> None:
        self.queue, self.grace = queue, float(grace)

    # ---- the one primitive each backend provides
    def _update(self, change: Change, key: str | None = None, skip: bool = False) -> Any:
        """Apply `change` to the points atomically (all or nothing, no interleaving) and return its value.

        `key`: only that point is read (and locked); `skip`: a point another worker is changing
        this instant may be left out (a claim takes the next one instead of waiting)."""
        raise NotImplementedError

    def states(self) -> dict[str, PointState]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (a worker pool's parent closes before forking its workers)."""

    # ---- operations, all compare-and-set on `attempt`
    def add(self, keys: Iterable[str]) -> int:
        """Queue points not queued yet (idempotent: joiners starting at once add each point once)."""
        wanted = list(dict.fromkeys(keys))

        def change(points: dict[str, PointState]) -> int:
            added = 0
            for key in wanted:
                if key not in points:
                    points[key] = PointState(key, len(points))
                    added += 1
            return added

        return self._update(change)

    def claim(self, holder: dict[str, Any], among: set[str] | None = None) -> Claim | None:
        """Take the first point that is not done and whose holder is gone; None when none is free now."""

        def change(points: dict[str, PointState]) -> Claim | None:
            now = time.time()
            for state in sorted(points.values(), key=lambda s: s.order):
                if state.done or (among is not None and state.key not in among):
                    continue
                if holder_gone(state, now, self.grace):
                    previous, previous_ref = state.holder, state.ref
                    state.attempt, state.holder, state.beat, state.ref = state.attempt + 1, holder, now, None
                    return Claim(state.key, state.attempt, previous, previous_ref)
            return None

        return self._update(change, skip=True)

    def _if_current(self, claim: Claim, act: Callable[[PointState], Any]) -> Any:
        def change(points: dict[str, PointState]) -> Any:
            state = points.get(claim.key)
            if state is None or state.done or state.attempt != claim.attempt:
                return False
            return act(state)

        return self._update(change, key=claim.key)

    def beat(self, claim: Claim) -> bool:
        """Refresh the holder's beat; False once the point was taken over (or completed)."""
        return self._if_current(claim, lambda s: setattr(s, "beat", time.time()) or True)

    def set_ref(self, claim: Claim, ref: Any) -> bool:
        return self._if_current(claim, lambda s: setattr(s, "ref", ref) or True)

    def complete(self, claim: Claim, note: str | None = None) -> bool:
        """Mark the point done; True for exactly one attempt of it (the current holder's)."""

        def act(state: PointState) -> bool:
            state.done, state.note, state.holder = True, note, None
            state.history.append(claim.attempt)
            return True

        return self._if_current(claim, act)

    def release(self, claim: Claim) -> bool:
        """Hand the point back at once (Ctrl-C): the next claim takes it without waiting out a grace period."""
        return self._if_current(claim, lambda s: setattr(s, "holder", None) or True)

    def pending(self, among: set[str] | None = None) -> int:
        return sum(not s.done for s in self.states().values() if among is None or s.key in among)


# ---------------------------------------------------------------- a file on a shared filesystem


class FilePoints(PointStore):
    """Points in one JSON file, changed under Optuna's journal file lock and replaced by rename."""

    def __init__(self, path: Path, queue: str, grace: float) -> None:
        super().__init__(queue, grace)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def states(self) -> dict[str, PointState]:
        return {k: PointState(**v) for k, v in self._read().get(self.queue, {}).items()}

    def _update(self, change: Change, key: str | None = None, skip: bool = False) -> Any:
        from optuna.storages.journal import JournalFileOpenLock

        lock = JournalFileOpenLock(str(self.path), grace_period=30)
        lock.acquire()
        try:
            everything = self._read()
            points = {k: PointState(**v) for k, v in everything.get(self.queue, {}).items()}
            result = change(points)
            everything[self.queue] = {k: vars(s) for k, s in points.items()}
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(everything))
            os.replace(tmp, self.path)  # a reader sees the old state or the new one, never half of one
            return result
        finally:
            lock.release()


# ---------------------------------------------------------------- PostgreSQL / SQLite


class SqlPoints(PointStore):
    """Points as rows of `peftlab_points`, next to Optuna's tables in the same database."""

    def __init__(self, url: str, queue: str, grace: float) -> None:
        import sqlalchemy as sa

        super().__init__(queue, grace)
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": 10}
        elif url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 60}
        self.engine = sa.create_engine(url, **kwargs)
        self.locking = self.engine.dialect.name == "postgresql"
        meta = sa.MetaData()
        self.table = sa.Table(
            TABLE,
            meta,
            sa.Column("queue", sa.String(512), primary_key=True),
            sa.Column("key", sa.String(1024), primary_key=True),
            sa.Column("state", sa.Text, nullable=False),  # the PointState as JSON
        )
        self._create(meta)

    def _create(self, meta: Any, attempts: int = 6) -> None:
        """Joiners on a fresh database race in CREATE TABLE; the loser finds the winner's table."""
        import random

        from sqlalchemy.exc import IntegrityError, ProgrammingError

        for attempt in range(attempts):
            try:
                meta.create_all(self.engine, checkfirst=True)
                return
            except (IntegrityError, ProgrammingError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 + random.random() * (attempt + 1))

    def states(self) -> dict[str, PointState]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.table.c.state).where(self.table.c.queue == self.queue)).all()
        return {s.key: s for s in (PointState(**json.loads(r.state)) for r in rows)}

    def _update(self, change: Change, key: str | None = None, skip: bool = False) -> Any:
        """One transaction: read the queue's rows (or `key`'s) FOR UPDATE (a claim: SKIP LOCKED, so
        claimers never wait on each other), change them, write back what changed; SQLite: BEGIN IMMEDIATE."""
        import sqlalchemy as sa

        t = self.table
        for attempt in range(20):
            try:
                with self.engine.connect() as conn:
                    if not self.locking:
                        conn.exec_driver_sql("BEGIN IMMEDIATE")  # one writer at a time, taken before reading
                    query = sa.select(t.c.key, t.c.state).where(t.c.queue == self.queue)
                    if key is not None:
                        query = query.where(t.c.key == key)
                    if self.locking:
                        query = query.with_for_update(skip_locked=skip)
                    before = {r.key: r.state for r in conn.execute(query)}
                    points = {k: PointState(**json.loads(v)) for k, v in before.items()}
                    result = change(points)
                    for name, state in points.items():
                        text = json.dumps(vars(state))
                        if name not in before:
                            self._insert(conn, name, text)
                        elif before[name] != text:
                            conn.execute(
                                sa.update(t).where(t.c.queue == self.queue, t.c.key == name).values(state=text)
                            )
                    conn.commit()
                    return result
            except sa.exc.IntegrityError:  # two joiners inserting one point at once: read again, it is there
                if attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))
            except sa.exc.OperationalError as err:  # SQLite: "database is locked" past its timeout
                if "locked" not in str(err) or attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _insert(self, conn: Any, key: str, text: str) -> None:
        import sqlalchemy as sa

        conn.execute(sa.insert(self.table).values(queue=self.queue, key=key, state=text))

    def close(self) -> None:
        self.engine.dispose()


def open_points(url: str, queue: str, grace: float) -> PointStore:
    """The point store beside a study's storage: the same database, or a `.points` file beside the journal."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        return FilePoints(path.with_name(path.name + ".points"), queue, grace)
    return SqlPoints(with_driver(url), queue, grace)


def with_driver(url: str) -> str:
    """postgresql:// means SQLAlchemy's psycopg2; where only psycopg (3) is installed, use that one."""
    import importlib.util

    psycopg3_only = importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None
    if url.startswith("postgresql://") and psycopg3_only:
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


class PointBeat:
    """Beats for one claim while its run is in flight: a daemon thread (a worker that ends for any
    reason must not be kept alive by a forgotten beat). `lost` says the point was taken over."""

    def __init__(self, store: PointStore, claim: Claim, interval: float) -> None:
        import threading

        self.store, self.claim, self.interval = store, claim, interval
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peftlab-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.store.beat(self.claim):
                    self.lost = True  # taken over (this worker was silent too long): its completion will be refused
                    return
            except Exception:  # the database blinked: the next beat tries again, the grace period covers it
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
