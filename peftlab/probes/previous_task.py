"""`previous_task`: sequential fine-tuning, task A's accuracy after training on the experiment's task B.

Measure-only: the experiment's `init_from:` stage (peftlab/runtime/stages.py) trains task A and hands its
model on as every run's source; this probe scores task A through the head that stage kept, on
the run's backbone, before (adapter disabled) and after training on B. Its params are the
stage's settings (the same task A). The stage's checkpoint format is defined here (`HEAD_FILE`,
`META_FILE`), next to the one reader that swaps the kept head in.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from peftlab.config.stages import InitFromConfig
from peftlab.probes.base import Probe, RunContext, classification_splits, eval_mode, predict, register

HEAD_FILE = "task_a_head.safetensors"

META_FILE = "task_a.json"


@register
class PreviousTaskProbe(Probe):
    """Task-A test accuracy through the init_from stage's kept head on the run's backbone; before − after.

    Sequence-classification models only (the head is the `classifier`/`score` module). The data is
    loaded exactly as the stage loads it (same limits, same fingerprint), for the test split.
    """

    name = "previous_task"
    summary = "task-A accuracy through task A's kept head after sequential fine-tuning on B; delta = before − after"
    params_type = InitFromConfig
    tasks = ("classification",)
    score = "accuracy"
    better = "max"

    def load(self, tokenizer: Any, base_dir: Path | None) -> None:
        p: InitFromConfig = self.params
        self.data, self.splits = classification_splits(
            p, tokenizer, base_dir, {"train": None, "validation": None, "test": p.test_limit}
        )
        self.fingerprint = self.data.fingerprint

    def _accuracy(self, model: Any, run: RunContext) -> float:
        split = self.splits["test"]
        return float((predict(model, split, 64, run) == split.labels).mean())

    def measure(self, model: Any, run: RunContext) -> dict[str, Any]:
        if run.checkpoint is None:
            raise RuntimeError("previous_task: the run has no init_from stage checkpoint to measure")
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
