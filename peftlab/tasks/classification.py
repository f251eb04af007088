"""Sequence classification: tokenised splits, batches with little padding, and evaluation.

Single texts or sentence pairs (`data.text_column: [premise, hypothesis]`): a pair is tokenised
as the tokenizer's pair encoding (`[CLS] a [SEP] b [SEP]` with segment ids for BERT), both
texts truncated longest-first to `max_length`. The regression task reuses this tokenisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from peftlab.task_specs import get_task_spec
from peftlab.tasks.batching import attention_mask, pad_rows, train_batches
from peftlab.tasks.splits import prepare_data, split_limits

__all__ = ["TokenizedSplit", "collate", "evaluate_split", "tokenize_split", "train_batches"]


@dataclass
class TokenizedSplit:
    input_ids: list[list[int]]
    labels: np.ndarray
    ids: list[str] = field(default_factory=list)  # stable example ids (text + label), for paired statistics
    token_type_ids: list[list[int]] | None = None  # segment ids of sentence pairs (models that use them)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def tokenize_split(
    texts: list[str],
    labels: Any,
    tokenizer: Any,
    max_length: int,
    pairs: list[str] | None = None,
    dtype: Any = np.int64,
) -> TokenizedSplit:
    """Tokenise single texts, or (text, pair) sentence pairs; `dtype` is the labels' (float for regression)."""
    from peftlab.records.predictions import example_ids

    texts = list(texts)
    labels = np.asarray(labels, dtype=dtype)
    if pairs is None:
        encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
        ids = example_ids(zip(texts, labels.tolist(), strict=True))
        return TokenizedSplit(input_ids=encoded["input_ids"], labels=labels, ids=ids)
    pairs = list(pairs)
    encoded = tokenizer(texts, pairs, truncation="longest_first", max_length=max_length, padding=False)
    ids = example_ids(zip(texts, pairs, labels.tolist(), strict=True))
    segments = encoded.get("token_type_ids")
    return TokenizedSplit(input_ids=encoded["input_ids"], labels=labels, ids=ids, token_type_ids=segments)


def tokenize_frames(data: Any, tokenizer: Any, max_length: int, dtype: Any = np.int64) -> dict[str, TokenizedSplit]:
    """The three splits of loaded data and a preset's extra evaluation splits (pairs where there is `text_pair`)."""

    def tokenize(frame: Any) -> TokenizedSplit:
        pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
        labels = frame["label"].to_numpy()
        return tokenize_split(frame["text"].tolist(), labels, tokenizer, max_length, pairs=pairs, dtype=dtype)

    return prepare_data(data, tokenize)[1]


def collate(split: TokenizedSplit, indices: np.ndarray, pad_id: int, padding_side: str = "right") -> dict[str, Any]:
    """Pad to the longest example in the batch (dynamic padding)."""
    import torch

    seqs = [split.input_ids[i] for i in indices]
    batch = {
        "input_ids": pad_rows(seqs, pad_id, padding_side),
        "attention_mask": attention_mask(seqs, padding_side),
        "labels": torch.as_tensor(split.labels[indices]),
    }
    if split.token_type_ids is not None:  # sentence pairs: which segment each token is in (0 on padding)
        batch["token_type_ids"] = pad_rows([split.token_type_ids[i] for i in indices], 0, padding_side)
    return batch


def evaluate_split(
    model: Any,
    split: TokenizedSplit,
    batch_size: int,
    device: str,
    pad_id: int,
    autocast: Any,
    padding_side: str = "right",
    metric: str | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and mean loss (+ `data.metric`'s Matthews or binary F1); sorted by length for little padding.

    `examples` holds the per-example outcomes (id, gold, prediction, correct) in split order; the
    runner moves them into the run's predictions file (peftlab/records/predictions.py).
    """
    import torch

    from peftlab.metrics import chosen_classification_score, classification_scores
    from peftlab.records.predictions import outcomes

    was_training = model.training
    model.eval()
    order = np.argsort(split.lengths, kind="stable")
    predictions = np.empty(len(split), dtype=np.int64)
    loss_sum, tokens = 0.0, 0
    num_labels = 0  # the head's width: macro-F1 averages over every class the model has
    started = time.perf_counter()
    with torch.inference_mode(), autocast():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collate(split, idx, pad_id, padding_side).items()}
            out = model(**batch)
            loss_sum += float(out.loss) * len(idx)
            predictions[idx] = out.logits.argmax(-1).cpu().numpy()
            num_labels = int(out.logits.shape[-1])
            tokens += int(batch["attention_mask"].sum())
    elapsed = time.perf_counter() - started
    model.train(was_training)
    scores = classification_scores(predictions.tolist(), split.labels.tolist(), num_labels)
    scores.update(chosen_classification_score(metric, predictions.tolist(), split.labels.tolist()))
    # what always answering the split's most frequent class scores: the learning baseline (peftlab/probes/suite.py)
    scores["majority_rate"] = float(np.bincount(split.labels).max() / len(split)) if len(split) else None
    if len(split):  # under a chosen metric (matthews, f1), the same predictor's score in it: `majority_<metric>`
        majority = [int(np.bincount(split.labels).argmax())] * len(split)
        chosen = chosen_classification_score(metric, majority, split.labels.tolist())
        scores.update({f"majority_{name}": value for name, value in chosen.items()})
    scores["loss"] = loss_sum / max(len(split), 1)
    scores["samples_per_s"] = len(split) / elapsed if elapsed > 0 else None
    scores["tokens_per_s"] = tokens / elapsed if elapsed > 0 else None
    scores["n"] = len(split)
    ids = split.ids or [f"row{i}" for i in range(len(split))]  # a split built without ids: row positions
    scores["examples"] = outcomes(ids, split.labels, predictions, predictions == split.labels)
    return scores


class ClassificationTask:
    """Sequence classification: a fresh head on an encoder (or decoder), scored by the argmax label."""

    spec = get_task_spec("classification")
    name = spec.name
    peft_task_type = spec.peft_task_type
    latency_examples = 32  # batch-size-1 forwards timed per run

    def prepare_data(self, experiment: Any, tokenizer: Any, base_dir: Any) -> tuple[Any, dict[str, Any]]:
        data = load_data(experiment, base_dir, self.spec.targets)
        return data, tokenize_frames(data, tokenizer, experiment.data.max_length)

    def preload(self) -> None:
        from peftlab.metrics import load_metric

        for name in ("accuracy", "f1"):
            load_metric(name)

    def load_model(self, source: Any, data: Any, load_kwargs: dict[str, Any], pad_token_id: int | None) -> Any:
        from peftlab.runtime.models import load_classifier

        return load_classifier(source, data.label_names, load_kwargs, pad_token_id=pad_token_id)

    def head_modules(self, model: Any) -> tuple[str, ...]:
        """Every module the checkpoint lacked (head, DistilBERT's pre_classifier, a missing pooler)."""
        from peftlab.runtime.models import fresh_modules

        return fresh_modules(model)

    def unquantized_modules(self, source: Any, data: Any) -> tuple[str, ...]:
        """The fresh modules, found on a weightless (meta-device) copy of the model."""
        from peftlab.runtime.models import fresh_modules, load_classifier

        return fresh_modules(load_classifier(source, data.label_names, {"device_map": {"": "meta"}}))

    def collate(self, split: TokenizedSplit, indices: Any, pad_id: int, padding_side: str) -> dict[str, Any]:
        return collate(split, indices, pad_id, padding_side)

    def evaluate(self, model: Any, split: TokenizedSplit, ctx: Any) -> dict[str, Any]:
        return evaluate_split(
            model, split, ctx.batch_size, ctx.device, ctx.pad_id, ctx.autocast, ctx.padding_side, ctx.metric
        )


def load_data(experiment: Any, base_dir: Any, targets: str) -> Any:
    """The experiment's data as three fixed splits (sentence pairs where `data` names two text columns)."""
    from peftlab.data import load_classification_data

    cfg = experiment.data
    return load_classification_data(
        cfg.source,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        text_pair_column=cfg.text_pair_column,
        targets=targets,
        test_source=cfg.test_source,
        base_dir=base_dir,
        limits=split_limits(cfg),
    )


TASK = ClassificationTask()
