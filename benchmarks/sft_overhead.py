"""SFT overhead: peftlab's sft loop against trl's `SFTTrainer` (completion-only loss), side by side.

    python benchmarks/sft_overhead.py [--steps 12] [--reps 3] [--model builtin:smollm2-135m]

trl is the yardstick users of causal LMs reach for. Both variants fine-tune the same model with
LoRA r=8 (peft's default targets for the architecture, alpha 16, dropout 0.05) on the same rows
(Rotten Tomatoes as instruction following, as `experiments/smollm_sft.yaml`), the same batch
size, optimiser (AdamW), learning rate and gradient clipping, with the loss on the answer only
(`tests/test_sft_trl_oracle.py` checks that both build the same token ids and loss masks).
Repetitions are interleaved (a b a b ...) so a noisy machine slows both alike, and the median
is compared. Throughput counts real (non-padding) tokens per second of optimiser steps, with the
first `--warmup` steps of each repetition left out.

(a) peftlab: `peftlab.runtime.train.train` over length-grouped batches with dynamic padding
(b) trl `SFTTrainer` as documented: a prompt-completion dataset, `completion_only_loss=True`,
    its own sampler and collator (dynamic padding, random batches)
Needs trl: `pip install -e '.[trl]'`.
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

LORA = {"r": 8, "alpha": 16, "dropout": 0.05}


def build_model(ctx: dict, seed: int) -> Any:
    import torch

    from peftlab.methods import ModelContext, get_method
    from peftlab.runtime.models import load_causal_lm

    torch.manual_seed(seed)
    method = get_method("lora")
    model = load_causal_lm(ctx["source"], pad_token_id=ctx["pad_id"])
    mctx = ModelContext("CAUSAL_LM", model.config.model_type, total_steps=ctx["steps"])
    return method.prepare(model, method.params(**LORA), mctx).to(ctx["device"])


def run_peftlab(ctx: dict, rep: int) -> float:
    from peftlab.config import TrainConfig
    from peftlab.runtime.train import TrainSpec, train
    from peftlab.tasks.sft import collate

    model = build_model(ctx, rep)
    cfg = TrainConfig(
        steps=ctx["steps"], batch_size=ctx["batch"], warmup_ratio=0.0, scheduler="constant", max_grad_norm=1.0
    )
    split, pad = ctx["split"], ctx["pad_id"]
    loop = TrainSpec.of(cfg, cfg.optimizer(ctx["lr"]), ctx["device"])
    out = train(model, ctx["batches"], lambda idx: collate(split, idx, pad), loop)
    w = ctx["warmup"]
    return sum(out.step_tokens[w:]) / sum(out.step_times[w:])


def run_trl(ctx: dict, rep: int) -> float:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    model = build_model(ctx, rep)
    rows = [
        {"prompt": messages, "completion": [{"role": "assistant", "content": answer}]}
        for messages, answer in ctx["conversations"]
    ]
    step_times: list[float] = []
    real_tokens: list[int] = []
    cuda = ctx["device"].startswith("cuda")

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            completion_only_loss=True,
            max_length=ctx["max_length"],
            **trainer_kwargs(ctx, rep, out),
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=ctx["tokenizer"],
            callbacks=[Timer()],
        )
        collator = trainer.data_collator

        def counting(features: list[dict]) -> dict:
            batch = collator(features)
            real_tokens.append(int(batch["attention_mask"].sum()))
            return batch

        trainer.data_collator = counting
        trainer.train()
    w = ctx["warmup"]
    return sum(real_tokens[w : len(step_times)]) / sum(step_times[w:])


VARIANTS = {"(a) peftlab sft loop": run_peftlab, "(b) trl SFTTrainer": run_trl}


def main() -> None:
    args = benchmark_parser(__doc__, model="builtin:smollm2-135m", steps=12, warmup=2, batch=4).parse_args()

    import torch

    from peftlab.data import load_instruction_data
    from peftlab.records.environment import resolve_device
    from peftlab.runtime.models import load_tokenizer, quiet_transformers, resolve_model_source
    from peftlab.tasks.batching import train_batches
    from peftlab.tasks.sft import labelled_conversations, tokenize_conversations

    quiet_transformers()
    device = resolve_device(args.device)
    source = resolve_model_source(args.model)
    tokenizer = load_tokenizer(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # what trl does too; padding carries no loss either way
    data = load_instruction_data(args.data, limits={"train": args.steps * args.batch * 4})
    frame = data.split("train")
    conversations = labelled_conversations(data, frame, tokenizer, args.max_length, system="")
    split = tokenize_conversations(conversations, tokenizer, args.max_length, frame["label"].to_numpy())
    ctx = {
        "source": source,
        "device": device,
        "steps": args.steps,
        "warmup": args.warmup,
        "batch": args.batch,
        "lr": 1e-3,
        "split": split,
        "conversations": conversations,
        "pad_id": tokenizer.pad_token_id,
        "tokenizer": tokenizer,
        "max_length": args.max_length,
        "batches": train_batches(split, args.batch, args.steps, seed=0, length_grouping=True),
    }
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU × {torch.get_num_threads()} threads"
    print(
        f"sft overhead: {args.model} + LoRA r=8, batch {args.batch}, max_length {args.max_length}, {args.steps} steps "
        f"({args.warmup} warm-up excluded), {args.reps} interleaved repetitions, {name}"
    )
    med = run_interleaved(VARIANTS, ctx, args.reps, args.warmup)
    print(f"\n(a)/(b) = {med['(a) peftlab sft loop'] / med['(b) trl SFTTrainer']:.2f} (target ≥ 1.2 on CPU)")


if __name__ == "__main__":
    main()
