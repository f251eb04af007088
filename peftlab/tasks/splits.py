"""What every task's `prepare_data` shares: the limits a loader takes, and each loaded split tokenised.

A task's data step is always the same two moves around its own loader and tokeniser: pass the
experiment's `data.*_limit` keys to the loader, then turn every split of what it loaded (train,
validation, test, and a preset's extra evaluation splits) into the task's tokenised split. Only
the loader and the tokeniser differ, so `prepare_data` takes those two and does the rest here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

SPLITS = ("train", "validation", "test")

Split = TypeVar("Split")


def split_limits(data_config: Any) -> dict[str, int | None]:
    """`data.train_limit`, `data.validation_limit` and `data.test_limit` as the loaders' `limits`."""
    return {name: getattr(data_config, f"{name}_limit") for name in SPLITS}


def prepare_data(data: Any, tokenize: Callable[[Any], Split]) -> tuple[Any, dict[str, Split]]:
    """(the loaded data, {split name: `tokenize(its frame)`}) over the three splits and any extra evaluation split."""
    names = (*SPLITS, *getattr(data, "extra", {}))
    return data, {name: tokenize(data.split(name)) for name in names}
