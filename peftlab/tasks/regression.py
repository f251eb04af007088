"""Regression (STS-B's shape): single texts or sentence pairs to one number, MSE loss, correlations.

The model is the sequence classifier with one output (`num_labels=1`, `problem_type="regression"`),
so transformers computes the MSE loss itself and every method adapts it exactly as it adapts a
classifier (the same fresh head, trained by every method). Targets are floats as given; the
data loader refuses a label that is not a number (one line). Scores: Pearson and Spearman
(scipy) and the MSE of the predictions; the predictions file holds each example's prediction
and gold value, what a statistics engine resamples.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from peftlab.task_specs import get_task_spec
from peftlab.tasks.classification import TokenizedSplit, collate, load_data, tokenize_frames

TARGET = "score"  # the name of the head's one output (config.id2label)


def regression_scores(predictions: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman and MSE; a correlation is NaN where either side is constant (nothing to correlate)."""
    from scipy import stats

    predictions, gold = np.asarray(predictions, dtype=float), np.asarray(gold, dtype=float)
    nan = float("nan")
    if len(gold) == 0:
        return {"pearson": nan, "spearman": nan, "mse": nan}
    mse = float(np.mean((predictions - gold) ** 2))
    if len(gold) < 2 or np.ptp(predictions) == 0 or np.ptp(gold) == 0:
        return {"pearson": nan, "spearman": nan, "mse": mse}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-constant input: scipy warns and still answers
        pearson = float(stats.pearsonr(predictions, gold)[0])
        spearman = float(stats.spearmanr(predictions, gold)[0])
    return {"pearson": pearson, "spearman": spearman, "mse": mse}


def evaluate_split(model: Any, split: TokenizedSplit, ctx: Any) -> dict[str, Any]:
    """The declared metrics, the mean loss and the per-example (id, gold, prediction) columns."""
    import torch

    was_training = model.training
    model.eval()
    order = np.argsort(split.lengths, kind="stable")
    predictions = np.zeros(len(split), dtype=np.float64)
    loss_sum, tokens = 0.0, 0
    started = time.perf_counter()
    with torch.inference_mode(), ctx.autocast():
        for start in range(0, len(order), ctx.batch_size):
            idx = order[start : start + ctx.batch_size]
            batch = {k: v.to(ctx.device) for k, v in collate(split, idx, ctx.pad_id, ctx.padding_side).items()}
            out = model(**batch)
            loss_sum += float(out.loss) * len(idx)
            predictions[idx] = out.logits[:, 0].float().cpu().numpy()
            tokens += int(batch["attention_mask"].sum())
    elapsed = time.perf_counter() - started
    model.train(was_training)
    scores: dict[str, Any] = regression_scores(predictions, split.labels)
    scores["loss"] = loss_sum / max(len(split), 1)
    scores["samples_per_s"] = len(split) / elapsed if elapsed > 0 else None
    scores["tokens_per_s"] = tokens / elapsed if elapsed > 0 else None
    scores["n"] = len(split)
    ids = split.ids or [f"row{i}" for i in range(len(split))]
    scores["examples"] = {
        "id": list(ids),
        "gold": [float(g) for g in split.labels],
        "prediction": [float(p) for p in predictions],
    }
    return scores


class RegressionTask:
    """One-output regression on an encoder (or decoder) with a fresh head; see the module docstring."""

    spec = get_task_spec("regression")
    name = spec.name
    peft_task_type = spec.peft_task_type
    latency_examples = 32

    def prepare_data(self, experiment: Any, tokenizer: Any, base_dir: Any) -> tuple[Any, dict[str, Any]]:
        data = load_data(experiment, base_dir, self.spec.targets)
        return data, tokenize_frames(data, tokenizer, experiment.data.max_length, dtype=np.float32)

    def _load(self, source: Any, load_kwargs: dict[str, Any], pad_token_id: int | None = None) -> Any:
        from peftlab.runtime.models import load_classifier

        kwargs = {**load_kwargs, "problem_type": "regression"}  # MSE loss on the one output
        return load_classifier(source, (TARGET,), kwargs, pad_token_id=pad_token_id)

    def load_model(self, source: Any, data: Any, load_kwargs: dict[str, Any], pad_token_id: int | None) -> Any:
        return self._load(source, load_kwargs, pad_token_id)

    def head_modules(self, model: Any) -> tuple[str, ...]:
        from peftlab.runtime.models import fresh_modules

        return fresh_modules(model)

    def unquantized_modules(self, source: Any, data: Any) -> tuple[str, ...]:
        from peftlab.runtime.models import fresh_modules

        return fresh_modules(self._load(source, {"device_map": {"": "meta"}}))

    def collate(self, split: TokenizedSplit, indices: Any, pad_id: int, padding_side: str) -> dict[str, Any]:
        return collate(split, indices, pad_id, padding_side)

    def evaluate(self, model: Any, split: TokenizedSplit, ctx: Any) -> dict[str, Any]:
        return evaluate_split(model, split, ctx)

    def preload(self) -> None:
        """Nothing to load: the correlations are scipy's."""


TASK = RegressionTask()
