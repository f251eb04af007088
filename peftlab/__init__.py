"""peftlab: compare parameter-efficient fine-tuning methods under one training loop, with honest measurements.

The layout is the data flow, one way:
  config/      the experiment file, typed and validated (a torch-free leaf)
  planners/    which runs to make: the grid plan, the Optuna search (run specs out, records in)
  execute/     where runs happen: workspace, fork isolation, results lock, serial and worker-pool executors
  recipe.py    one run in phases: build → probes before → train (train.py) → evaluate → probes after → measure → save
  methods/ tasks/ probes/   the plugins the recipe uses, one file each, found by name in a registry
  results.py   one JSON record per run, written atomically
  report.py, reporting/     tables and figures from records only
  cli.py       the `peftlab` command (run, report, export, paper, assets)
The import rules are contracts in pyproject.toml, checked by tests/test_architecture.py.
"""

from peftlab import library_noise

__version__ = "0.1.0"

library_noise.install()
