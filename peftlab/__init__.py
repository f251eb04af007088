"""peftlab: compare parameter-efficient fine-tuning methods under one training loop, with honest measurements.

The folders are the layers, and data flows one way (docs/architecture.md):
  config/      the experiment file, typed and validated (a torch-free leaf)
  planners/    which runs to make: the grid plan, the Optuna search, the shared queue (run specs out, records in)
  execute/     where runs happen: fork isolation, results lock, devices, serial and worker-pool executors
  runtime/     one run in phases: workspace, recipe, stages, the one training loop, models, measurement, OOM
  methods/ tasks/ probes/ loggers/   the plugins the runtime uses, one file each, found by name in a registry
  records/     the typed run record (the contract between layers), reading and writing it, predictions
  stats/       the crossed seeds x examples engine, the nested fallback, calibration
  reporting/   tables, figures and the explorer from records only
  cli/         the entry points: `peftlab run | report | export | paper | assets | dashboard`, launchers
The root holds only the package's start-up (library_noise), its one error type and two documented
entry points (`python -m peftlab.run`, `python -m peftlab.report`). The import rules are contracts in
pyproject.toml, checked by tests/test_architecture.py.
"""

from peftlab import library_noise

__version__ = "0.1.0"

library_noise.install()
