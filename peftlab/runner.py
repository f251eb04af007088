"""Compatibility: one run moved to `peftlab.recipe` (its phases), and where runs happen to `peftlab.execute`."""

from peftlab.execute.executors import summary_line
from peftlab.execute.isolation import can_fork, die_with_parent
from peftlab.execute.isolation import run_isolated as execute_isolated
from peftlab.execute.lock import hold_results_lock
from peftlab.execute.workspace import Workspace, prepare_workspace
from peftlab.recipe import base_record, execute_run

__all__ = [
    "Workspace",
    "base_record",
    "can_fork",
    "die_with_parent",
    "execute_isolated",
    "execute_run",
    "hold_results_lock",
    "prepare_workspace",
    "summary_line",
]
