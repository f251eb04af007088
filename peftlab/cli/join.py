"""Join an experiment's shared queue in-process: what `python -m peftlab.run EXP.yaml --join` does.

A launcher that starts workers itself (a submitit job array on SLURM) calls `join_experiment`
in each task: the task takes planned runs (or search trials) from the experiment's shared
storage until none are left and returns the exit code, 0 when every run it took finished.
Any number of such workers, on any hosts, may join at once (planners/queue.py says how each run
is made exactly once).
"""

from __future__ import annotations


def join_experiment(experiment_path: str, overrides: list[str]) -> int:
    """Work on the experiment's queue until it is empty; the exit code (2: a user mistake, printed in one line)."""
    from peftlab.cli.run import main  # the CLI's own path: the same checks, messages and exit codes

    return main([str(experiment_path), *overrides, "--join"])
