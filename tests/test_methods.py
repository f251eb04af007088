"""Every registered method prepares a tiny BERT, trains two steps in the one loop, and changes only
the parameters it is meant to train."""

from __future__ import annotations

import re

import pytest
import torch

from peftlab.config import TrainConfig
from peftlab.measure import count_parameters
from peftlab.methods import REGISTRY, ModelContext, get_method
from peftlab.models import head_modules, load_classifier, load_tokenizer, resolve_model_source
from peftlab.tasks.classification import collate, tokenize_split, train_batches
from peftlab.train import train

# What each method may change: its own modules plus the fresh classification head.
INTENDED = {
    "full": r".*",
    "lora": r"lora_|classifier",
    "dora": r"lora_|classifier",
    "rslora": r"lora_|classifier",
    "qlora": r"lora_|classifier",
    "adalora": r"lora_|classifier",
    "ia3": r"ia3_|classifier",
    "prompt_tuning": r"prompt_encoder|classifier",
    "prefix_tuning": r"prompt_encoder|classifier",
}


def test_every_registered_method_has_an_expectation():
    assert {name for name, method in REGISTRY.items() if method.trains} == set(INTENDED)


def prepare(name: str, folder, steps: int = 2):
    method = get_method(name)
    params = method.params()
    source = resolve_model_source(str(folder))
    tokenizer = load_tokenizer(source)
    labels = ("negative", "positive")
    probe = load_classifier(source, labels)
    load_kwargs = method.load_kwargs(params, "cpu", head_modules(probe)) if method.load_kwargs else {}
    torch.manual_seed(0)
    model = load_classifier(source, labels, load_kwargs)
    ctx = ModelContext("SEQ_CLS", model.config.model_type, total_steps=steps, head_modules=head_modules(model))
    return method.prepare(model, params, ctx), tokenizer


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_two_steps_change_only_intended_parameters(name, tiny_bert, tiny_dataset):
    import pandas as pd

    model, tokenizer = prepare(name, tiny_bert)
    frame = pd.read_csv(tiny_dataset / "train.csv")
    split = tokenize_split(frame["text"].tolist(), frame["label"].to_numpy(), tokenizer, 32)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(steps=2, batch_size=8, warmup_ratio=0.0, scheduler="constant")
    batches = train_batches(split, 8, 2, seed=0)
    outcome = train(
        model,
        batches,
        cfg,
        lr=1e-2,
        device="cpu",
        collate=lambda idx: collate(split, idx, tokenizer.pad_token_id),
        on_step=get_method(name).on_step,
    )
    assert outcome.steps_done == 2 and outcome.final_train_loss is not None
    assert torch.isfinite(torch.tensor(outcome.final_train_loss))

    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed, f"{name}: nothing changed"
    assert changed <= trainable, f"{name}: frozen parameters changed: {sorted(changed - trainable)[:5]}"
    unintended = {n for n in trainable if not re.search(INTENDED[name], n)}
    assert not unintended, f"{name}: unintended trainable parameters: {sorted(unintended)[:5]}"
    assert any("classifier" in n for n in changed), f"{name}: the task head did not train"
    if name != "full":
        own = {n for n in changed if "classifier" not in n}
        assert own, f"{name}: only the head changed, the method's own parameters did not"


def test_qlora_layers_are_4bit_and_counted_unhalved(tiny_bert):
    import bitsandbytes as bnb

    qmodel, _ = prepare("qlora", tiny_bert)
    lmodel, _ = prepare("lora", tiny_bert)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in qmodel.modules())
    assert not any(isinstance(m, bnb.nn.Linear4bit) for n, m in qmodel.named_modules() if "classifier" in n)
    assert count_parameters(qmodel) == count_parameters(lmodel)


@pytest.mark.parametrize("name", sorted(set(INTENDED) - {"full", "qlora"}))
def test_parameter_counts_match_peft(name, tiny_bert):
    model, _ = prepare(name, tiny_bert)
    trainable, total = model.get_nb_trainable_parameters()
    counted = count_parameters(model)
    pruned = counted.get("adalora_pruned", 0)  # AdaLoRA: peft counts init_r ranks, peftlab its target_r budget
    assert (name == "adalora") == (pruned > 0)
    assert (counted["trainable"], counted["total"]) == (trainable - pruned, total - pruned)
