"""Forgetting probes: what fine-tuning on the target task costs the model elsewhere.

A probe is a small object with a config dataclass (validated from the `forgetting:` list of an
experiment) and one `measure(model, run)`. `before` applies it to the run's base model, with the
adapter disabled (prompt and prefix tuning are not identities at step 0), right after the method
has prepared the model; `after` applies the very same code to the tuned model. Same code path,
same data, same seed: a run whose weights did not move forgets exactly 0.

Sign convention: every probe's `delta` is the amount forgotten, **positive = worse**:
  - `lm_loss`        after − before (mean per-token loss on general text, nats)
  - `linear_probe`   before − after (accuracy of a logistic-regression probe on frozen features)
  - `previous_task`  before − after (task-A accuracy through task A's kept head)
Learning is recorded beside it: `learning.{base, after, gain, baseline}` on the target task, gain =
after − base. The base must measure something: for `classification` it is the majority-class rate
of the test split (what always answering its most frequent class scores), not the accuracy of a
random untrained head, which is noise around chance; for `sft` it is the base model's own
zero-shot score (an instruction-tuned LM answers before any training).

Heavy work is done once: probe data is loaded and tokenised in the experiment's parent process
(which never computes with torch), "before" values depend only on the base model and are cached
under `results/<experiment>/.forgetting/` (file-locked), and so is `previous_task`'s stage-A model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from peftlab.models import file_lock
from peftlab.schema import build, check, closest, fail

# The target-task score that "learning" is measured in, per experiment task: (score key, better).
LEARNING_METRIC: dict[str, tuple[str, Literal["max", "min"]]] = {
    "classification": ("accuracy", "max"),
    "sft": ("accuracy", "max"),
}
# What learning is measured from, per task (see the module docstring): a score key of the same test
# evaluation (the split's majority-class rate), or "base_model" (the base model evaluated before training).
LEARNING_BASELINE: dict[str, str] = {"classification": "majority_rate", "sft": "base_model"}


# ---------------------------------------------------------------- probe configs


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
class PreviousTaskParams:
    """Task A, fully fine-tuned for `steps` before the method under test trains on the experiment's task."""

    source: str = "builtin:bbc_news"
    text_column: str = "text"
    label_column: str = "label"
    max_length: int = 128
    steps: int = 60
    lr: float = 1e-4
    batch_size: int = 16
    test_limit: int = 300
    seed: int | None = None  # stage-A seed; null: the run's own seed (one stage-A model per seed)

    def __post_init__(self) -> None:
        check(self.max_length >= 8, "max_length", f"got {self.max_length}, must be at least 8")
        for key in ("steps", "batch_size", "test_limit"):
            check(getattr(self, key) >= 1, key, f"got {getattr(self, key)}, must be at least 1")
        check(self.lr > 0, "lr", f"got {self.lr}, must be positive")


# ---------------------------------------------------------------- the run side


@dataclass
class RunContext:
    """Where and how a probe computes inside one run (the forked child)."""

    device: str
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    pad_id: int
    padding_side: str
    seed: int
    checkpoint: Path | None = None  # previous_task's stage-A folder, when there is one
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
def _eval_mode(model: Any) -> Iterator[Any]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _forward_batches(model: Any, split: Any, batch_size: int, run: RunContext, **kwargs: Any) -> Iterator[Any]:
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
    for idx, batch, out in _forward_batches(model, split, batch_size, run, output_hidden_states=True):
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
    for idx, _, out in _forward_batches(model, split, batch_size, run):
        predictions[idx] = out.logits.argmax(-1).cpu().numpy()
    return predictions


def measure_lm_loss(model: Any, blocks: np.ndarray, batch_size: int, run: RunContext) -> dict[str, float]:
    """Mean per-token next-token loss (nats) and perplexity over full token blocks (no padding).

    Computed from the logits, not the model's own loss: prompt tuning prepends virtual positions,
    so the logits of the block's own tokens are the last `block_size` ones.
    """
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.inference_mode(), run.autocast():
        for start in range(0, len(blocks), batch_size):
            ids = torch.as_tensor(blocks[start : start + batch_size], dtype=torch.long, device=run.device)
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -ids.shape[1] :, :]
            loss = F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
            )
            total += float(loss)
            count += ids[:, 1:].numel()
    mean = total / max(count, 1)
    return {"loss": mean, "perplexity": math.exp(mean), "tokens": count}


# ---------------------------------------------------------------- probes


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
    PROBES[cls.name] = cls
    return cls


def _classification_splits(params: Any, tokenizer: Any, base_dir: Path | None, limits: dict[str, int | None]) -> Any:
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


@register
class LMLossProbe(Probe):
    """Language-modelling loss on held-out general text (peft's method_comparison measure), causal LMs."""

    name = "lm_loss"
    summary = "mean per-token loss on held-out general text (causal LMs); delta = after − before"
    params_type = LMLossParams
    tasks = ("sft",)
    score = "loss"
    better = "min"

    def load(self, tokenizer: Any, base_dir: Path | None) -> None:
        from peftlab.data import load_text_data

        p: LMLossParams = self.params
        data = load_text_data(p.source, text_column=p.text_column, base_dir=base_dir)
        self.fingerprint = data.fingerprint
        self.blocks = token_blocks(data.split(p.split), tokenizer, p.block_size, p.max_blocks)

    def measure(self, model: Any, run: RunContext) -> dict[str, Any]:
        with _eval_mode(model):
            return measure_lm_loss(model, self.blocks, self.params.batch_size, run)


def token_blocks(texts: list[str], tokenizer: Any, block_size: int, max_blocks: int) -> np.ndarray:
    """Documents joined by EOS and cut into `max_blocks` full blocks of `block_size` tokens (int64)."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    for doc in ids:
        stream.extend(doc + eos)
        if len(stream) >= block_size * max_blocks:
            break
    n = min(len(stream) // block_size, max_blocks)
    if n == 0:
        from peftlab.errors import UserError

        raise UserError(f"lm_loss: the text gives {len(stream)} tokens, fewer than one block of {block_size}")
    return np.asarray(stream[: n * block_size], dtype=np.int64).reshape(n, block_size)


@register
class LinearProbe(Probe):
    """Representation forgetting: a logistic regression on frozen pooled features of a second task."""

    name = "linear_probe"
    summary = "logistic-regression probe on frozen mean-pooled features of a second task; delta = before − after"
    params_type = LinearProbeParams
    tasks = ("classification",)
    score = "accuracy"
    better = "max"

    def load(self, tokenizer: Any, base_dir: Path | None) -> None:
        p: LinearProbeParams = self.params
        data, self.splits = _classification_splits(
            p, tokenizer, base_dir, {"train": p.train_limit, "validation": None, "test": p.test_limit}
        )
        self.fingerprint = data.fingerprint

    def measure(self, model: Any, run: RunContext) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        p: LinearProbeParams = self.params
        with _eval_mode(model):
            train = pooled_features(model, self.splits["train"], p.batch_size, run)
            test = pooled_features(model, self.splits["test"], p.batch_size, run)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=p.C, max_iter=2000, random_state=p.seed))
        clf.fit(train, self.splits["train"].labels)
        accuracy = float((clf.predict(test) == self.splits["test"].labels).mean())
        return {"accuracy": accuracy, "train": len(train), "test": len(test)}


HEAD_FILE = "task_a_head.safetensors"
META_FILE = "task_a.json"


@register
class PreviousTaskProbe(Probe):
    """Sequential fine-tuning: task A (full FT, cached) → the method under test on the experiment's task B.

    The stage-A model becomes the run's model source, so every method (QLoRA included, which
    quantises it on load) starts from the same task-A checkpoint; its backbone is saved like
    any HF encoder and task A's head beside it. The score is task-A test accuracy through that
    kept head on the run's backbone: before (adapter disabled) and after training on B.
    Sequence-classification models only (the head is the `classifier`/`score` module).
    """

    name = "previous_task"
    summary = "task-A accuracy through task A's kept head after sequential fine-tuning on B; delta = before − after"
    params_type = PreviousTaskParams
    tasks = ("classification",)
    score = "accuracy"
    better = "max"

    def load(self, tokenizer: Any, base_dir: Path | None) -> None:
        p: PreviousTaskParams = self.params
        self.data, self.splits = _classification_splits(
            p, tokenizer, base_dir, {"train": None, "validation": None, "test": p.test_limit}
        )
        self.fingerprint = self.data.fingerprint
        self.tokenizer = tokenizer

    def checkpoint(self, base: Any, run: RunContext, train_cfg: Any, cache_dir: Path) -> Path:
        """The stage-A folder for this base model and seed: built once, by whichever run needs it first."""
        seed = self.params.seed if self.params.seed is not None else run.seed
        key = {**self.config(), "model": base.location, "seed": seed, "device": _device_type(run.device)}
        key["precision"] = train_cfg.precision
        folder = cache_dir / f"previous_task-{_digest(key)}"
        with file_lock(folder.with_name(folder.name + ".lock")):
            if not (folder / META_FILE).is_file():
                tmp = folder.with_name(folder.name + ".partial")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                meta = self._train_task_a(base, run, train_cfg, seed, tmp)
                (tmp / META_FILE).write_text(json.dumps({**meta, "key": key}, indent=2) + "\n")
                shutil.rmtree(folder, ignore_errors=True)
                tmp.rename(folder)
        return folder

    def _train_task_a(self, base: Any, run: RunContext, train_cfg: Any, seed: int, out: Path) -> dict[str, Any]:
        from safetensors.torch import save_file
        from transformers import set_seed

        from peftlab.models import head_modules, load_classifier
        from peftlab.tasks.classification import collate, train_batches
        from peftlab.train import step_bar, train

        p: PreviousTaskParams = self.params
        started = time.perf_counter()
        set_seed(seed)
        model = load_classifier(base, self.data.label_names, pad_token_id=run.pad_id).to(run.device)
        for param in model.parameters():
            param.requires_grad_(True)
        cfg = dataclasses.replace(
            train_cfg, steps=p.steps, batch_size=p.batch_size, grad_accum=1, gradient_checkpointing=False, compile=False
        )
        split = self.splits["train"]
        batches = train_batches(split, p.batch_size, p.steps, seed, cfg.length_grouping)
        run.say(f"previous_task: training stage A once ({p.steps} steps on {p.source}); later runs reuse it")
        with step_bar(p.steps, "stage A", run.quiet) as bar:
            outcome = train(
                model, batches, cfg, p.lr, run.device, collate=lambda idx: collate(split, idx, run.pad_id), progress=bar
            )
        heads = head_modules(model)
        if not heads:
            raise RuntimeError("previous_task: the model has no classifier/score head to keep for task A")
        with _eval_mode(model):
            accuracy = self._accuracy(model, run)
        getattr(model, model.base_model_prefix).save_pretrained(out, safe_serialization=True)
        state = {
            f"{h}.{k}": v.detach().contiguous().cpu() for h in heads for k, v in getattr(model, h).state_dict().items()
        }
        save_file(state, str(out / HEAD_FILE))
        self.tokenizer.save_pretrained(out)
        return {
            "label_names": list(self.data.label_names),
            "heads": list(heads),
            "accuracy": accuracy,
            "steps": p.steps,
            "final_train_loss": outcome.final_train_loss,
            "build_s": time.perf_counter() - started,
        }

    def _accuracy(self, model: Any, run: RunContext) -> float:
        split = self.splits["test"]
        return float((predict(model, split, 64, run) == split.labels).mean())

    def measure(self, model: Any, run: RunContext) -> dict[str, Any]:
        if run.checkpoint is None:
            raise RuntimeError("previous_task: the run has no stage-A checkpoint")
        with _eval_mode(model), task_a_heads(model, run.checkpoint, run.device):
            return {"accuracy": self._accuracy(model, run), "test": len(self.splits["test"])}


@contextlib.contextmanager
def task_a_heads(model: Any, checkpoint: Path, device: str) -> Iterator[None]:
    """Put task A's saved head(s) in place of the model's own (peft `modules_to_save` copies too), then restore.

    The heads are rebuilt on the meta device from the checkpoint's config with task A's label
    count (no weights allocated), then filled from the saved state.
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    meta = json.loads((checkpoint / META_FILE).read_text())
    state = load_file(str(checkpoint / HEAD_FILE))
    config = AutoConfig.from_pretrained(checkpoint, num_labels=len(meta["label_names"]))
    with torch.device("meta"):
        shell = AutoModelForSequenceClassification.from_config(config)
    restore: list[tuple[Any, str, Any]] = []
    try:
        for name in meta["heads"]:
            head = getattr(shell, name).to_empty(device=device)
            head.load_state_dict({k.removeprefix(f"{name}."): v for k, v in state.items() if k.startswith(f"{name}.")})
            head.eval()
            places = [m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] == name]
            if not places:
                raise RuntimeError(f"previous_task: no {name!r} module in the tuned model to swap task A's head into")
            for place in places:
                wrapped = getattr(place, "modules_to_save", None)  # peft ModulesToSaveWrapper
                if wrapped is not None:
                    for adapter in list(wrapped.keys()):
                        restore.append((wrapped, adapter, wrapped[adapter]))
                        wrapped[adapter] = head
                    restore.append((place, "original_module", place.original_module))
                    place.original_module = head
                    continue
                parent = _parent_of(model, place)
                if parent is not None:
                    restore.append((parent, name, place))
                    setattr(parent, name, head)
        yield
    finally:
        for owner, key, original in reversed(restore):
            if isinstance(key, str) and hasattr(owner, "keys") and key in owner:
                owner[key] = original
            else:
                setattr(owner, key, original)


def _parent_of(model: Any, child: Any) -> Any:
    for module in model.modules():
        for sub in module.children():
            if sub is child:
                return module
    return None


# ---------------------------------------------------------------- the experiment side


@dataclass
class ProbeEntry:
    """One item of the experiment's `forgetting:` list."""

    probe: str
    params: Any

    def as_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, **dataclasses.asdict(self.params)}


def probe_names() -> list[str]:
    return sorted(PROBES)


def parse_probes(raw: Any, origin: str, task: str) -> list[ProbeEntry]:
    """The `forgetting:` list, validated: known probe names, their keys, and a probe that fits the task."""
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
        if name not in PROBES:
            fail(
                origin,
                f"{path}.probe",
                f"unknown probe {name!r}; allowed: {', '.join(probe_names())}{closest(str(name), probe_names())}",
            )
        cls = PROBES[name]
        if task not in cls.tasks:
            fitting = [n for n in probe_names() if task in PROBES[n].tasks]
            fail(
                origin,
                f"{path}.probe",
                f"probe {name!r} measures {' or '.join(cls.tasks)} models, this experiment's task is {task!r}; "
                f"probes for {task}: {', '.join(fitting) or '(none)'}",
            )
        params = build(cls.params_type, {k: v for k, v in item.items() if k != "probe"}, origin, path)
        if any(e.probe == name for e in entries):
            fail(origin, path, f"probe {name!r} is listed twice; records keep one result per probe")
        entries.append(ProbeEntry(name, params))
    return entries


class Forgetting:
    """An experiment's probes, loaded once in the parent; `for_run` makes the per-run measurer.

    Building this imports no torch computation: it reads and tokenises the probe data only.
    """

    def __init__(self, experiment: Any, tokenizer: Any) -> None:
        self.experiment = experiment
        self.tokenizer = tokenizer
        dirs = experiment.search_dirs()
        self.probes = [
            PROBES[e.probe](e.params, tokenizer, _base_dir(e.params.source, dirs)) for e in experiment.forgetting
        ]
        self.cache_dir = experiment.results_dir() / ".forgetting"
        self.learning_metric = LEARNING_METRIC.get(experiment.task)
        self.learning_baseline = LEARNING_BASELINE.get(experiment.task, "base_model")

    def for_run(self, seed: int, device: str, *, quiet: bool = False) -> RunForgetting:
        from peftlab.train import autocast_factory

        run = RunContext(
            device=device,
            autocast=autocast_factory(device, self.experiment.train.precision),
            pad_id=int(self.tokenizer.pad_token_id),
            padding_side=getattr(self.tokenizer, "padding_side", "right"),
            seed=seed,
            quiet=quiet,
        )
        return RunForgetting(self, run)


class RunForgetting:
    """One run's forgetting and learning measurements: `model_source`, then `before`, then `after`."""

    def __init__(self, suite: Forgetting, run: RunContext) -> None:
        self.suite, self.run = suite, run
        self.values: dict[str, dict[str, Any]] = {}
        self.learning: dict[str, Any] = {}
        self.base_key: dict[str, Any] = {}
        self.seconds = 0.0

    def model_source(self, base: Any) -> Any:
        """The run's model source: previous_task's stage-A model when that probe is on, else `base`."""
        from peftlab.models import ModelSource

        for probe in self.suite.probes:
            if isinstance(probe, PreviousTaskProbe):
                started = time.perf_counter()
                folder = probe.checkpoint(base, self.run, self.suite.experiment.train, self.suite.cache_dir)
                self.seconds += time.perf_counter() - started
                self.run.checkpoint = folder
                return ModelSource(f"{base.spec} → previous_task stage A", "local", str(folder))
        return base

    def before(self, model: Any, load_kwargs: dict[str, Any], evaluate_target: Callable[[Any], dict]) -> None:
        """Probe scores and the target-task score of the base model (adapter disabled), before any step.

        Each depends only on the base weights, so it is cached by a key of everything that
        shapes it; a run that finds it computed pays a file read.
        """
        started = time.perf_counter()
        exp = self.suite.experiment
        self.base_key = {
            "model": str(self.run.checkpoint) if self.run.checkpoint else exp.model,
            "load": json.loads(json.dumps(load_kwargs, sort_keys=True, default=_describe)),
            "device": _device_type(self.run.device),
            "precision": exp.train.precision,
        }
        with base_model_view(model) as base:
            if self.suite.learning_metric is not None and self.suite.learning_baseline == "base_model":
                key = {
                    **self.base_key,
                    "learning": self.suite.learning_metric[0],
                    "seed": self.run.seed,  # the fresh head is drawn from the run's seed
                    "data": dataclasses.asdict(exp.data),
                }
                what = f"target-task {key['learning']}"
                self.learning = self._cached(key, lambda: _scores(evaluate_target(base)), what)
            for probe in self.suite.probes:
                t0 = time.perf_counter()
                key = {**self.base_key, **probe.config()}
                value = self._cached(key, lambda p=probe: p.measure(base, self.run), f"probe {probe.name}")
                self.values[probe.name] = {"value": value, "before_s": time.perf_counter() - t0}
        self.seconds += time.perf_counter() - started

    def _cached(self, key: dict[str, Any], compute: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
        from peftlab.results import write_json_atomic

        path = self.suite.cache_dir / f"before-{_digest(key)}.json"
        with file_lock(path.with_suffix(".lock")):
            if path.is_file():
                return json.loads(path.read_text())["value"]
            self.run.say(f"measuring the base model once ({what}, before training); later runs read it from the cache")
            value = compute()
            write_json_atomic(path, {"key": key, "value": value})
            return value

    def after(self, model: Any, target_scores: dict[str, Any], record: dict[str, Any]) -> None:
        """Measure the tuned model, and write `learning` and `forgetting` (with per-probe cost) into the record."""
        started = time.perf_counter()
        forgetting: dict[str, Any] = {}
        for probe in self.suite.probes:
            t0 = time.perf_counter()
            after = probe.measure(model, self.run)
            before = self.values[probe.name]["value"]
            forgetting[probe.name] = {
                "before": before[probe.score],
                "after": after[probe.score],
                "delta": probe.forgotten(before[probe.score], after[probe.score]),
                "metric": probe.score,
                "detail": {"before": before, "after": after},
                "before_s": self.values[probe.name]["before_s"],
                "after_s": time.perf_counter() - t0,
            }
        if self.run.checkpoint is not None and "previous_task" in forgetting:
            stage_a = json.loads((self.run.checkpoint / META_FILE).read_text())
            forgetting["previous_task"]["stage_a"] = {
                "checkpoint": str(self.run.checkpoint),
                **{k: stage_a[k] for k in ("accuracy", "steps", "final_train_loss", "build_s")},
            }
        self.seconds += time.perf_counter() - started
        record["forgetting"] = forgetting
        baseline = self.suite.learning_baseline
        if self.suite.learning_metric is not None and (self.learning or baseline != "base_model"):
            key, better = self.suite.learning_metric
            base = self.learning.get(key) if baseline == "base_model" else target_scores.get(baseline)
            after = target_scores.get(key)
            gain = None if base is None or after is None else (after - base if better == "max" else base - after)
            record["learning"] = {"metric": key, "base": base, "after": after, "gain": gain, "baseline": baseline}
        record["time"]["forgetting_s"] = self.seconds


def _scores(scores: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in scores.items() if isinstance(v, (int, float)) and k not in ("samples_per_s", "tokens_per_s")
    }


def _base_dir(source: str, search_dirs: list[Path]) -> Path | None:
    """The folder a relative probe source is found in, like the experiment's own data source."""
    if source.startswith("builtin:"):
        return None
    return next((d for d in search_dirs if (d / source).exists()), None)


def _describe(value: Any) -> Any:
    """JSON stand-in for load kwargs (a quantisation config, a dtype) in cache keys."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else str(value)


def _device_type(device: str) -> str:
    return device.split(":", 1)[0]


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
