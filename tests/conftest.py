"""Shared fixtures: tiny random models saved to disk (so the real loading path runs) and tiny data.

Nothing here needs the network or a GPU; the `slow` tests use the real builtin MiniLM.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
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


def write_label_splits(
    folder: Path, sizes: dict[str, int], sentence: Callable[[random.Random, int], str], seed: int
) -> Path:
    """train/validation/test CSVs of alternating binary labels, each text drawn by `sentence(rng, label)`."""
    import pandas as pd

    rng = random.Random(seed)
    for split, n in sizes.items():
        labels = [i % 2 for i in range(n)]
        pd.DataFrame({"text": [sentence(rng, y) for y in labels], "label": labels}).to_csv(
            folder / f"{split}.csv", index=False
        )
    return folder


@pytest.fixture
def no_thread_pool():
    """For a test that computes with torch in the pytest process itself: one thread while it does.

    Runs are forked from this process (peftlab/execute/isolation.py), and fork is safe only while
    the forking process has never started an OpenMP thread pool: a pool alive at fork time deadlocks
    the child in its first parallel op (a log-softmax over a vocabulary is enough). With one thread
    torch runs those ops inline and starts no pool; the count is restored after the test (a pool is
    only started by the next parallel op, and later tests fork instead of computing here).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with train/validation/test CSVs whose label is carried by one cue word."""
    sizes = {"train": 256, "validation": 48, "test": 48}
    return write_label_splits(tmp_path_factory.mktemp("tiny_data"), sizes, _sentence, seed=0)


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


# ---------------------------------------------------------------- causal LM (task sft)

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PROMPT_WORDS = ["text", "which", "label", "fits", "this", "answer", "with", "only", "positive", "negative", "review"]
PROMPT_WORDS += ["user", "assistant", "system", "0", "1", ":", "?", ",", "."]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama shaped like SmolLM2 (GQA, tied embeddings), with a ChatML chat template.

    The tokenizer is word-level (whitespace split) with `<|im_start|>`/`<|im_end|>` as special
    tokens, EOS = `<|im_end|>` and no pad token, as in SmolLM2-Instruct.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_llama")
    words = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]", *sorted(set(POSITIVE + NEGATIVE + FILLER))]
    words += [w for w in PROMPT_WORDS if w not in words]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="[UNK]",
        additional_special_tokens=["<|endoftext|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(  # SmolLM2-135M's shape, scaled down: 9 heads / 3 KV heads → 4 / 2
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sft_results(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path, tiny_dataset: Path) -> Path:
    """One tiny `sft` experiment run in-process (zero-shot, LoRA, prompt tuning; 2 steps): its results folder."""
    from peftlab.cli.report import write_experiment_report
    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    folder = tmp_path_factory.mktemp("sft_exp")
    path = folder / "sft.yaml"
    path.write_text(
        f"name: tiny_sft\nmodel: {tiny_llama}\ntask: sft\ndata:\n  source: {tiny_dataset}\n  max_length: 48\n"
        f"  validation_limit: 8\n  test_limit: 12\ntrain:\n  steps: 2\n  batch_size: 4\n  eval_every: 2\n"
        f"  eval_batch_size: 8\nseeds: [0]\noutput_dir: {folder / 'results'}\nmethods:\n"
        "  - method: zero_shot\n  - method: lora\n    lr: 1.0e-2\n"
        "  - method: prompt_tuning\n    num_virtual_tokens: 4\n"
    )
    experiment = load_experiment(path)
    ws = prepare_workspace(experiment)
    for i, spec in enumerate(make_plan(experiment), 1):
        execute_run(ws, spec, (i, 3), quiet=True)
    write_experiment_report(experiment.results_dir())
    return experiment.results_dir()


def pytest_collection_modifyitems(config, items):
    """`stress` tests run only when asked for by name (`-m stress`): `make test` and CI leave them out."""
    if "stress" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("stress") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("stress")])
        items[:] = kept
