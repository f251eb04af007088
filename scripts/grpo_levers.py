"""The base model's reward before any RL, per lever: difficulty, few-shot examples, a supervised warm start.

GRPO learns only from groups whose completions earn different rewards (a group with one reward
has advantages 0). So before an RL comparison one needs a task where the base model is neither
always wrong nor always right. This script measures, for the builtin SmolLM2-135M-Instruct (or
`--model`), on each generated source and level (peftlab/data/procedural.py):

- greedy pass@1 on `--prompts` test prompts (what the experiments' zero-shot row reports);
- the sampled reward (temperature 1, `--generations` completions per prompt, as in training);
- the share of prompts whose group is *mixed* (some completions right, some wrong): the share
  of a step's prompts that give GRPO a gradient.

Levers, each measured: the difficulty (`data.difficulty`), `rl.few_shot` solved examples shown
first, and a short supervised warm start (`--warm-steps` LoRA SFT steps on the train answers,
through peftlab's own loop and task sft), the "cold start" of R1-style recipes.

    python scripts/grpo_levers.py                      # writes results/grpo_levers/levers.md and .json

The table in docs/findings/2026-12-07-grpo.md is pasted from levers.md (scripts/update_readme.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

CASES = (  # (source, level, few-shot, warm-start steps)
    ("arithmetic", 1, 0, 0),
    ("arithmetic", 2, 0, 0),
    ("arithmetic", 2, 2, 0),
    ("arithmetic", 3, 2, 0),
    ("chain_sum", 1, 2, 0),
    ("compare", 1, 0, 0),
    ("compare", 2, 0, 0),
    ("compare", 2, 2, 0),
    ("compare", 3, 2, 0),
    ("compare", 2, 0, "warm"),
)


def _rollout(model: Any, tokenizer: Any, source: str, level: int, shots: int, args: Any) -> tuple[Any, Any]:
    """(the test prompts' Rollout, the train conversations) of one case, through the task's own data path."""
    from peftlab.config.rl import RlConfig
    from peftlab.data import load_instruction_data
    from peftlab.tasks.grpo import Rollout, _conversations, tokenize_prompts

    data = load_instruction_data(f"builtin:{source}", difficulty=level)
    train = data.split("train")
    examples = _conversations(data, train.iloc[:shots], None, []) if shots else []
    test = data.split("test").iloc[: args.prompts]
    split = tokenize_prompts("test", _conversations(data, test, "", examples), tokenizer, 256)
    rl = RlConfig(num_generations=args.generations, max_completion_length=6)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return Rollout(split, rl, tokenizer, int(pad), "cpu"), _conversations(data, train.iloc[shots:], "", [])


def measure(model: Any, rollout: Any) -> dict[str, float]:
    """Greedy pass@1, the sampled reward and the share of mixed groups over the rollout's prompts."""
    from peftlab.tasks.rewards import score

    split, greedy, mixed, sampled = rollout.split, [], [], []
    for start in range(0, len(split), 8):
        rows = np.arange(start, min(start + 8, len(split)))
        prompts = rollout.collate(rows)
        _, _, answers = rollout.sample(model, prompts, greedy=True)
        greedy += score("first_number", answers, [split.references[i] for i in rows], 0.0)[1]
        _, stats = rollout.collect(model, prompts)
        sampled.append(stats["reward"])
        mixed.append(1 - stats["zero_std_fraction"])
    return {
        "prompts": len(split),
        "greedy_pass_at_1": float(np.mean(greedy)),
        "sampled_reward": float(np.mean(sampled)),
        "mixed_groups": float(np.mean(mixed)),
    }


def warm_start(model: Any, tokenizer: Any, conversations: list[Any], steps: int, seed: int) -> Any:
    """LoRA SFT on the train answers for `steps` steps of 8, through task sft's tokeniser and peftlab's loop."""
    from peft import LoraConfig, get_peft_model

    from peftlab.config.optim import OptimizerSpec
    from peftlab.runtime.train import TrainSpec, train
    from peftlab.tasks.batching import train_batches
    from peftlab.tasks.sft import collate, tokenize_conversations

    split = tokenize_conversations(conversations, tokenizer, 64)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    spec = TrainSpec(steps=steps, optimizer=OptimizerSpec(lr=2e-3, scheduler="constant"), device="cpu")
    train(model, train_batches(split, 8, steps, seed), lambda idx: collate(split, idx, int(pad)), spec)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:smollm2-135m")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--warm-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/grpo_levers"))
    args = parser.parse_args(argv)

    import torch
    from transformers import set_seed

    from peftlab.runtime.models import load_causal_lm, load_tokenizer, quiet_transformers, resolve_model_source

    quiet_transformers()
    torch.set_num_threads(args.threads)
    source = resolve_model_source(args.model)
    tokenizer = load_tokenizer(source)
    rows = []
    for name, level, shots, warm in CASES:
        started = time.perf_counter()
        set_seed(0)
        model = load_causal_lm(source, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        rollout, train_rows = _rollout(model, tokenizer, name, level, shots, args)
        if warm:
            model = warm_start(model, tokenizer, train_rows, args.warm_steps, seed=0)
        result = {
            "source": f"builtin:{name}",
            "level": level,
            "few_shot": shots,
            "warm_start_steps": args.warm_steps if warm else 0,
            **measure(model, rollout),
            "seconds": time.perf_counter() - started,
        }
        rows.append(result)
        print(json.dumps(result), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "levers.json").write_text(
        json.dumps(
            {"model": args.model, "prompts": args.prompts, "generations": args.generations, "rows": rows}, indent=1
        )
    )
    lines = [
        f"Base model {args.model}: up to {args.prompts} test prompts per row, {args.generations} sampled completions "
        "(temperature 1, ≤ 6 tokens) per prompt; mixed = share of prompts whose completions got different rewards "
        "(the share that gives GRPO a gradient).",
        "",
        "| source | level | few-shot | warm start (SFT steps) | prompts | greedy pass@1 | sampled reward "
        "| mixed groups |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['source']} | {r['level']} | {r['few_shot']} | {r['warm_start_steps']} | "
            f"{r['prompts']} | {r['greedy_pass_at_1']:.3f} | {r['sampled_reward']:.3f} | {r['mixed_groups']:.3f} |"
        )
    (args.out / "levers.md").write_text("\n".join(lines) + "\n")
    print(f"grpo_levers: wrote {args.out / 'levers.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
