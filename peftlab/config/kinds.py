"""One item of a kind list (`methods:`, `loggers:`, `forgetting:`): a name, or a mapping with a kind key.

    methods: [full, {method: lora, r: 8}]
    loggers: [tensorboard, {logger: mlflow, tracking_uri: ...}]
    forgetting: [linear_probe, {probe: lm_loss, max_blocks: 8}, {lm_eval: {tasks: [hellaswag]}}]

Every such list is read the same way, with the same one-line errors, so the rule lives here once;
each list then validates the settings against its kind's own params.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from peftlab.config.schema import closest, fail


def parse_kind(
    item: Any, key: str, kinds: Collection[str], origin: str, path: str, *, nested: bool = False
) -> tuple[str, dict[str, Any]]:
    """(kind, its settings) of one list item: `name`, `{key: name, setting: value, ...}`, or with `nested`
    also `{name: {setting: value}}`. An item of another shape, a missing or unknown kind fails naming `path`."""
    allowed = sorted(kinds)
    if isinstance(item, str):
        item = {key: item}
    if nested and isinstance(item, dict) and key not in item and len(item) == 1:
        ((name, settings),) = item.items()
        if name in kinds and isinstance(settings, dict | None):
            item = {key: name, **(settings or {})}
    if not isinstance(item, dict):
        fail(origin, path, f"got {item!r}, expected a {key} name or a mapping with a '{key}' key")
    if key not in item:
        fail(origin, f"{path}.{key}", f"required key is missing; allowed {key}s: {', '.join(allowed)}")
    name = item[key]
    if not isinstance(name, str) or name not in kinds:
        fail(
            origin,
            f"{path}.{key}",
            f"unknown {key} {name!r}; allowed: {', '.join(allowed)}{closest(str(name), allowed)}",
        )
    return name, {k: v for k, v in item.items() if k != key}
