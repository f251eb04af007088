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
from typing import Any, Literal

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
    # how the reports name it: (Markdown column name, LaTeX header, LaTeX macro suffix); None: the name
    display: tuple[str, str, str] | None = None
    words: str | None = None  # how a sentence or an axis names it ("accuracy"); None: display's Markdown name

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.direction == "max" else "minimize"


@dataclass(frozen=True)
class MetricChoice:
    """One value of `data.metric`: the declared metric it makes primary and the per-example outputs it keeps."""

    name: str  # what `data.metric` says
    primary: str  # a declared metric
    per_example: tuple[str, ...]
    # what learning is measured from under this choice (a score key of the same evaluation, in this
    # choice's metric); None: the task's `learning_baseline`
    learning_baseline: str | None = None


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
                return dataclasses.replace(
                    self,
                    primary=choice.primary,
                    per_example=choice.per_example,
                    learning_baseline=choice.learning_baseline or self.learning_baseline,
                )
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

    def chosen(self, choice: str | None = None) -> TaskChoice:
        """The `TaskChoice` of this declaration under `data.metric` = `choice`."""
        spec = self.choose(choice)
        primary = spec.primary_metric
        return TaskChoice(
            name=spec.name, metric=primary.name, direction=primary.direction, statistic=primary.statistic, choice=choice
        )


@dataclass(frozen=True)
class TaskChoice:
    """The task a run is scored by and the metric it is scored in: resolved once, from config, then carried.

    `peftlab.config.Experiment.task_choice` resolves it (task + `data.metric`), the planners put it in
    every run spec, the recipe writes it as the record's `task` block, and every reader (the loop's
    progress line, search objectives, the learning probe, the tables, figures, explorer and paper)
    takes the task, the metric, its direction and its resampling statistic from it, instead of
    working them out again. Small, frozen and torch-free: it pickles into a worker and prints in a record.
    """

    name: str  # a registered task (or an unknown one read from an old record)
    metric: str  # the primary metric: `metrics.<split>.<metric>` of the record
    direction: Direction  # which way is better
    statistic: str | None = None  # how the statistics engine resamples it (MetricSpec.statistic)
    choice: str | None = None  # `data.metric` as the experiment wrote it (None: the task's default)

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max"

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.higher_is_better else "minimize"

    @property
    def spec(self) -> TaskSpec:
        """The task's full declaration under this choice (its other metrics, outputs, learning baseline)."""
        return get_task_spec(self.name, self.choice)

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` is strictly better than `b` in this metric's direction."""
        return a > b if self.higher_is_better else a < b

    @classmethod
    def from_block(cls, block: Any) -> TaskChoice | None:
        """The choice a record's `task` block holds (a mapping or a `TaskInfo`); None where it names no metric."""
        get = block.get if isinstance(block, dict) else lambda key: getattr(block, key, None)
        if not block or not get("name") or not get("primary") or get("direction") not in ("max", "min"):
            return None
        return cls(get("name"), get("primary"), get("direction"), get("statistic"), get("choice"))

    def record_block(self) -> dict[str, Any]:
        """The record's `task` block (peftlab/records/record.py `TaskInfo`)."""
        return {
            "name": self.name,
            "primary": self.metric,
            "direction": self.direction,
            "statistic": self.statistic,
            "choice": self.choice,
        }


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


def declared_metric(name: str) -> MetricSpec | None:
    """The first declaration of a metric called `name` over every task (tasks in name order); None: none declares it.

    What the reports name a metric by (its `display`, `words`) where they hold a metric name only.
    """
    for task in task_names():
        for metric in REGISTRY[task].metrics:
            if metric.name == name:
                return metric
    return None


def resolve_task(name: str, metric: str | None = None) -> TaskChoice:
    """The one place a task name and `data.metric` become what a run is scored by (see `TaskChoice`).

    KeyError (one line) as `get_task_spec`; config checks both keys before it calls this.
    """
    return get_task_spec(name).chosen(metric)


__all__ = [
    "MetricChoice",
    "MetricSpec",
    "TaskChoice",
    "TaskSpec",
    "declared_metric",
    "get_task_spec",
    "register",
    "resolve_task",
    "task_names",
]
