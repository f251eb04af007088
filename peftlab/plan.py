"""Compatibility: the grid plan moved to `peftlab.planners.grid` (run specs to `peftlab.planners.base`)."""

from peftlab.planners.base import RunSpec
from peftlab.planners.grid import apply_choices, computed_config, make_plan, with_alpha_ratio

__all__ = ["RunSpec", "apply_choices", "computed_config", "make_plan", "with_alpha_ratio"]
