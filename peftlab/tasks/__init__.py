"""Tasks: what a run's data, model class, batches and evaluation are, behind one small interface.

The runner and the one training loop are task-agnostic: a task turns the experiment's data
into tokenised splits, loads the right model class (a classifier with a fresh head, or a causal
LM), tells the methods which modules are the task head (trained by every method) and which must
never be quantised, pads batches whose forward pass returns `.loss`, and evaluates a split into
the scores its declaration names (peftlab/task_specs: the metrics, the primary one and its
direction), with the per-example outputs under `examples`.

A task is registered by name: its torch-free declaration in `peftlab/task_specs/<name>.py`
names the module here whose `TASK` runs it. Nothing in peftlab branches on task names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class EvalContext:
    """What evaluation needs besides the model and the split."""

    batch_size: int
    device: str
    pad_id: int
    autocast: Any  # () -> context manager
    padding_side: str
    tokenizer: Any
    label_names: tuple[str, ...] = ()  # answers that are labels get macro-F1 (task sft)
    max_new_tokens: int | None = None  # generation length (task sft); None: from the train answers
    metric: str | None = None  # `data.metric` (task sft): exact_match, bleu, rouge; None: the task's default
    answer_extractor: str | None = None  # `data.answer_extractor` (task sft): what exact match compares
    rl: Any = None  # the `rl:` section (task grpo): the reward and the answers' length
    reference: Any = None  # the base model, for a task that measures divergence from it (task grpo's KL)


class Task(Protocol):
    name: str
    peft_task_type: str  # peft TaskType name handed to the methods
    latency_examples: int  # batch-size-1 forwards timed per run (the first 3 are warm-up)

    def prepare_data(self, experiment: Any, tokenizer: Any, base_dir: Path | None) -> tuple[Any, dict[str, Any]]:
        """(data with source/fingerprint/sizes/label_names, {split name: tokenised split})."""
        ...

    def load_model(self, source: Any, data: Any, load_kwargs: dict[str, Any], pad_token_id: int | None) -> Any: ...

    def head_modules(self, model: Any) -> tuple[str, ...]:
        """Freshly initialised modules that every method trains (peft `modules_to_save`)."""
        ...

    def unquantized_modules(self, source: Any, data: Any) -> tuple[str, ...]:
        """Modules a 4-bit load must leave in full precision."""
        ...

    def collate(self, split: Any, indices: Any, pad_id: int, padding_side: str) -> dict[str, Any]: ...

    def evaluate(self, model: Any, split: Any, ctx: EvalContext) -> dict[str, Any]:
        """The declared metrics (peftlab/task_specs), plus `examples`: the per-example outputs, as columns."""
        ...

    def preload(self) -> None:
        """Load what evaluation needs from disk (metric modules) once, before runs are forked."""
        ...


def model_task_type(task: Task, model: Any) -> str:
    """The peft task type for this loaded model: the task's `model_task_type(model)` where it has one.

    A task whose model class depends on the model (multiple choice: an encoder's head or a causal
    LM) answers per model; every other task has one `peft_task_type`.
    """
    per_model = getattr(task, "model_task_type", None)
    return per_model(model) if per_model is not None else task.peft_task_type


def get_task(name: str) -> Task:
    """The runtime of task `name`, found through its declaration (peftlab/task_specs)."""
    from peftlab.task_specs import get_task_spec

    return importlib.import_module(get_task_spec(name).runtime).TASK
