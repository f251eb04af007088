"""`previous_task`: sequential fine-tuning, task A's accuracy after training on the experiment's task B.

This probe also trains stage A and hands its model on as the run's model source (see
`ProbeSuite.model_source`), so it changes the treatment, not only the measurement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from peftlab.config.probes import PreviousTaskParams
from peftlab.models import file_lock
from peftlab.probes.base import (
    Probe,
    RunContext,
    classification_splits,
    device_type,
    digest,
    eval_mode,
    predict,
    register,
)

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
        self.data, self.splits = classification_splits(
            p, tokenizer, base_dir, {"train": None, "validation": None, "test": p.test_limit}
        )
        self.fingerprint = self.data.fingerprint
        self.tokenizer = tokenizer

    def checkpoint(self, base: Any, run: RunContext, train_cfg: Any, cache_dir: Path) -> Path:
        """The stage-A folder for this base model and seed: built once, by whichever run needs it first."""
        seed = self.params.seed if self.params.seed is not None else run.seed
        key = {**self.config(), "model": base.location, "seed": seed, "device": device_type(run.device)}
        key["precision"] = train_cfg.precision
        folder = cache_dir / f"previous_task-{digest(key)}"
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
        with eval_mode(model):
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
        with eval_mode(model), task_a_heads(model, run.checkpoint, run.device):
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
