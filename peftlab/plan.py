"""The plan: every run an experiment implies (methods × grid × seeds), named by what it computes.

A run's id is derived from its resolved configuration, so re-running an unchanged experiment
finds its finished records and skips them, while any change to what a run computes gives it a
new id instead of silently mixing old and new results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from peftlab.config import Experiment, MethodEntry


@dataclass(frozen=True)
class RunSpec:
    experiment: str
    label: str  # variant label: entry label plus grid values, e.g. "lora" or "lora[r=4]"
    method: str
    seed: int
    lr: float
    params: dict[str, Any]
    config_hash: str  # hash of everything the run computes except the seed
    run_id: str

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items() if v is not None)
        return f"{self.label:<24} seed={self.seed:<3} lr={self.lr:<9.3g} {shown}"


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def with_alpha_ratio(params: dict[str, Any], ratio: float | None) -> dict[str, Any]:
    """alpha = ratio × r: the run's params hold the alpha that peft sees, so hashes stay comparable."""
    return params if ratio is None else {**params, "alpha": float(ratio * params["r"])}


def apply_choices(entry: MethodEntry, choices: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """An entry's lr and params with chosen values (a grid point or a search trial) applied.

    `lr` and `alpha_ratio` are not method params: the first sets the learning rate, the second
    turns into alpha = ratio × r.
    """
    params = dataclasses.asdict(entry.params)
    lr, ratio = entry.lr, entry.alpha_ratio
    for key, value in choices.items():
        if key == "lr":
            lr = value
        elif key == "alpha_ratio":
            ratio = value
        else:
            params[key] = value
    return lr, with_alpha_ratio(params, ratio)


def _variants(entry: MethodEntry) -> list[tuple[str, float, dict[str, Any]]]:
    if not entry.grid:
        return [(entry.label, *apply_choices(entry, {}))]
    keys = list(entry.grid)
    out = []
    for values in itertools.product(*(entry.grid[k] for k in keys)):
        tag = ",".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
        out.append((f"{entry.label}[{tag}]", *apply_choices(entry, dict(zip(keys, values, strict=True)))))
    return out


# data keys added after records existed: left out of the hash while unset, so old run ids stay valid
_OPTIONAL_DATA_KEYS = ("instruction", "max_new_tokens", "system")


def computed_config(experiment: Experiment) -> dict[str, Any]:
    """The part of an experiment that changes what a run computes (not its name or output folder).

    Forgetting probes are part of it only when there are any, so adding the feature left the ids
    of existing runs unchanged; `previous_task` changes the model a run starts from. The device
    is the resolved type (`cpu`/`cuda`), never `auto`: CPU and GPU runs are different results.
    """
    from peftlab.environment import device_type

    data = {
        k: v for k, v in dataclasses.asdict(experiment.data).items() if not (k in _OPTIONAL_DATA_KEYS and v is None)
    }
    config = {
        "model": experiment.model,
        "task": experiment.task,
        "data": data,
        "train": {**dataclasses.asdict(experiment.train), "device": device_type(experiment.train.device)},
    }
    if experiment.forgetting:
        config["forgetting"] = [p.as_dict() for p in experiment.forgetting]
    return config


def make_plan(experiment: Experiment, only: list[str] | None = None) -> list[RunSpec]:
    shared = computed_config(experiment)
    runs = []
    for entry in experiment.methods:
        if only and entry.label not in only and entry.method not in only:
            continue
        for label, lr, params in _variants(entry):
            config_hash = _hash({**shared, "method": entry.method, "lr": lr, "params": params})
            slug = label.replace("[", "-").replace("]", "").replace(",", "-").replace("=", "")
            for seed in experiment.seeds:
                runs.append(
                    RunSpec(
                        experiment=experiment.name,
                        label=label,
                        method=entry.method,
                        seed=seed,
                        lr=lr,
                        params=params,
                        config_hash=config_hash[:16],
                        run_id=f"{slug}-s{seed}-{config_hash[:8]}",
                    )
                )
    return runs
