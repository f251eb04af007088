"""Batching shared by every task: length-grouped index batches fixed by the seed, and padding.

Batches depend only on the data and the seed, never on the method, so every method in an
experiment sees the same examples in the same order for the same number of steps.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Sized(Protocol):
    """A tokenised split: its length and every example's token count."""

    def __len__(self) -> int: ...

    @property
    def lengths(self) -> np.ndarray: ...


def train_batches(
    split: Sized, batch_size: int, count: int, seed: int, length_grouping: bool = True
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


def pad_rows(seqs: list[list[int]], value: int, padding_side: str = "right") -> Any:
    """A (len(seqs), longest) long tensor of `seqs` padded with `value` on `padding_side`."""
    import torch

    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for row, seq in enumerate(seqs):
        if padding_side == "left":
            out[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        else:
            out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def attention_mask(seqs: list[list[int]], padding_side: str = "right") -> Any:
    """1 on real tokens, 0 on padding, laid out as `pad_rows` lays the tokens."""
    return pad_rows([[1] * len(s) for s in seqs], 0, padding_side)
