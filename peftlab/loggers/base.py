"""What every tracker sink gets, and the fan-out that keeps a failing tracker from failing the run.

A sink is three calls: made with the run's `RunInfo` (it opens its run there), `log(step,
values)` for each optimiser step and each evaluation, and `finish(step, metrics, status)` with
the final record's metrics and costs once the record is written. Names are shared by every sink:

  train/loss, train/lr, train/tokens_per_s, train/step_s            each optimiser step
  validation/<score>                                                 each evaluation (eval_every)
  test/<score>, validation/<score>, speed/…, memory/…, time/…,      the record, at the last step
  params/…, size/…, forgetting/<probe>/{before,after,delta}, learning/…
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from peftlab.records.record import RunRecord

# logger name -> "module:Class" of its sink, imported only when an experiment names it
SINKS = {
    "tensorboard": "peftlab.loggers.tensorboard_sink:TensorBoardSink",
    "mlflow": "peftlab.loggers.mlflow_sink:MlflowSink",
    "wandb": "peftlab.loggers.wandb_sink:WandbSink",
}


@dataclass(frozen=True)
class RunInfo:
    """Who the run is, for a tracker: named by run id, grouped by experiment (a trial: by its study)."""

    run_id: str
    experiment: str
    label: str
    method: str
    seed: int
    config: dict[str, Any]  # the record's resolved config: the run's parameters
    results_dir: Path
    output_dir: Path
    study: str | None = None  # a search trial's study: the parent run (MLflow) or group (W&B)
    trial: int | None = None

    @property
    def group(self) -> str:
        return self.study or self.experiment

    def tags(self) -> dict[str, str]:
        tags = {"peftlab.experiment": self.experiment, "peftlab.method": self.method, "peftlab.label": self.label}
        tags["peftlab.seed"] = str(self.seed)
        if self.study is not None:
            tags |= {"peftlab.study": self.study, "peftlab.trial": str(self.trial)}
        return tags


class Sink(Protocol):
    def log(self, step: int, values: dict[str, float]) -> None: ...

    def finish(self, step: int, metrics: dict[str, float], status: str) -> None: ...


def run_info(experiment: Any, spec: Any, record: RunRecord) -> RunInfo:
    """The `RunInfo` of a run spec (`study`/`trial`: set by the search planner on a trial's spec)."""
    return RunInfo(
        run_id=spec.run_id,
        experiment=experiment.name,
        label=spec.label,
        method=spec.method,
        seed=spec.seed,
        config=record.config,
        results_dir=experiment.results_dir(),
        output_dir=Path(experiment.output_dir).resolve(),
        study=getattr(spec, "study", None),
        trial=getattr(spec, "trial", None),
    )


class Trackers:
    """The run's sinks; a sink that raises is dropped with one warning, and the run goes on."""

    def __init__(self, sinks: dict[str, Sink]) -> None:
        self.sinks = dict(sinks)

    def where(self) -> dict[str, Any]:
        """Where each tracker put the run (a folder, a tracking URI and run id), for the record."""
        return {name: getattr(sink, "where", {}) for name, sink in self.sinks.items()}

    def log(self, step: int, values: dict[str, float]) -> None:
        values = {k: float(v) for k, v in values.items() if _is_number(v)}
        for name, sink in list(self.sinks.items()):
            self._guard(name, sink.log, step, values)

    def finish(self, record: RunRecord) -> None:
        step = int(record.time.steps or 0)
        metrics = final_metrics(record)
        for name, sink in list(self.sinks.items()):
            self._guard(name, sink.finish, step, metrics, record.status)
        self.sinks.clear()

    def _guard(self, name: str, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except Exception as err:  # a tracker is a view of the run, never a reason to lose it
            self.sinks.pop(name, None)
            _warn(name, err)


def open_trackers(entries: list[Any], info: RunInfo) -> Trackers:
    """A sink per `loggers:` entry, each opened on the run; one that cannot open is a warning, not a failure."""
    sinks: dict[str, Sink] = {}
    for entry in entries:
        module, cls = SINKS[entry.logger].split(":")
        try:
            sinks[entry.logger] = getattr(importlib.import_module(module), cls)(entry.params, info)
        except Exception as err:
            _warn(entry.logger, err)
    return Trackers(sinks)


def _warn(name: str, err: BaseException) -> None:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    print(f"peftlab: logger {name} failed ({type(err).__name__}: {first}); the run goes on without it", file=sys.stderr)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _leaves(node: Any, prefix: str, out: dict[str, float]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _leaves(value, f"{prefix}/{key}", out)
    elif _is_number(node):
        out[prefix] = float(node)


def final_metrics(record: RunRecord) -> dict[str, float]:
    """The record's metrics and costs as flat `section/key` numbers (NaN, None, text and the curve left out)."""
    out: dict[str, float] = {}
    for split, scores in (("test", record.metrics.test), ("validation", record.metrics.validation)):
        for key, value in (scores or {}).items():
            if _is_number(value):
                out[f"{split}/{key}"] = float(value)
    if _is_number(record.metrics.final_train_loss):
        out["train/final_loss"] = float(record.metrics.final_train_loss)
    for section in ("speed", "memory", "time", "params", "size"):  # each numeric leaf is a final metric
        _leaves(record.at(section) or {}, section, out)
    for probe, result in (record.forgetting or {}).items():
        for key in ("before", "after", "delta"):
            if _is_number(getattr(result, key)):
                out[f"forgetting/{probe}/{key}"] = float(getattr(result, key))
    for key in ("base", "after", "gain"):
        if record.learning is not None and _is_number(getattr(record.learning, key)):
            out[f"learning/{key}"] = float(getattr(record.learning, key))
    return out


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """A nested config as `a.b.c` keys with scalar values (lists as JSON, None as "null")."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        elif isinstance(value, (str, int, float, bool)):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str) if value is not None else "null"
    return out
