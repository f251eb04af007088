"""Compatibility: the forgetting probes moved to peftlab/probes/ (one file per probe) and their params to
peftlab/config/probes.py."""

from peftlab.config.probes import LinearProbeParams, LMLossParams, PreviousTaskParams, ProbeEntry, parse_probes
from peftlab.probes import PROBES, Probe, ProbeSuite, RunContext, RunProbes, base_model_view, register
from peftlab.probes.base import pooled_features, predict
from peftlab.probes.linear_probe import LinearProbe
from peftlab.probes.lm_loss import LMLossProbe, measure_lm_loss, token_blocks
from peftlab.probes.previous_task import PreviousTaskProbe, task_a_heads
from peftlab.probes.suite import learning_metric

Forgetting = ProbeSuite
RunForgetting = RunProbes

__all__ = [
    "PROBES",
    "Forgetting",
    "LMLossParams",
    "LMLossProbe",
    "LinearProbe",
    "LinearProbeParams",
    "PreviousTaskParams",
    "PreviousTaskProbe",
    "Probe",
    "ProbeEntry",
    "ProbeSuite",
    "RunContext",
    "RunForgetting",
    "RunProbes",
    "base_model_view",
    "learning_metric",
    "measure_lm_loss",
    "parse_probes",
    "pooled_features",
    "predict",
    "register",
    "task_a_heads",
    "token_blocks",
]
