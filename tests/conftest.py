"""Shared fixtures: tiny random models saved to disk (so the real loading path runs) and tiny data.

Nothing here needs the network or a GPU; the `slow` tests use the real builtin MiniLM.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

POSITIVE = ["good", "great", "fine", "lovely", "superb", "moving", "funny", "smart", "warm", "bright"]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak", "stale", "silly", "grim", "flat", "tired"]
FILLER = ["the", "film", "movie", "story", "was", "is", "a", "very", "plot", "acting", "and", "but", "it"]


def _sentence(rng: random.Random, label: int) -> str:
    cue = rng.choice(POSITIVE if label else NEGATIVE)
    words = [rng.choice(FILLER) for _ in range(rng.randint(3, 9))]
    words.insert(rng.randint(0, len(words)), cue)
    return " ".join(words)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with train/validation/test CSVs whose label is carried by one cue word."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("tiny_data")
    rng = random.Random(0)
    for split, n in (("train", 256), ("validation", 48), ("test", 48)):
        labels = [i % 2 for i in range(n)]
        pd.DataFrame({"text": [_sentence(rng, y) for y in labels], "label": labels}).to_csv(
            folder / f"{split}.csv", index=False
        )
    return folder


def _write_vocab(path: Path) -> Path:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    path.write_text("\n".join(special + sorted(set(POSITIVE + NEGATIVE + FILLER))) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT with a word-level vocabulary, saved as a normal HF folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = _write_vocab(folder / "vocab.txt")
    # a vocab mapping, not `vocab_file=`: transformers 5 ignores that keyword and would leave a
    # tokenizer of only the special tokens, which maps every word to [UNK]
    words = vocab.read_text().split()
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    assert tokenizer.convert_tokens_to_ids("good") != tokenizer.unk_token_id
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def experiment_file(tmp_path: Path, tiny_bert: Path, tiny_dataset: Path):
    """Write an experiment YAML for the tiny model and data; returns a function taking extra text."""

    def make(
        methods: str = "  - method: lora\n    lr: 1.0e-2\n", *, steps: int = 4, seeds: str = "[0]", extra: str = ""
    ) -> Path:
        path = tmp_path / "tiny.yaml"
        path.write_text(
            f"name: tiny\nmodel: {tiny_bert}\ndata:\n  source: {tiny_dataset}\n  max_length: 32\n"
            f"train:\n  steps: {steps}\n  batch_size: 8\n  eval_every: 2\n  eval_batch_size: 16\n"
            f"seeds: {seeds}\noutput_dir: {tmp_path / 'results'}\n{extra}methods:\n{methods}"
        )
        return path

    return make
