"""The task registry: what each task is, declared without torch, found by name.

A task is two modules. Its declaration (a `TaskSpec` in `peftlab/task_specs/<name>.py`,
registered at import) says what the config, the planners, the loop's progress line, the search
objectives and the reports need to know: its metrics with the primary one and its direction,
the per-example outputs its predictions file holds, its model class and head, what targets its
data carry and whether it takes sentence pairs. Its runtime (`runtime`, a module with a `TASK`
object, see peftlab/tasks/__init__.py) tokenises, collates, loads the model and evaluates, and is
imported only when a run needs it. The declarations are a leaf of the import graph (no torch,
no runtime module), so the config validates `task:` and the metrics a user names in a second,
and the reports read the same declarations as the runs.

Every module of this package is imported by `_discover`: adding a task adds files, it edits none.
A task of one's own (an entry point in the group `peftlab.tasks`, or a file in an experiment's
`include:` folder, see peftlab/plugins.py) calls the same `register`, its `runtime` naming a
module of its own.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Literal

from peftlab.plugins import clash, load_entry_points

Direction = Literal["max", "min"]


@dataclass(frozen=True)
class MetricSpec:
    """One number a task's evaluation returns under `name` (in `metrics.<split>.<name>` of a record)."""

    name: str
    direction: Direction  # which way is better
    summary: str
    short: str = ""  # the run's one-line summary shows it under this name ("" : not shown)
    fmt: str = ".3f"
    curve: bool = True  # kept at every intermediate validation (the record's `metrics.curve`)
    # how the statistics engine (peftlab/stats/crossed.py) recomputes it from the per-example outputs of
    # the predictions file, for paired and crossed intervals: "mean:<column>" (the mean of one
    # per-example column: accuracy from `correct`), "macro_f1", "matthews" (from `gold`/`prediction`
    # class ids), "pearson", "spearman" (numbers), "corpus_bleu" (n-gram counts); None: not resampled
    statistic: str | None = None

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.direction == "max" else "minimize"


@dataclass(frozen=True)
class MetricChoice:
    """One value of `data.metric`: the declared metric it makes primary and the per-example outputs it keeps."""

    name: str  # what `data.metric` says
    primary: str  # a declared metric
    per_example: tuple[str, ...]


@dataclass(frozen=True)
class TaskSpec:
    """A task's declaration; see the module docstring."""

    name: str
    summary: str
    runtime: str  # module whose `TASK` runs it (imported lazily, by name)
    peft_task_type: str  # handed to the methods: SEQ_CLS, CAUSAL_LM
    # the transformers auto class the model is loaded with; several separated by " | ": the first
    # whose mapping has the model's config (multiple choice: an encoder's head, else a causal LM)
    model_class: str
    head: str  # what the task trains on top of the backbone
    metrics: tuple[MetricSpec, ...]
    primary: str  # the metric every comparison, search default and tuned protocol uses
    # columns of each predictions-file line besides `split` and `id` (peftlab/records/predictions.py):
    # what a statistics engine resamples per example
    per_example: tuple[str, ...]
    predictions: str  # how one predictions line looks, in words
    # what the data's label column holds; "choices": the index of the correct one of `data.choices_column`
    targets: Literal["classes", "numbers", "answers", "choices"] = "classes"
    pairs: bool = False  # takes `data.text_column: [a, b]` / `data.text_pair_column` (sentence pairs)
    # what "learning" is measured from (forgetting probes): a score of the same evaluation
    # (e.g. `majority_rate`) or "base_model" (the base model evaluated before training)
    learning_baseline: str = "base_model"
    # the values `data.metric` may take (the first is the default, what `primary` already is, and
    # computed under every choice; the others' primaries only when chosen) and
    # the answer extractors `data.answer_extractor` may name; a task with none takes neither key
    metric_choices: tuple[MetricChoice, ...] = ()
    answer_extractors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        if self.primary not in names:
            raise ValueError(f"task {self.name!r}: primary metric {self.primary!r} is not among {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r}: a metric is declared twice in {names}")
        for choice in self.metric_choices:
            if choice.primary not in names:
                raise ValueError(f"task {self.name!r}: metric choice {choice.name!r} names no declared metric")

    def choose(self, metric: str | None) -> TaskSpec:
        """This declaration with `data.metric` applied: its primary metric and per-example outputs.

        None (the key unset) is the declaration itself, so runs without the key are unchanged.
        KeyError (one line, naming the choices) for a metric the task does not offer.
        """
        if metric is None:
            return self
        for choice in self.metric_choices:
            if choice.name == metric:
                return dataclasses.replace(self, primary=choice.primary, per_example=choice.per_example)
        offered = ", ".join(c.name for c in self.metric_choices) or "none (the key is not for this task)"
        raise KeyError(f"task {self.name!r} does not offer metric {metric!r}; it offers: {offered}")

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"task {self.name!r} has no metric {name!r}; it offers: {', '.join(self.metric_names())}")

    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    @property
    def primary_metric(self) -> MetricSpec:
        return self.metric(self.primary)

    @property
    def model_classes(self) -> tuple[str, ...]:
        """The auto classes of `model_class`, in the order they are tried."""
        return tuple(c.strip() for c in self.model_class.split("|"))

    def curve_metrics(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics if m.curve)


REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task's declaration; a plugin's module calls this as a built-in's does (peftlab/plugins.py)."""
    if spec.name in REGISTRY and REGISTRY[spec.name] != spec:
        known = REGISTRY[spec.name].runtime
        raise clash("task", spec.name, "peftlab (built-in)" if known.startswith("peftlab.") else known)
    REGISTRY[spec.name] = spec
    return spec


def _discover() -> None:
    """Import every module of this package once (each registers its task), then the `peftlab.tasks` plugins."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    load_entry_points("peftlab.tasks")


def task_names() -> list[str]:
    _discover()
    return sorted(REGISTRY)


def get_task_spec(name: str, metric: str | None = None) -> TaskSpec:
    """The declaration of task `name` (with `data.metric` applied, see `TaskSpec.choose`).

    KeyError (one line, naming the allowed values) for an unknown task or a metric it does not offer.
    """
    _discover()
    if name not in REGISTRY:
        raise KeyError(f"unknown task {name!r}; allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name].choose(metric)


__all__ = ["MetricChoice", "MetricSpec", "TaskSpec", "get_task_spec", "register", "task_names"]
