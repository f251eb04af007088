"""Sequence classification: tokenised splits, batches with little padding, and evaluation.

Batches depend only on the data and the seed, never on the method, so every method in an
experiment sees the same examples in the same order for the same number of steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class TokenizedSplit:
    input_ids: list[list[int]]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def tokenize_split(texts: list[str], labels: Any, tokenizer: Any, max_length: int) -> TokenizedSplit:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return TokenizedSplit(input_ids=encoded["input_ids"], labels=np.asarray(labels, dtype=np.int64))


def train_batches(
    split: TokenizedSplit, batch_size: int, count: int, seed: int, length_grouping: bool = True
) -> list[np.ndarray]:
    """`count` batches of example indices, epoch after epoch, fixed by `seed`.

    Length grouping (as in HF's LengthGroupedSampler): shuffle, cut into mega-batches of 50
    batches, sort each by length, split, then shuffle the batch order. Padding shrinks a lot
    while batches stay random in content.
    """
    rng = np.random.default_rng(seed)
    lengths = split.lengths
    batches: list[np.ndarray] = []
    while len(batches) < count:
        order = rng.permutation(len(split))
        epoch: list[np.ndarray] = []
        if length_grouping:
            mega = batch_size * 50
            for start in range(0, len(order), mega):
                chunk = order[start : start + mega]
                chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
                epoch.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
            epoch = [b for b in epoch if len(b) == batch_size] or epoch  # drop ragged tails
            epoch = [epoch[i] for i in rng.permutation(len(epoch))]
        else:
            epoch = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
            epoch = epoch or [order]
        batches.extend(epoch)
    return batches[:count]


def collate(split: TokenizedSplit, indices: np.ndarray, pad_id: int, padding_side: str = "right") -> dict[str, Any]:
    """Pad to the longest example in the batch (dynamic padding)."""
    import torch

    seqs = [split.input_ids[i] for i in indices]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if padding_side == "left":
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        else:
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
    labels = torch.as_tensor(split.labels[indices])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def evaluate_split(
    model: Any,
    split: TokenizedSplit,
    batch_size: int,
    device: str,
    pad_id: int,
    autocast: Any,
    padding_side: str = "right",
) -> dict[str, float]:
    """Accuracy, macro-F1 and mean loss; examples sorted by length so batches carry almost no padding."""
    import torch

    from peftlab.metrics import classification_scores

    was_training = model.training
    model.eval()
    order = np.argsort(split.lengths, kind="stable")
    predictions = np.empty(len(split), dtype=np.int64)
    loss_sum, tokens = 0.0, 0
    started = time.perf_counter()
    with torch.inference_mode(), autocast():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collate(split, idx, pad_id, padding_side).items()}
            out = model(**batch)
            loss_sum += float(out.loss) * len(idx)
            predictions[idx] = out.logits.argmax(-1).cpu().numpy()
            tokens += int(batch["attention_mask"].sum())
    elapsed = time.perf_counter() - started
    model.train(was_training)
    scores = classification_scores(predictions.tolist(), split.labels.tolist())
    scores["loss"] = loss_sum / max(len(split), 1)
    scores["samples_per_s"] = len(split) / elapsed if elapsed > 0 else None
    scores["tokens_per_s"] = tokens / elapsed if elapsed > 0 else None
    scores["n"] = len(split)
    return scores
