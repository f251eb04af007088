"""MLflow: an MLflow experiment per peftlab experiment, a run per run id, a search's trials nested under their study.

Written through `MlflowClient` only (no global active run), so runs in forked children and worker
pools never share state. `tracking_uri` None: $MLFLOW_TRACKING_URI, else an SQLite file beside
the results (`sqlite:///<output_dir>/mlflow.db`; `mlflow ui --backend-store-uri` it). A trial's
parent run is the study's, found by tag or made once (under a file lock, as workers race for it).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext

from peftlab.config.loggers import MlflowParams
from peftlab.config.queue import redact
from peftlab.loggers.base import RunInfo, flat_params

_MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
_BATCH = 100  # params per log_batch call (MLflow's limit)
_STATUS = {"ok": "FINISHED", "pruned": "KILLED"}  # anything else: FAILED


def tracking_uri(params: MlflowParams, info: RunInfo) -> str:
    return params.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{info.output_dir / 'mlflow.db'}"


class MlflowSink:
    def __init__(self, params: MlflowParams, info: RunInfo) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        from peftlab.runtime.models import file_lock

        for name in ("mlflow", "alembic"):  # no INFO lines about creating and migrating its tables
            logging.getLogger(name).setLevel(logging.WARNING)
        self.uri = tracking_uri(params, info)
        self.client = MlflowClient(tracking_uri=self.uri)
        # a new SQLite store is migrated by whoever opens it first: workers of one host open it in turn
        guard = file_lock(info.output_dir / ".mlflow.lock") if self.uri.startswith("sqlite:") else nullcontext()
        with guard:
            experiment_id = self._experiment(params.experiment_name or info.experiment)
        tags = {**info.tags(), "mlflow.runName": info.run_id}
        if info.study is not None:
            tags["mlflow.parentRunId"] = self._study_run(experiment_id, info)
        self.run_id = self.client.create_run(experiment_id, run_name=info.run_id, tags=tags).info.run_id
        self.where = {"tracking_uri": redact(self.uri), "experiment_id": experiment_id, "run_id": self.run_id}
        flat = {**flat_params(info.config), "run_id": info.run_id}
        items = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in flat.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + _BATCH])

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # another worker made it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _study_run(self, experiment_id: str, info: RunInfo) -> str:
        """The study's parent run: found by its tag, or made once (a lock in the results folder)."""
        from peftlab.runtime.models import file_lock

        where = f"tags.`peftlab.role` = 'study' and tags.`peftlab.study` = '{info.study}'"
        with file_lock(info.results_dir / ".mlflow-study.lock"):
            runs = self.client.search_runs([experiment_id], filter_string=where, max_results=1)
            if runs:
                return runs[0].info.run_id
            tags = {"peftlab.role": "study", "peftlab.study": str(info.study), "peftlab.experiment": info.experiment}
            return self.client.create_run(experiment_id, run_name=info.study, tags=tags).info.run_id

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def finish(self, step: int, metrics: dict[str, float], status: str) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in metrics.items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start : start + 1000])
        self.client.log_batch(self.run_id, tags=[RunTag("peftlab.status", status)])
        self.client.set_terminated(self.run_id, status=_STATUS.get(status, "FAILED"))
