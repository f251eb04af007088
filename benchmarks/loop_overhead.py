"""Loop overhead: peftlab's loop vs a hand-written PyTorch loop vs HF Trainer, side by side.

    python benchmarks/loop_overhead.py [--steps 24] [--reps 3] [--model builtin:minilm-l6]

Same model, method (LoRA r=8 on query/value), data and optimiser for every variant; repetitions
are interleaved (a b c d a b c d ...) so that a noisy machine slows all variants alike, and the
median over repetitions is compared. Throughput counts real (non-padding) tokens, with the first
`--warmup` steps of each repetition left out. Runs unchanged on CUDA (bf16 autocast everywhere).

(a) peftlab: `peftlab.runtime.train.train` with length-grouped batches and dynamic padding
(b) minimal PyTorch loop over the very same batches (the floor for loop overhead)
(c) HF Trainer, the seed-tutorial recipe: tokenizer padding="max_length", random batches
(d) HF Trainer with dynamic padding (DataCollatorWithPadding), random batches
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from interleave import (  # benchmarks/interleave.py (scripts run from this folder)
    benchmark_parser,
    run_interleaved,
    trainer_kwargs,
)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_model(source: Any, device: str, seed: int) -> Any:
    import torch

    from peftlab.methods import ModelContext, get_method
    from peftlab.runtime.models import head_modules, load_classifier

    torch.manual_seed(seed)
    method = get_method("lora")
    model = load_classifier(source, ("negative", "positive"))
    ctx = ModelContext("SEQ_CLS", model.config.model_type, total_steps=1, head_modules=head_modules(model))
    return method.prepare(model, method.params(r=8, alpha=16, dropout=0.05), ctx).to(device)


def run_peftlab(ctx: dict, rep: int) -> float:
    from peftlab.config import TrainConfig
    from peftlab.runtime.train import TrainSpec, train
    from peftlab.tasks.classification import collate

    model = build_model(ctx["source"], ctx["device"], rep)
    cfg = TrainConfig(
        steps=ctx["steps"],
        batch_size=ctx["batch"],
        warmup_ratio=0.0,
        scheduler="constant",
        precision="auto",
        max_grad_norm=1.0,
    )
    split, pad = ctx["split"], ctx["pad_id"]
    loop = TrainSpec.of(cfg, cfg.optimizer(ctx["lr"]), ctx["device"])
    out = train(model, ctx["batches"], lambda idx: collate(split, idx, pad), loop)
    w = ctx["warmup"]
    return sum(out.step_tokens[w:]) / sum(out.step_times[w:])


def run_plain(ctx: dict, rep: int) -> float:
    import torch

    from peftlab.runtime.train import autocast_factory
    from peftlab.tasks.classification import collate

    model = build_model(ctx["source"], ctx["device"], rep)
    device, split, pad = ctx["device"], ctx["split"], ctx["pad_id"]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=ctx["lr"], **({"fused": True} if device.startswith("cuda") else {}))
    autocast = autocast_factory(device, "auto")
    model.train()
    tokens, seconds = 0, 0.0
    for step, idx in enumerate(ctx["batches"]):
        t0 = time.perf_counter()
        batch = {k: v.to(device) for k, v in collate(split, idx, pad).items()}
        with autocast():
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(loss)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= ctx["warmup"]:
            seconds += time.perf_counter() - t0
            tokens += int(batch["attention_mask"].sum())
    return tokens / seconds


def run_trainer(ctx: dict, rep: int, max_length_padding: bool) -> float:
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    model = build_model(ctx["source"], ctx["device"], rep)
    tok = ctx["tokenizer"]
    texts, labels = ctx["texts"], ctx["labels"]
    if max_length_padding:
        enc = tok(texts, truncation=True, max_length=ctx["max_length"], padding="max_length")
    else:
        enc = tok(texts, truncation=True, max_length=ctx["max_length"])
    rows = [
        {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": int(labels[i])}
        for i in range(len(texts))
    ]
    base = DataCollatorWithPadding(tok)
    real_tokens: list[int] = []

    def collator(features: list[dict]) -> dict:
        batch = base(features)
        real_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    step_times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            **trainer_kwargs(ctx, rep, out),
        )
        Trainer(model=model, args=args, train_dataset=rows, data_collator=collator, callbacks=[Timer()]).train()
    w = ctx["warmup"]
    n = len(step_times)
    return sum(real_tokens[w:n]) / sum(step_times[w:])


VARIANTS = {
    "(a) peftlab loop": run_peftlab,
    "(b) hand-written PyTorch": run_plain,
    "(c) HF Trainer, max_length padding": lambda ctx, rep: run_trainer(ctx, rep, True),
    "(d) HF Trainer, dynamic padding": lambda ctx, rep: run_trainer(ctx, rep, False),
}


def main() -> None:
    args = benchmark_parser(__doc__, model="builtin:minilm-l6", steps=24, warmup=4, batch=16).parse_args()

    import torch

    from peftlab.data import load_classification_data
    from peftlab.records.environment import resolve_device
    from peftlab.runtime.models import load_tokenizer, quiet_transformers, resolve_model_source
    from peftlab.tasks.classification import tokenize_split, train_batches

    quiet_transformers()
    device = resolve_device(args.device)
    source = resolve_model_source(args.model)
    tokenizer = load_tokenizer(source)
    data = load_classification_data(args.data)
    n = args.steps * args.batch
    texts = data.train["text"].tolist()[:n]
    labels = data.train["label"].to_numpy()[:n]
    split = tokenize_split(texts, labels, tokenizer, args.max_length)
    ctx = {
        "source": source,
        "device": device,
        "steps": args.steps,
        "warmup": args.warmup,
        "batch": args.batch,
        "lr": 2e-3,
        "split": split,
        "pad_id": tokenizer.pad_token_id,
        "tokenizer": tokenizer,
        "texts": texts,
        "labels": labels,
        "max_length": args.max_length,
        "batches": train_batches(split, args.batch, args.steps, seed=0, length_grouping=True),
    }
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU × {torch.get_num_threads()} threads"
    print(
        f"loop overhead: {args.model} + LoRA r=8, batch {args.batch}, {args.steps} steps "
        f"({args.warmup} warm-up excluded), {args.reps} interleaved repetitions, {name}"
    )
    med = run_interleaved(VARIANTS, ctx, args.reps, args.warmup)
    a = med["(a) peftlab loop"]
    print(
        f"\n(a)/(b) = {a / med['(b) hand-written PyTorch']:.3f} (target ≥ 0.97); "
        f"(a)/(c) = {a / med['(c) HF Trainer, max_length padding']:.2f} (target ≥ 1.2)"
    )


if __name__ == "__main__":
    main()
