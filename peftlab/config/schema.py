"""Build typed dataclasses from untyped YAML with errors a researcher can act on.

A small validator instead of pydantic: the schema is a handful of dataclasses, and the messages
must name the file, the key path, what was given and what is allowed, and suggest a close name.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin, get_type_hints

from peftlab.errors import ConfigError


def closest(name: str, allowed: typing.Iterable[str]) -> str:
    """' (did you mean X?)' when a close allowed name exists, else ''."""
    match = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def fail(origin: str, path: str, problem: str) -> typing.NoReturn:
    where = f"{origin}: " if origin else ""
    raise ConfigError(f"{where}{path}: {problem}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, str(tp))


def coerce(value: Any, tp: Any, origin: str, path: str) -> Any:
    """Return `value` converted to `tp`, or fail with a message that names the path."""
    if tp is Any:
        return value
    org = get_origin(tp)
    if org in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, origin, path)
            except ConfigError as err:
                errors.append(err)
        fail(origin, path, f"got {value!r}, expected {_type_name(tp)}")
    if org is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        fail(
            origin,
            path,
            f"got {value!r}, allowed: {', '.join(map(str, allowed))}{closest(str(value), map(str, allowed))}",
        )
    if org is list:
        (inner,) = get_args(tp) or (Any,)
        if not isinstance(value, list):
            fail(origin, path, f"got {value!r}, expected {_type_name(tp)}")
        return [coerce(v, inner, origin, f"{path}[{i}]") for i, v in enumerate(value)]
    if org is dict:
        if not isinstance(value, Mapping):
            fail(origin, path, f"got {value!r}, expected a mapping")
        _, inner = get_args(tp) or (str, Any)
        return {str(k): coerce(v, inner, origin, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, origin, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads `5e-5` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str and isinstance(value, str):
        return value
    fail(origin, path, f"got {value!r}, expected {_type_name(tp)}")


def build(cls: type, raw: Any, origin: str, path: str) -> Any:
    """Instantiate dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        fail(origin, path or "(top level)", f"got {raw!r}, expected a mapping")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in raw.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            fail(origin, key_path, f"unknown key; allowed: {', '.join(fields)}{closest(str(key), fields)}")
        kwargs[key] = coerce(value, hints[key], origin, key_path)
    for name, field in fields.items():
        no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if name not in kwargs and no_default:
            fail(origin, f"{path}.{name}" if path else name, "required key is missing")
    try:
        return cls(**kwargs)
    except FieldError as err:  # raised by __post_init__ range checks
        fail(origin, f"{path}.{err.key}" if path else err.key, err.message)


class FieldError(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def check(condition: bool, key: str, message: str) -> None:
    """Range checks inside __post_init__; `build` prefixes the key path and the file."""
    if not condition:
        raise FieldError(key, message)
