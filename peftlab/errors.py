"""User-facing errors: the CLI turns these into one line on stderr and exit code 2.

Anything else that escapes is a bug in peftlab and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (config, override, model or data source), not a peftlab bug."""


class ConfigError(UserError):
    """An experiment file or override that does not fit the schema."""


class ModelSourceError(UserError):
    """A model source that cannot be resolved or loaded."""
