"""The experiment schema, a leaf of the import graph: typed, validated, torch-free, overrides applied.

Everything a run depends on is described here, and nothing here imports a runtime module
(torch, transformers, peft, optuna, the runner, the planners): `--dry-run` and every config
error cost a second. An import contract in pyproject.toml (`lint-imports`) keeps it so.

  experiment.py  the top-level file: model, task, data, train, save, methods, seeds (`Experiment`: the one list of keys)
  entries.py     the `train:` section and the method entries (a method's params come from its
                 torch-free declaration in peftlab/method_specs, never from peftlab/methods)
  optim.py       a run's optimiser spec: lr and its friends, from YAML to AdamW
  kinds.py       one item of a kind list (methods, loggers, probes): a name or a mapping with a kind key
  identity.py    what names a run: the hash behind run ids, and keys added later left out while unset
  search.py      the `search:` block (sampler, objectives, space, pruner)
  protocol.py    the `protocol:` switch (`tuned`: one small lr study per method before the comparison)
  queue.py       the `queue:` block (shared storage and heartbeats for `--join`) and URL password redaction
  stages.py      the `init_from:` stage (task A, trained first; its model is where every run starts)
  probes.py      the `forgetting:` list (probe params and which tasks each fits)
  lm_eval_tasks.py  which lm-evaluation-harness task names exist (the `lm_eval` probe), without importing lm-eval
  loggers.py     the `loggers:` list (tensorboard, mlflow, wandb): trackers, not part of a run's identity
  overrides.py   command-line `key=value` overrides
  schema.py      the small validator that turns YAML into these dataclasses with one-line errors
"""

from peftlab.config.experiment import (
    DataConfig,
    Experiment,
    MethodEntry,
    SaveConfig,
    TrainConfig,
    load_experiment,
    parse_experiment,
)
from peftlab.config.identity import computed_config
from peftlab.config.overrides import apply_override
from peftlab.config.probes import (
    PROBE_KINDS,
    LinearProbeParams,
    LMLossParams,
    PreviousTaskParams,
    ProbeEntry,
    ProbeKind,
    parse_probes,
    probe_names,
)
from peftlab.config.search import OBJECTIVES, PRUNERS, SAMPLERS, SearchConfig, parse_search
from peftlab.config.stages import InitFromConfig, parse_init_from

__all__ = [
    "OBJECTIVES",
    "PROBE_KINDS",
    "PRUNERS",
    "SAMPLERS",
    "DataConfig",
    "Experiment",
    "InitFromConfig",
    "LMLossParams",
    "LinearProbeParams",
    "MethodEntry",
    "PreviousTaskParams",
    "ProbeEntry",
    "ProbeKind",
    "SaveConfig",
    "SearchConfig",
    "TrainConfig",
    "apply_override",
    "computed_config",
    "load_experiment",
    "parse_experiment",
    "parse_init_from",
    "parse_probes",
    "parse_search",
    "probe_names",
]
