"""The one Pareto rule of the reports: which points another point beats on both objectives.

The static figures (peftlab/reporting/figures.py: cost against the chosen metric, learning against
forgetting, a multi-objective study) and the browser explorer (peftlab/reporting/explorer.py, which
embeds `dominators` for every pair of its axes so that its script only looks them up) all ask it
here, so a front cannot differ between a figure and the page. Each objective has its own direction:
a lower-is-better metric (MSE) flips its side of the front.
"""

from __future__ import annotations


def dominators(points: list[tuple[float, float]], maximise: tuple[bool, bool]) -> list[list[int]]:
    """For each point, the indices of the points that dominate it: at least as good on both objectives
    and strictly better on one (ties dominate nothing), each objective in its own direction."""
    signs = [1.0 if up else -1.0 for up in maximise]
    keyed = [(a * signs[0], b * signs[1]) for a, b in points]
    return [
        [j for j, o in enumerate(keyed) if o[0] >= p[0] and o[1] >= p[1] and (o[0] > p[0] or o[1] > p[1])]
        for p in keyed
    ]


def non_dominated(points: list[tuple[float, float]], maximise: tuple[bool, bool]) -> list[bool]:
    """Which points no other point beats on both objectives (ties allowed), for any mix of directions."""
    return [not beaten for beaten in dominators(points, maximise)]


def front(points: list[tuple[float, float]], maximise: tuple[bool, bool]) -> list[tuple[float, float]]:
    """The non-dominated points, each once, in order of the first objective (then the second)."""
    keep = non_dominated(points, maximise)
    return sorted({p for p, kept in zip(points, keep, strict=True) if kept})
