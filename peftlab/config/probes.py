"""The `forgetting:` section: which probes measure a run, each probe's params, validated torch-free.

A probe's measuring code (peftlab/probes/) needs torch; its params and which experiment tasks it
fits do not, so they live here and `--dry-run` stays instant. The probe plugins take their params
type from `PROBE_KINDS`, one entry per probe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from peftlab.config.kinds import parse_kind
from peftlab.config.schema import build, check, fail
from peftlab.config.stages import InitFromConfig
from peftlab.plugins import clash, load_entry_points


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


@dataclass
class LMEvalParams:
    """lm-evaluation-harness tasks run over the live model (causal LMs); the score is their mean `metric`.

    `include_path`: a folder of task YAMLs of one's own (lm-eval's task format), e.g. over a local
    jsonl file; relative to the working directory, else to the experiment file's folder.
    """

    tasks: list[str] = field(default_factory=list)
    limit: int | None = None  # examples per task (lm-eval's --limit); null: all
    include_path: str | None = None
    num_fewshot: int | None = None  # null: each task's own default
    batch_size: int = 8
    metric: str = "acc"  # the per-task metric averaged into the score (and each example's `correct`)

    def __post_init__(self) -> None:
        check(bool(self.tasks), "tasks", "expected a non-empty list of lm-eval task names, e.g. [hellaswag]")
        check(len(set(self.tasks)) == len(self.tasks), "tasks", f"got {self.tasks}, a task is listed twice")
        check(self.limit is None or self.limit >= 1, "limit", f"got {self.limit}, must be at least 1 or null")
        check(self.num_fewshot is None or self.num_fewshot >= 0, "num_fewshot", "must be 0 or more, or null")
        check(self.batch_size >= 1, "batch_size", f"got {self.batch_size}, must be at least 1")


# `previous_task` measures the init_from stage's task A, so its params are the stage's settings
# (config/stages.py); the old name stays for code written against it
PreviousTaskParams = InitFromConfig


@dataclass(frozen=True)
class ProbeKind:
    """What the config needs to know about a probe: its params and the experiment tasks it can measure.

    `runtime`: the module whose import registers the probe's measuring class (`peftlab.probes.register`),
    imported only when an experiment that lists the probe loads its probes.
    """

    name: str
    params: type
    tasks: tuple[str, ...]
    runtime: str


PROBE_KINDS: dict[str, ProbeKind] = {}


def register_probe_kind(kind: ProbeKind) -> ProbeKind:
    """Declare a probe; a plugin's module calls this as the built-ins below do (peftlab/plugins.py)."""
    if kind.name in PROBE_KINDS and PROBE_KINDS[kind.name] != kind:
        owner = PROBE_KINDS[kind.name].runtime
        raise clash("probe", kind.name, "peftlab (built-in)" if owner.startswith("peftlab.") else owner)
    if not dataclasses.is_dataclass(kind.params):
        raise TypeError(f"probe {kind.name!r}: params must be a dataclass")
    PROBE_KINDS[kind.name] = kind
    return kind


for _kind in (
    ProbeKind("lm_loss", LMLossParams, ("sft", "grpo"), "peftlab.probes.lm_loss"),
    ProbeKind("linear_probe", LinearProbeParams, ("classification",), "peftlab.probes.linear_probe"),
    ProbeKind("previous_task", InitFromConfig, ("classification",), "peftlab.probes.previous_task"),
    ProbeKind("lm_eval", LMEvalParams, ("sft", "grpo"), "peftlab.probes.lm_eval_probe"),
):
    register_probe_kind(_kind)


def probe_kinds() -> dict[str, ProbeKind]:
    """Every declared probe, built-in or a plugin's (the `peftlab.probes` entry points are loaded once, first)."""
    load_entry_points("peftlab.probes")
    return PROBE_KINDS


@dataclass
class ProbeEntry:
    """One item of the experiment's `forgetting:` list."""

    probe: str
    params: Any

    def as_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, **dataclasses.asdict(self.params)}


def probe_names() -> list[str]:
    return sorted(probe_kinds())


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
        # `{lm_eval: {...}}` too; the kinds: built-in or a plugin's
        name, settings = parse_kind(item, "probe", probe_kinds(), origin, path, nested=True)
        cls = PROBE_KINDS[name]
        if name == "lm_eval" and task not in cls.tasks:
            fail(
                origin,
                f"{path}.probe",
                f"lm_eval evaluates causal language models (task: sft); this experiment's task is {task!r}, "
                "whose model is an encoder with a task head",
            )
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
            params = build(cls.params, settings, origin, path)
        if name == "lm_eval":
            _check_lm_eval(params, origin, path)
        if any(e.probe == name for e in entries):
            fail(origin, path, f"probe {name!r} is listed twice; records keep one result per probe")
        entries.append(ProbeEntry(name, params))
    return entries


def lm_eval_include_dir(include_path: str | None, search_dirs: list[Path]) -> Path | None:
    """The folder of one's own lm-eval task YAMLs: as given when absolute, else the first search dir that has it."""
    if include_path is None:
        return None
    path = Path(include_path)
    if path.is_absolute():
        return path
    return next((d / path for d in search_dirs if (d / path).is_dir()), search_dirs[0] / path)


def _check_lm_eval(params: LMEvalParams, origin: str, path: str) -> None:
    """lm-eval installed, the include folder there, and every task name known to lm-eval (else the closest ones)."""
    import peftlab.config.lm_eval_tasks as lm_eval_tasks

    if not lm_eval_tasks.lm_eval_installed():
        fail(origin, path, "lm_eval is not installed; pip install 'peftlab[lmeval]' (or: pip install lm-eval)")
    dirs = [Path.cwd(), *([Path(origin).resolve().parent] if origin else [])]
    include = lm_eval_include_dir(params.include_path, dirs)
    if include is not None and not include.is_dir():
        fail(origin, f"{path}.include_path", f"got {params.include_path!r}, no such folder of task YAMLs")
    for task, near in lm_eval_tasks.unknown_tasks(params.tasks, include).items():
        hint = f"; closest: {', '.join(near)}" if near else ""
        fail(origin, f"{path}.tasks", f"unknown lm-eval task {task!r}{hint}")
