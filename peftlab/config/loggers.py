"""The `loggers:` list: experiment trackers that watch the runs live (TensorBoard, MLflow, W&B).

    loggers:
      - tensorboard                                  # results/<name>/tensorboard/<run_id>/
      - {logger: mlflow, tracking_uri: sqlite:////abs/mlflow.db}
      - {logger: wandb, project: peftlab, mode: offline}

Loggers only watch: they are not part of a run's identity (adding one re-runs nothing) and the
record stays the truth. Part of the config leaf, so the trackers are never imported here; a
logger whose package is missing is found with `importlib.util.find_spec` (no import) and is a
one-line error naming the `pip install` that fixes it, before anything is written.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

from peftlab.config.kinds import parse_kind
from peftlab.config.schema import build, fail

EXTRA = "trackers"  # pyproject's optional dependencies that bring every logger's package


@dataclass
class TensorBoardParams:
    """Event files per run; `dir` None: `<results>/<experiment>/tensorboard/`, one sub-folder per run id."""

    dir: str | None = None


@dataclass
class MlflowParams:
    """An MLflow experiment per peftlab experiment, a run per run id (a search's trials nested under the study).

    `tracking_uri` None: $MLFLOW_TRACKING_URI, else `sqlite:///<output_dir>/mlflow.db` beside the results.
    `experiment_name` None: the peftlab experiment's name.
    """

    tracking_uri: str | None = None
    experiment_name: str | None = None


@dataclass
class WandbParams:
    """A W&B run per run id, grouped by experiment (a search's trials grouped by study).

    `mode` None: W&B's own choice ($WANDB_MODE, or online when logged in); `dir` None: the results folder.
    """

    project: str | None = None  # None: the peftlab experiment's name
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] | None = None
    dir: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class LoggerKind:
    name: str
    params: type
    package: str  # the distribution that `pip install` brings
    module: str  # what must be importable


LOGGER_KINDS: dict[str, LoggerKind] = {
    kind.name: kind
    for kind in (
        LoggerKind("tensorboard", TensorBoardParams, "tensorboard", "tensorboard"),
        LoggerKind("mlflow", MlflowParams, "mlflow", "mlflow"),
        LoggerKind("wandb", WandbParams, "wandb", "wandb"),
    )
}


@dataclass
class LoggerEntry:
    """One item of the experiment's `loggers:` list."""

    logger: str
    params: Any

    def as_dict(self) -> dict[str, Any]:
        return {"logger": self.logger, **dataclasses.asdict(self.params)}


def logger_names() -> list[str]:
    return sorted(LOGGER_KINDS)


def missing_package(kind: LoggerKind) -> str | None:
    """The line that says how to install the logger's package, or None when it is importable."""
    if importlib.util.find_spec(kind.module) is not None:
        return None
    return f"{kind.name} is not installed; pip install 'peftlab[{EXTRA}]' (or: pip install {kind.package})"


def parse_loggers(raw: Any, origin: str) -> list[LoggerEntry]:
    """The `loggers:` list, validated: known names, their keys, each once, each one's package installed."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        fail(origin, "loggers", f"got {raw!r}, expected a list of loggers, e.g. [tensorboard, mlflow]")
    entries: list[LoggerEntry] = []
    for i, item in enumerate(raw):
        path = f"loggers[{i}]"
        name, settings = parse_kind(item, "logger", LOGGER_KINDS, origin, path)
        kind = LOGGER_KINDS[name]
        params = build(kind.params, settings, origin, path)
        if any(e.logger == name for e in entries):
            fail(origin, path, f"logger {name!r} is listed twice")
        problem = missing_package(kind)
        if problem is not None:
            fail(origin, path, problem)
        entries.append(LoggerEntry(name, params))
    return entries
