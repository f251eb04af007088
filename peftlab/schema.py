"""Compatibility: the validator moved to `peftlab.config.schema` (the config package is the schema's home)."""

from peftlab.config.schema import FieldError, build, check, closest, coerce, fail

__all__ = ["FieldError", "build", "check", "closest", "coerce", "fail"]
