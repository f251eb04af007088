"""Probe plugins, each in its own file and registered by name: what a run is measured with besides its task.

Importing this package registers every built-in probe. `ProbeSuite` is an experiment's probes,
loaded once in the experiment process; `ProbeSuite.for_run` gives one run's measurer.
"""

from peftlab.probes import linear_probe, lm_eval_probe, lm_loss, previous_task  # noqa: F401  (registration side effect)
from peftlab.probes.base import PROBES, Probe, RunContext, base_model_view, register
from peftlab.probes.suite import ProbeSuite, RunProbes, learning_metric

__all__ = ["PROBES", "Probe", "ProbeSuite", "RunContext", "RunProbes", "base_model_view", "learning_metric", "register"]
