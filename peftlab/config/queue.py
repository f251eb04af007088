"""The `queue:` block: the shared state that lets workers on many hosts join one experiment.

    queue:
      storage: postgresql://user:secret@db-host/peftlab   # or `journal` (a file in the results
                                                           # folder, on a shared filesystem)
      heartbeat_interval: 60     # seconds between a worker's heartbeats on the run it holds
      grace_period: 120          # a run whose worker is silent this long is taken over

`python -m peftlab.run EXP.yaml --join` takes runs from this queue (an Optuna study whose trials
are the planned runs); a search keeps its study in `search.storage`, falling back to this one.
Part of the config leaf: no Optuna here. The storage URL may hold a password, so every place
that shows it (messages, `search.json`, the plan) goes through `redact`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from peftlab.config.schema import closest, coerce, fail

_KEYS = ("storage", "heartbeat_interval", "grace_period")
# user:password@ in a URL, and password=... in a query string or a libpq keyword string
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<secret>[^@\s]*)@")
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword=)(?P<secret>[^&\s;]*)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with every password in a storage URL (or `password=` option) replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:***@", text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['head']}***", text)


@dataclass
class QueueConfig:
    """The validated `queue:` block; `storage` None means a journal file in the results folder."""

    storage: str | None = None
    heartbeat_interval: int = 60
    grace_period: int | None = None  # None: twice the heartbeat interval (Optuna's default)

    @property
    def grace_s(self) -> int:
        return self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval

    def as_dict(self) -> dict[str, Any]:
        storage = redact(self.storage) if self.storage is not None else None
        return {"storage": storage, "heartbeat_interval": self.heartbeat_interval, "grace_period": self.grace_s}


def check_storage_spelling(value: str, origin: str, path: str) -> None:
    """`journal`, `journal:/path/file.journal` or a database URL (scheme://...)."""
    if value == "journal" or value.startswith("journal:") or "://" in value:
        return
    fail(origin, path, f"got {redact(value)!r}, expected journal or a URL like postgresql://user@host/db")


def parse_queue(raw: Any, origin: str) -> QueueConfig:
    if raw is None:
        return QueueConfig()
    if not isinstance(raw, dict):
        fail(origin, "queue", f"got {redact(repr(raw))}, expected a mapping ({', '.join(_KEYS)})")
    for key in raw:
        if key not in _KEYS:
            fail(origin, f"queue.{key}", f"unknown key; allowed: {', '.join(_KEYS)}{closest(str(key), _KEYS)}")
    cfg = QueueConfig()
    storage = raw.get("storage")
    if storage is not None and not isinstance(storage, str):
        fail(origin, "queue.storage", f"got {storage!r}, expected journal or a URL")
    if storage is not None:
        check_storage_spelling(storage, origin, "queue.storage")
    cfg.storage = storage
    cfg.heartbeat_interval = coerce(raw.get("heartbeat_interval", 60), int, origin, "queue.heartbeat_interval")
    if cfg.heartbeat_interval < 1:
        fail(origin, "queue.heartbeat_interval", f"got {cfg.heartbeat_interval}, must be at least 1 (seconds)")
    cfg.grace_period = coerce(raw.get("grace_period"), int | None, origin, "queue.grace_period")
    if cfg.grace_period is not None and cfg.grace_period <= cfg.heartbeat_interval:
        fail(
            origin,
            "queue.grace_period",
            f"got {cfg.grace_period}, must exceed heartbeat_interval ({cfg.heartbeat_interval})",
        )
    return cfg
