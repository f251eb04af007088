"""Probe plugins, each in its own file and registered by name: what a run is measured with besides its task.

A probe's declaration (its params and the tasks it fits) is config (peftlab/config/probes.py,
`register_probe_kind`); the module named as its `runtime` holds the measuring class and is
imported by `probe_class` when an experiment's probes are loaded, built-in or a plugin's alike.
`ProbeSuite` is an experiment's probes, loaded once in the experiment process;
`ProbeSuite.for_run` gives one run's measurer.
"""

from peftlab.probes.base import PROBES, Probe, RunContext, base_model_view, probe_class, register
from peftlab.probes.suite import ProbeSuite, RunProbes, learning_metric

__all__ = [
    "PROBES",
    "Probe",
    "ProbeSuite",
    "RunContext",
    "RunProbes",
    "base_model_view",
    "learning_metric",
    "probe_class",
    "register",
]
