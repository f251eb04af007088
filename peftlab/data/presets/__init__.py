"""Presets: the standard benchmark sets by the name papers use, so `data.source: glue/mnli` is enough.

A preset says where a set lives on the Hugging Face hub (`hub_id` and its config), which hub
split plays each of peftlab's train/validation/test, how its rows become peftlab's canonical
columns, its labels, and the `data:` keys it fills unless the user set them (columns, metric,
answer extractor, choices column). It is loaded through the same `datasets.load_dataset` call as
any hub id (peftlab/data/sources.py), online from the hub, offline from a local copy laid out as
the hub's (`PEFTLAB_DATASETS_MIRROR`, peftlab/data/mirror.py).

A preset is for one task (`task`): GLUE's classification sets for `classification` and STS-B for
`regression`, the commonsense sets for `multiple_choice` (columns `text`, `choices`, `label`),
GSM8K, MetaMathQA and E2E for `sft` (conversational `prompt`/`completion` rows).

Every module of this package is imported by `_discover` (as peftlab/task_specs does): adding a
preset adds a line to a module, it edits nothing else. Nothing here imports `datasets` or torch:
the config validates `data.source` against this registry in a second.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from peftlab.data.frames import DataSourceError

# the `data:` keys a preset may fill (those of config/experiment.py DataConfig it knows about)
FILLABLE_KEYS = (
    "text_column",
    "text_pair_column",
    "label_column",
    "choices_column",
    "metric",
    "answer_extractor",
    "instruction",
)


@dataclass(frozen=True, eq=False)
class Preset:
    """One standard set: where it lives on the hub, which splits play which role, what it fills in."""

    name: str  # what `data.source` says
    hub_id: str  # the hub repository, e.g. "nyu-mll/glue"
    hub_config: str | None  # the `name` argument of load_dataset (a GLUE task, "main"), None for none
    task: str  # the peftlab task it is for
    title: str  # what the rows are, for records and tables
    citation: str
    # peftlab split -> hub split; a split left out is carved off train by content hash (sources.py)
    splits: Mapping[str, str]
    # `data:` keys filled unless the user set them (see FILLABLE_KEYS)
    config: Mapping[str, Any] = field(default_factory=dict)
    label_names: tuple[str, ...] = ()  # the hub's ClassLabel names, in id order (for the docs and checks)
    # hub rows -> canonical columns (text/choices/label, or prompt/completion); None: the hub's columns
    adapter: Callable[[Any], Any] | None = None
    # evaluated beside test, into the record's `metrics.<name>` (name -> hub split): MNLI's mismatched set
    extra_splits: Mapping[str, str] = field(default_factory=dict)
    revision: str | None = None  # a hub revision (e.g. the parquet conversion of a script-only dataset)
    note: str = ""  # the convention it follows, in words
    # further tasks that read its rows as they are, without the keys `config` fills (task grpo reads GSM8K's
    # prompt/completion rows and checks its own reward): the preset is valid for them, fills nothing
    also_for: tuple[str, ...] = ()

    @property
    def family(self) -> str | None:
        """`glue` for `glue/mnli`: a name under a known family is a preset or an error, never a hub id."""
        return self.name.split("/", 1)[0] if "/" in self.name else None


REGISTRY: dict[str, Preset] = {}


def register(*presets: Preset) -> None:
    for preset in presets:
        if preset.name in REGISTRY and REGISTRY[preset.name] is not preset:
            raise ValueError(f"preset {preset.name!r} is registered twice")
        unknown = set(preset.config) - set(FILLABLE_KEYS)
        if unknown:
            raise ValueError(f"preset {preset.name!r}: config keys {sorted(unknown)} are not among {FILLABLE_KEYS}")
        REGISTRY[preset.name] = preset


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def preset_names() -> list[str]:
    _discover()
    return sorted(REGISTRY)


def find_preset(source: str) -> Preset | None:
    """The preset `source` names; None when it is no preset (a hub id or a path).

    A name under a preset family (`glue/foo`) that is not registered is a DataSourceError listing
    the allowed names: it would otherwise go to the hub as a repository id and fail far less clearly.
    """
    _discover()
    name = source.strip()
    if name in REGISTRY:
        return REGISTRY[name]
    families = {p.family for p in REGISTRY.values() if p.family is not None}
    if "/" in name and name.split("/", 1)[0] in families:
        raise DataSourceError(f"unknown preset {name!r}; allowed: {', '.join(preset_names())}")
    return None


def fill_data_keys(preset: Preset, data: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    """`data` with the preset's keys added where the user set none; only keys in `known` (DataConfig's).

    `text_column` and `text_pair_column` go together: a user who names the text column
    (`text_column: [a, b]` or one column) gets no pair column from the preset.
    """
    out = dict(data)
    user_columns = "text_column" in data or "text_pair_column" in data
    for key, value in preset.config.items():
        if key in out or key not in known:
            continue
        if key in ("text_column", "text_pair_column") and user_columns:
            continue
        out[key] = value
    return out


__all__ = ["FILLABLE_KEYS", "REGISTRY", "Preset", "fill_data_keys", "find_preset", "preset_names", "register"]
