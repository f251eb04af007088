"""Experiment trackers (the `loggers:` key): thin sinks that stream a run to TensorBoard, MLflow or W&B.

Imported only when an experiment has a `loggers:` list, and only in the process that writes files
(rank 0 under `train.distributed`). Each sink gets the same three things (base.py): the run's
start (its id, group and resolved config), the loop's steps and evaluations, and the final
record's metrics and costs. The record stays the truth; a tracker that fails is one warning, and
the run goes on without it.
"""

from peftlab.loggers.base import RunInfo, Trackers, final_metrics, flat_params, open_trackers, run_info

__all__ = ["RunInfo", "Trackers", "final_metrics", "flat_params", "open_trackers", "run_info"]
