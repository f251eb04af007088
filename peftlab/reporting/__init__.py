"""Tables, figures and LaTeX macros derived from run records (see `peftlab.cli.report` for the CLI)."""

from __future__ import annotations

from peftlab.reporting.frame import ci95, summarise, tidy_runs
from peftlab.reporting.tables import macros_tex, summary_latex, summary_markdown

__all__ = ["ci95", "macros_tex", "summarise", "summary_latex", "summary_markdown", "tidy_runs"]
