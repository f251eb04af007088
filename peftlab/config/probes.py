"""The `forgetting:` section: which probes measure a run, each probe's params, validated torch-free.

A probe's measuring code (peftlab/probes/) needs torch; its params and which experiment tasks it
fits do not, so they live here and `--dry-run` stays instant. The probe plugins take their params
type from `PROBE_KINDS`, one entry per probe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from peftlab.config.schema import build, check, closest, fail
from peftlab.config.stages import InitFromConfig


@dataclass
class LMLossParams:
    """General text, cut into fixed-length token blocks; the score is the mean per-token loss."""

    source: str = "builtin:news_articles"
    text_column: str = "text"
    split: Literal["validation", "test"] = "test"
    block_size: int = 128
    max_blocks: int = 64
    batch_size: int = 8

    def __post_init__(self) -> None:
        check(self.block_size >= 8, "block_size", f"got {self.block_size}, must be at least 8")
        check(self.max_blocks >= 1, "max_blocks", f"got {self.max_blocks}, must be at least 1")
        check(self.batch_size >= 1, "batch_size", f"got {self.batch_size}, must be at least 1")


@dataclass
class LinearProbeParams:
    """A second labelled task whose linear separability in the frozen features is measured."""

    source: str = "builtin:bbc_news"
    text_column: str = "text"
    label_column: str = "label"
    max_length: int = 128
    train_limit: int = 400
    test_limit: int = 300
    C: float = 1.0  # inverse L2 strength of the logistic regression (scikit-learn's name)
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.max_length >= 8, "max_length", f"got {self.max_length}, must be at least 8")
        for key in ("train_limit", "test_limit", "batch_size"):
            check(getattr(self, key) >= 1, key, f"got {getattr(self, key)}, must be at least 1")
        check(self.C > 0, "C", f"got {self.C}, must be positive")


# `previous_task` measures the init_from stage's task A, so its params are the stage's settings
# (config/stages.py); the old name stays for code written against it
PreviousTaskParams = InitFromConfig


@dataclass(frozen=True)
class ProbeKind:
    """What the config needs to know about a probe: its params and the experiment tasks it can measure."""

    name: str
    params: type
    tasks: tuple[str, ...]


PROBE_KINDS: dict[str, ProbeKind] = {
    kind.name: kind
    for kind in (
        ProbeKind("lm_loss", LMLossParams, ("sft",)),
        ProbeKind("linear_probe", LinearProbeParams, ("classification",)),
        ProbeKind("previous_task", InitFromConfig, ("classification",)),
    )
}


@dataclass
class ProbeEntry:
    """One item of the experiment's `forgetting:` list."""

    probe: str
    params: Any

    def as_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, **dataclasses.asdict(self.params)}


def probe_names() -> list[str]:
    return sorted(PROBE_KINDS)


def parse_probes(raw: Any, origin: str, task: str, stage: InitFromConfig | None = None) -> list[ProbeEntry]:
    """The `forgetting:` list, validated: known probe names, their keys, and a probe that fits the task.

    `previous_task` measures the experiment's `init_from:` stage (`stage`), and takes its settings
    as params; without a stage it is a one-line error. (The old spelling, stage settings on the
    probe's entry, was already turned into `stage` by config/stages.py.)
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        fail(origin, "forgetting", f"got {raw!r}, expected a list of probes, e.g. [{{probe: linear_probe}}]")
    entries: list[ProbeEntry] = []
    for i, item in enumerate(raw):
        path = f"forgetting[{i}]"
        if isinstance(item, str):
            item = {"probe": item}
        if not isinstance(item, dict):
            fail(origin, path, f"got {item!r}, expected a mapping with a 'probe' key")
        if "probe" not in item:
            fail(origin, f"{path}.probe", f"required key is missing; allowed probes: {', '.join(probe_names())}")
        name = item["probe"]
        if name not in PROBE_KINDS:
            fail(
                origin,
                f"{path}.probe",
                f"unknown probe {name!r}; allowed: {', '.join(probe_names())}{closest(str(name), probe_names())}",
            )
        cls = PROBE_KINDS[name]
        if task not in cls.tasks:
            fitting = [n for n in probe_names() if task in PROBE_KINDS[n].tasks]
            fail(
                origin,
                f"{path}.probe",
                f"probe {name!r} measures {' or '.join(cls.tasks)} models, this experiment's task is {task!r}; "
                f"probes for {task}: {', '.join(fitting) or '(none)'}",
            )
        if name == "previous_task":
            if stage is None:
                fail(
                    origin,
                    f"{path}.probe",
                    "previous_task measures task A of an init_from: stage and this experiment has none; "
                    "add one, e.g. init_from: {source: builtin:bbc_news, steps: 30}",
                )
            params = stage
        else:
            params = build(cls.params, {k: v for k, v in item.items() if k != "probe"}, origin, path)
        if any(e.probe == name for e in entries):
            fail(origin, path, f"probe {name!r} is listed twice; records keep one result per probe")
        entries.append(ProbeEntry(name, params))
    return entries
