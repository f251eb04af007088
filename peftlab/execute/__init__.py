"""The execution layer: where runs happen, separate from which runs to make (planners) and what one run is (recipe).

workspace.py  what every run shares, prepared once (model source, tokenizer, tokenised data, probes)
isolation.py  a run in a forked child; a dead child still gets its record; the report pipe
lock.py       one owner per results folder
executors.py  serial and worker-pool executors: planner assignments in, records out
"""

from peftlab.execute.executors import SerialExecutor, WorkerPoolExecutor, summary_line
from peftlab.execute.isolation import can_fork, die_with_parent, run_isolated
from peftlab.execute.lock import hold_results_lock
from peftlab.runtime.workspace import Workspace, prepare_workspace

__all__ = [
    "SerialExecutor",
    "WorkerPoolExecutor",
    "Workspace",
    "can_fork",
    "die_with_parent",
    "hold_results_lock",
    "prepare_workspace",
    "run_isolated",
    "summary_line",
]
