"""Command-line `key=value` overrides, applied to the raw YAML before it is validated.

`methods[1].lr`, `methods.1.lr` and `methods.lora.lr` all address the same place, so an
override is validated exactly like the file itself.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from peftlab.config.schema import closest
from peftlab.errors import ConfigError


def _split_path(path: str) -> list[str]:
    """`methods[1].lr` and `methods.1.lr` and `methods.lora.lr` all address the same place."""
    return [p for p in re.split(r"\.|\[|\]", path) if p != ""]


def apply_override(raw: dict[str, Any], override: str, origin: str) -> None:
    if "=" not in override:
        raise ConfigError(f"{origin}: override {override!r}: expected key=value, e.g. train.steps=50")
    path, _, text = override.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    parts = _split_path(path.strip())
    if not parts:
        raise ConfigError(f"{origin}: override {override!r}: empty key")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        shown = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, origin, override, shown)]
            if _shorthand(node) == part:  # `{lm_eval: {tasks: ...}}`: its keys are inside
                node = node[part]
            if isinstance(node, str):  # `- lora` shorthand: promote to a mapping so it can take keys
                raise ConfigError(f"{origin}: override {override!r}: write that method as a mapping first")
        elif isinstance(node, dict):
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(f"{origin}: override {override!r}: {shown} is not a mapping or list")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, origin, override, path)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{origin}: override {override!r}: cannot set a key inside a {type(node).__name__}")


def _list_index(node: list[Any], part: str, origin: str, override: str, shown: str) -> int:
    if part.lstrip("-").isdigit():
        index = int(part)
        if -len(node) <= index < len(node):
            return index
        raise ConfigError(f"{origin}: override {override!r}: {shown} is out of range (list has {len(node)} items)")
    labels = [
        (m.get("label") or m.get("method") or m.get("probe") or m.get("logger") or _shorthand(m))
        if isinstance(m, dict)
        else m
        for m in node
    ]
    if part in labels:
        return labels.index(part)
    raise ConfigError(
        f"{origin}: override {override!r}: no entry {part!r} in the list; entries: "
        f"{', '.join(map(str, labels))}{closest(part, map(str, labels))}"
    )


def _shorthand(item: Any) -> str | None:
    """The name of a one-key entry such as `{lm_eval: {tasks: [...]}}` (a probe with its keys beneath), else None."""
    if isinstance(item, dict) and len(item) == 1:
        ((key, value),) = item.items()
        if isinstance(value, dict) and key not in ("method", "probe", "logger", "label"):
            return str(key)
    return None
