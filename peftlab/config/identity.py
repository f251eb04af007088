"""What names a run: the part of an experiment that changes what a run computes.

Run ids and study names are hashes of this, so it must not change for an unchanged experiment:
keys added later are left out while unset, and old run ids stay valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peftlab.config.experiment import Experiment


def json_digest(payload: Any) -> str:
    """The sha256 (hex) of `payload` as canonical JSON (sorted keys, anything else as its text): the one
    hash behind run ids, config hashes, study and queue names and the probes' cache keys."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# the metadata of a field added after records existed: left out of the hash while unset (None), so the
# run ids of experiments that do not set it stay valid (`identity_dict`)
ADDED_LATER = {"identity": "left out while unset"}


def identity_dict(section: Any) -> dict[str, Any]:
    """A config section as its identity hashes it: its fields, those added later left out while unset."""
    fields = {f.name: f for f in dataclasses.fields(section)}
    return {
        k: v for k, v in dataclasses.asdict(section).items() if not (fields[k].metadata == ADDED_LATER and v is None)
    }


def computed_config(experiment: Experiment) -> dict[str, Any]:
    """The part of an experiment that changes what a run computes (not its name or output folder).

    Forgetting probes are part of it only when there are any, so adding the feature left the ids
    of existing runs unchanged. The `init_from:` stage changes the model a run starts from; when
    `previous_task` measures it, the stage's settings are already that probe's params, so they
    are named there only, exactly as the old spelling (settings on the probe) named them, and
    both spellings give the same ids. A stage nobody measures is named under `init_from`. The device
    is the resolved type (`cpu`/`cuda`), never `auto`: CPU and GPU runs are different results.
    """
    from peftlab.records.environment import device_type

    train = {**identity_dict(experiment.train), "device": device_type(experiment.train.device)}
    data = identity_dict(experiment.data)
    config = {
        "model": experiment.model,
        "task": experiment.task,
        "data": data,
        "train": train,
    }
    if experiment.rl is not None:  # task grpo only: other experiments' ids stay as they were
        config["rl"] = dataclasses.asdict(experiment.rl)
    if experiment.forgetting:
        config["forgetting"] = [p.as_dict() for p in experiment.forgetting]
    measured = any(p.probe == "previous_task" for p in experiment.forgetting)
    if experiment.init_from is not None and not measured:
        config["init_from"] = dataclasses.asdict(experiment.init_from)
    return config
