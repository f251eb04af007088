"""What every probe shares: the `Probe` base class, its registry, and the forward passes probes are made of.

A probe is a plugin, one file each (lm_loss.py, linear_probe.py, previous_task.py), registered
by name like methods are. Its params and the tasks it fits are config (peftlab/config/probes.py);
its `load` runs in the experiment's process (data only), its `measure` in the run's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from peftlab.config.identity import json_digest
from peftlab.config.probes import probe_kinds


@dataclass
class RunContext:
    """Where and how a probe computes inside one run (the forked child)."""

    device: str
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    pad_id: int
    padding_side: str
    seed: int
    checkpoint: Path | None = None  # the init_from stage's folder the run started from, when there is one
    quiet: bool = False  # no progress bars or status lines (the run's own bar is off too)

    def say(self, message: str) -> None:
        """A status line for a phase that would otherwise look like a hang (stage A, the "before" pass)."""
        if not self.quiet:
            print(f"peftlab: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def base_model_view(model: Any) -> Iterator[Any]:
    """The base model under a peft model's adapter, in eval mode; the model itself when it has none.

    LoRA-family adapters (and `modules_to_save` copies) are switched off with peft's
    `disable_adapter`. Prompt and prefix tuning leave the transformers model's own modules
    untouched and only feed it virtual tokens, so their base model is that model, called
    directly: peft's `disable_adapter` cannot be used for them on sequence classifiers (it
    patches `prepare_inputs_for_generation`, which those models lack; peft 0.21).
    """
    was_training = model.training
    model.eval()
    try:
        config = getattr(model, "peft_config", {}).get(getattr(model, "active_adapter", "default"))
        if config is None:
            yield model
        elif config.is_prompt_learning:
            yield model.get_base_model()
        else:
            with model.disable_adapter():
                yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def forward_batches(model: Any, split: Any, batch_size: int, run: RunContext, **kwargs: Any) -> Iterator[Any]:
    """(example indices, batch, output) over a tokenised split, shortest first (little padding), no labels."""
    import torch

    from peftlab.tasks.classification import collate

    order = np.argsort(split.lengths, kind="stable")
    with torch.inference_mode(), run.autocast():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate(split, idx, run.pad_id, run.padding_side)
            batch.pop("labels")
            batch = {k: v.to(run.device) for k, v in batch.items()}
            yield idx, batch, model(**batch, **kwargs)


def pooled_features(model: Any, split: Any, batch_size: int, run: RunContext) -> np.ndarray:
    """Mean of the last hidden state over each example's real tokens, as float32 (n, hidden).

    Prompt tuning prepends virtual tokens to the hidden states; they are not the example's
    tokens, so only the last `length` positions (the input's own) are pooled.
    """
    features: np.ndarray | None = None
    for idx, batch, out in forward_batches(model, split, batch_size, run, output_hidden_states=True):
        mask = batch["attention_mask"]
        hidden = out.hidden_states[-1][:, -mask.shape[1] :, :].float()
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if features is None:
            features = np.empty((len(split), pooled.shape[-1]), dtype=np.float32)
        features[idx] = pooled.cpu().numpy()
    assert features is not None
    return features


def predict(model: Any, split: Any, batch_size: int, run: RunContext) -> np.ndarray:
    """Argmax class per example, through whatever head the model has now."""
    predictions = np.empty(len(split), dtype=np.int64)
    for idx, _, out in forward_batches(model, split, batch_size, run):
        predictions[idx] = out.logits.argmax(-1).cpu().numpy()
    return predictions


class Probe:
    """One forgetting probe. Subclasses set the class attributes and implement `load` and `measure`.

    `load` runs in the experiment's parent process (data and tokenising, no torch compute);
    `measure` runs in the run's process on the model as it is. `before` and `after` are the same
    measurement; `forgotten` turns the two into the signed delta (positive = forgotten).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    params_type: ClassVar[type]
    tasks: ClassVar[tuple[str, ...]]  # experiment tasks whose models the probe can measure
    score: ClassVar[str]  # the key of `measure`'s result that before/after/delta are about
    better: ClassVar[Literal["max", "min"]]

    def __init__(self, params: Any, tokenizer: Any, base_dir: Path | None) -> None:
        self.params = params
        self.fingerprint = ""
        self.load(tokenizer, base_dir)

    def load(self, tokenizer: Any, base_dir: Path | None) -> None:
        raise NotImplementedError

    def measure(self, model: Any, run: RunContext) -> dict[str, Any]:
        raise NotImplementedError

    def forgotten(self, before: float, after: float) -> float:
        return after - before if self.better == "min" else before - after

    def config(self) -> dict[str, Any]:
        return {"probe": self.name, **dataclasses.asdict(self.params), "data_fingerprint": self.fingerprint}


PROBES: dict[str, type[Probe]] = {}


def register(cls: type[Probe]) -> type[Probe]:
    if cls.name in PROBES:
        raise ValueError(f"probe {cls.name!r} is registered twice")
    kind = probe_kinds().get(cls.name)
    if kind is None or kind.params is not cls.params_type or kind.tasks != cls.tasks:
        raise ValueError(
            f"probe {cls.name!r}: its params and tasks must be declared with "
            "peftlab.config.probes.register_probe_kind (the built-ins: in peftlab/config/probes.py)"
        )
    PROBES[cls.name] = cls
    return cls


def probe_class(name: str) -> type[Probe]:
    """The measuring class of probe `name`: its declaration's `runtime` module is imported the first time."""
    if name not in PROBES:
        importlib.import_module(probe_kinds()[name].runtime)
    return PROBES[name]


def classification_splits(params: Any, tokenizer: Any, base_dir: Path | None, limits: dict[str, int | None]) -> Any:
    from peftlab.data import load_classification_data
    from peftlab.tasks.classification import tokenize_split

    data = load_classification_data(
        params.source,
        text_column=params.text_column,
        label_column=params.label_column,
        base_dir=base_dir,
        limits=limits,
    )
    splits = {
        name: tokenize_split(frame["text"].tolist(), frame["label"].to_numpy(), tokenizer, params.max_length)
        for name, frame in (("train", data.train), ("test", data.test))
    }
    return data, splits


def digest(payload: Any) -> str:
    """A probe cache key's name: the first 16 hex digits of the shared JSON digest."""
    return json_digest(payload)[:16]
