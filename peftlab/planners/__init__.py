"""Planners decide which runs to make; they never run anything themselves.

Two planners, one protocol: the grid plan (`grid.py`: methods × grid × seeds, every run known
up front) and the Optuna search (`optuna_search.py`: ask → run spec, tell ← record). An executor
(peftlab/execute/) takes `Assignment`s from a planner with `next()`, runs each, and hands the
record back with `tell()`; `run.py` wires the two together the same way for both.

A planner imports the config and the records, never the recipe, torch or an executor.
"""

from peftlab.planners.base import Assignment, OnRecord, Planner, Report, RunSpec

__all__ = ["Assignment", "OnRecord", "Planner", "Report", "RunSpec"]
