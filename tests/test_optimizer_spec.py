"""One optimiser spec carries lr and its friends from YAML to AdamW: built in config, carried by the run
spec, turned into the optimiser and its schedule in one call, with the numbers of AdamW written by hand."""

from __future__ import annotations

import pandas as pd
import torch

from peftlab.config import TrainConfig, load_experiment
from peftlab.config.optim import OptimizerSpec
from peftlab.planners.grid import make_plan
from peftlab.runtime.models import load_tokenizer, resolve_model_source
from peftlab.runtime.train import TrainSpec, Watch, train
from peftlab.tasks.classification import collate, tokenize_split, train_batches
from tests.test_methods import prepare


def test_the_run_spec_carries_the_optimizer_spec_from_the_yaml(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: opt\nmodel: builtin:minilm-l6\n"
        "train: {steps: 10, weight_decay: 0.01, scheduler: cosine, warmup_ratio: 0.2, max_grad_norm: null}\n"
        "methods: [{method: lora, grid: {lr: [1e-3, 2e-3]}}]\n"
    )
    plan = make_plan(load_experiment(path))
    assert [s.optimizer for s in plan] == [
        OptimizerSpec(lr=lr, weight_decay=0.01, scheduler="cosine", warmup_ratio=0.2, max_grad_norm=None)
        for lr in (1e-3, 2e-3)
    ]
    assert [s.lr for s in plan] == [1e-3, 2e-3]  # what the record's hyperparameters name


def test_the_loop_computes_what_adamw_written_by_hand_computes(tiny_bert, tiny_dataset):
    """Warm-up, linear decay, weight decay and clipping: the same losses and weights, bit for bit."""
    from transformers import get_scheduler

    tokenizer = load_tokenizer(resolve_model_source(str(tiny_bert)))
    frame = pd.read_csv(tiny_dataset / "train.csv")
    split = tokenize_split(frame["text"].tolist(), frame["label"].to_numpy(), tokenizer, 32)
    batches = train_batches(split, 8, 4, seed=0)
    cfg = TrainConfig(steps=4, batch_size=8, warmup_ratio=0.25, weight_decay=0.01, max_grad_norm=0.5)
    spec = cfg.optimizer(1e-2)

    model, _ = prepare("lora", tiny_bert, steps=4)
    losses: list[float] = []
    loop = TrainSpec.of(cfg, spec, "cpu")
    train(model, batches, lambda i: collate(split, i, 0), loop, Watch(log=lambda _, v: losses.append(v["train/loss"])))

    by_hand, _ = prepare("lora", tiny_bert, steps=4)
    trainable = [p for p in by_hand.parameters() if p.requires_grad]
    adamw = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.01, foreach=True)
    schedule = get_scheduler("linear", adamw, num_warmup_steps=1, num_training_steps=4)
    expected = []
    by_hand.train()
    for indices in batches:
        loss = by_hand(**collate(split, indices, 0)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 0.5)
        adamw.step()
        schedule.step()
        adamw.zero_grad(set_to_none=True)
        expected.append(float(loss.detach()))
    assert losses == expected
    for (name, p), q in zip(model.named_parameters(), by_hand.parameters(), strict=True):
        assert torch.equal(p, q), name
