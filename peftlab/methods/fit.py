"""Does each planned method fit the experiment's model? Checked once, before any run starts.

A method that cannot adapt the model (target layers the model does not have, prefix tuning on
a model that takes no key/value cache) would otherwise fail inside a run, after the model was
loaded and possibly after other runs trained. Each method may register a `check_model` hook;
here every planned variant's hook is called on a skeleton of the model built from its config
on the meta device: module names, classes and shapes, no weights and no computation (the
experiment process must not compute with torch before it forks its runs).
"""

from __future__ import annotations

from typing import Any

from peftlab.errors import ConfigError


class Unfit(ValueError):
    """A method's hyperparameter that does not fit this model: `key` names it, the message says why."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(why)
        self.key = key


def meta_skeleton(location: str, task: str) -> Any:
    """The task's model class built from the config on the meta device.

    A task that declares several classes (`A | B`) is built with the first whose mapping has the
    model's config, as its runtime loads it.
    """
    import torch
    import transformers
    from transformers import AutoConfig

    from peftlab.task_specs import get_task_spec

    config = AutoConfig.from_pretrained(location)
    classes = [getattr(transformers, name) for name in get_task_spec(task).model_classes]  # as the task declares
    auto = next((c for c in classes if type(config) in c._model_mapping), classes[-1])
    with torch.device("meta"):
        return auto.from_config(config)


def _planned(experiment: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, label, params) of every value the experiment can give a method's key.

    Each grid or search-space choice is checked on its own over the entry's params: whether a
    method fits a model depends on one key at a time (the target layers, the method itself), so
    the full product is not needed. Read from the config alone: methods never reach into the
    planners (import contract).
    """
    import dataclasses

    out = []
    for entry in experiment.methods:
        params = dataclasses.asdict(entry.params)
        out.append((entry.method, entry.label, params))
        choices: dict[str, list[Any]] = {k: list(v) for k, v in (getattr(entry, "grid", None) or {}).items()}
        if experiment.search is not None:
            for key, dimension in experiment.search.space.get(entry.label, {}).items():
                if isinstance(dimension, dict):
                    choices.setdefault(key, []).extend(dimension.get("choices", []))
        for key, values in choices.items():
            out.extend((entry.method, entry.label, {**params, key: value}) for value in values if key in params)
    return out


def check_experiment_fits_model(experiment: Any, location: str) -> None:
    """Raise a one-line ConfigError naming the file, the method's key and why, if a planned run cannot fit."""
    from peftlab.method_specs import get_method_spec
    from peftlab.methods.registry import get_method

    origin = str(experiment.source_path) if experiment.source_path else experiment.name
    for entry in experiment.methods:
        tasks = get_method_spec(entry.method).tasks
        if tasks is not None and experiment.task not in tasks:
            raise ConfigError(
                f"{origin}: methods.{entry.label}.method: {entry.method!r} does not support task "
                f"{experiment.task!r} (supported: {', '.join(tasks)})"
            )
    planned = [p for p in _planned(experiment) if get_method(p[0]).check_model is not None]
    if not planned:
        return
    model = meta_skeleton(location, experiment.task)
    seen: set[str] = set()
    for method, label, params in planned:
        if repr((method, params)) in seen:
            continue
        seen.add(repr((method, params)))
        try:
            get_method(method).check_model(params, model)
        except Unfit as err:
            kind = getattr(model.config, "model_type", "?")
            raise ConfigError(f"{origin}: methods.{label}.{err.key}: {err} ({experiment.model}, {kind})") from None
