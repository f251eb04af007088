"""GRPO engine: peftlab's loop (task grpo) against trl's `GRPOTrainer`, side by side, seed by seed.

    python benchmarks/grpo_engine.py [--steps 12] [--seeds 0 1 2] [--model builtin:smollm2-135m]
        [--lr 2e-4] [--threads 2] [--out results/benchmarks/grpo_engine.json]

Task grpo runs on peftlab's own loop with trl's loss definitions (peftlab/tasks/grpo.py). This
measures whether that choice holds: the same GRPO run on both engines, with (1) the median
seconds per optimiser step (the first `--warmup` steps of each run left out), their ratio
trl / peftlab per seed, and (2) the per-step mean reward curves, mean ± sd over seeds, with the
paired difference of the curves' means over the last half of the steps and its 95% t-interval,
so "the reward curves agree within seed noise" can be read off.

Both engines get, per seed: the same model (fp32), the same LoRA (one peft `LoraConfig`, built by
peftlab's `lora` method: r 1, alpha 32, all-linear, `--lora-dropout`, initialised from the same
seed: the fingerprint of the initial adapter is checked equal), the same prompts in the same order
(peftlab's seed-fixed, length-grouped `train_batches`; trl reads them unshuffled), the same prompt
tokens (checked: trl's chat rendering of each prompt against peftlab's `tokenize_prompts`), and
the same settings: 2 prompts × 4 completions per step (trl: per_device_train_batch_size 8,
num_generations 4, gradient_accumulation_steps 1, steps_per_generation 1), ≤ 6 new tokens,
temperature 1, top_p 1, top_k 0, no KL (beta 0), loss dapo, rewards scaled by the group's std,
one pass per rollout, AdamW (lr `--lr`, no weight decay, gradients clipped at 1), constant
schedule without warm-up, fp32 (no bf16), no gradient checkpointing (trl's config turns it on by
default), `--threads` torch threads. Reward: 1 when the completion's first number is the
reference's (peftlab.tasks.rewards.check_first_number), on `builtin:compare` level 2 with an empty
system message, as experiments/grpo_rank.yaml.

(a) peftlab: `peftlab.runtime.train.train` with `TrainSpec(rollout=peftlab.tasks.grpo.Rollout)`,
    per-step times, sampling times, rewards and sampled tokens from its `TrainOutcome`
(b) trl: `GRPOTrainer` as documented (conversational prompts, a reward function, `peft_config`),
    offline and quiet; a step is timed from `on_step_begin` to `on_step_end` (sampling included,
    trl's per-step logging after it), rewards and sampled tokens are what its reward function saw

Engines alternate within each seed (peftlab, trl, peftlab, trl, ...) so that drift in the
machine's load hits both. A run on a busy machine says little: run it on a quiet one. Writes
the results as JSON to `--out`. `--model PATH` takes any local causal LM with a chat template
(a tiny random Llama for a smoke run). Needs trl: `pip install -e '.[trl]'`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

ENGINES = ("peftlab", "trl")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:smollm2-135m")
    parser.add_argument("--data", default="builtin:compare")
    parser.add_argument("--difficulty", type=int, default=2)
    parser.add_argument("--system", default="", help="system message (experiments/grpo_rank.yaml: empty)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="first steps of each run left out of the timing")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--lora-dropout", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64, help="prompt tokens kept (data.max_length)")
    parser.add_argument("--out", default="results/benchmarks/grpo_engine.json")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error(f"--steps ({args.steps}) must exceed --warmup ({args.warmup}): no step would be timed")
    return args


# ---------------------------------------------------------------- shared set-up


def build_context(args: argparse.Namespace) -> dict[str, Any]:
    """Model source, tokenizer, prompts and the rl settings both engines share."""
    import torch

    from peftlab.config.rl import RlConfig
    from peftlab.data import load_instruction_data
    from peftlab.runtime.models import load_tokenizer, quiet_transformers, resolve_model_source
    from peftlab.tasks.grpo import _conversations, tokenize_prompts

    quiet_transformers()
    torch.set_num_threads(args.threads)
    source = resolve_model_source(args.model)
    tokenizer = load_tokenizer(source)
    data = load_instruction_data(args.data, difficulty=args.difficulty)
    conversations = _conversations(data, data.split("train"), args.system, [])
    split = tokenize_prompts("train", conversations, tokenizer, args.max_length)
    rl = RlConfig(
        num_generations=4,
        max_completion_length=6,
        temperature=1.0,
        top_p=1.0,
        loss_type="dapo",
        beta=0.0,
        epsilon=0.2,
        scale_rewards="group",
        reward="first_number",
        format_weight=0.0,
        probe_prompts=0,
    )
    return {
        "args": args,
        "source": source,
        "tokenizer": tokenizer,
        "pad_id": tokenizer.pad_token_id,
        "conversations": conversations,
        "split": split,
        "rl": rl,
        "batch": 8,  # completions per step: 2 prompts × 4
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def lora(ctx: dict[str, Any], model: Any) -> tuple[Any, Any, Any, Any]:
    """peftlab's `lora` method, its params (r 1, alpha 32, all-linear), the peft `LoraConfig` it builds, its context."""
    from peftlab.methods import ModelContext, get_method
    from peftlab.methods.lora import lora_config

    method = get_method("lora")
    params = method.params(r=1, alpha=32, dropout=ctx["args"].lora_dropout, target_modules="all-linear")
    mctx = ModelContext("CAUSAL_LM", model.config.model_type, total_steps=ctx["args"].steps)
    return method, params, lora_config(params, mctx, model), mctx


def fingerprint(model: Any) -> float:
    """Sum of squares of the trainable (adapter) weights: equal on both sides = the same initial adapter."""
    return float(sum(float(p.detach().double().pow(2).sum()) for p in model.parameters() if p.requires_grad))


def prompt_rows(ctx: dict[str, Any], batches: list[Any]) -> list[int]:
    return [int(i) for batch in batches for i in batch]


# ---------------------------------------------------------------- (a) peftlab


def run_peftlab(ctx: dict[str, Any], seed: int, batches: list[Any]) -> dict[str, Any]:
    from transformers import set_seed

    from peftlab.config import TrainConfig
    from peftlab.runtime.models import load_causal_lm
    from peftlab.runtime.train import TrainSpec, train
    from peftlab.tasks.grpo import Rollout

    args, device = ctx["args"], ctx["device"]
    model = load_causal_lm(ctx["source"], pad_token_id=ctx["pad_id"])
    method, params, _, mctx = lora(ctx, model)
    set_seed(seed)  # as trl does right before it wraps the model
    model = method.prepare(model, params, mctx).to(device)
    init = fingerprint(model)
    rollout = Rollout(ctx["split"], ctx["rl"], ctx["tokenizer"], ctx["pad_id"], device)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=ctx["batch"],
        warmup_ratio=0.0,
        scheduler="constant",
        precision="fp32",
        max_grad_norm=1.0,
        timing_warmup_steps=args.warmup,
    )
    out = train(model, batches, rollout.collate, TrainSpec.of(cfg, cfg.optimizer(args.lr), device, rollout=rollout))
    return {
        "step_times": out.step_times,
        "sampling_times": out.generation_times,
        "rewards": [r["reward"] for r in out.rollout],
        "generated_tokens": out.generated_tokens,
        "init_fingerprint": init,
    }


# ---------------------------------------------------------------- (b) trl


def run_trl(ctx: dict[str, Any], seed: int, batches: list[Any]) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from peftlab.runtime.models import load_causal_lm
    from peftlab.tasks.rewards import check_first_number

    args, device = ctx["args"], ctx["device"]
    cuda = device.startswith("cuda")
    conversations, rl = ctx["conversations"], ctx["rl"]
    rows = prompt_rows(ctx, batches)
    # trl's sampler repeats each prompt num_generations times, in dataset order when not shuffled
    dataset = Dataset.from_list([{"prompt": conversations[i][0], "answer": conversations[i][1]} for i in rows])
    rewards: list[float] = []
    tokens: list[int] = []
    step_times: list[float] = []
    sampling_times: list[float] = []

    def first_number(completions: list[Any], answer: list[str], completion_ids: list[list[int]], **_: Any) -> list:
        """peftlab's reward: 1 when the (stripped) completion's first number is the reference's."""
        texts = [c[0]["content"].strip() if isinstance(c, list) else c.strip() for c in completions]
        got = [float(check_first_number(t, a)[0]) for t, a in zip(texts, answer, strict=True)]
        rewards.append(sum(got) / len(got))
        tokens.append(sum(len(ids) for ids in completion_ids))
        return got

    class Timer(TrainerCallback):
        def on_step_begin(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - self.t0)

    model = load_causal_lm(ctx["source"], pad_token_id=ctx["pad_id"])
    _, _, peft_config, _ = lora(ctx, model)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=ctx["batch"],
            num_generations=rl.num_generations,
            gradient_accumulation_steps=1,
            steps_per_generation=1,
            num_iterations=1,
            max_completion_length=rl.max_completion_length,
            temperature=rl.temperature,
            top_p=rl.top_p,
            top_k=0,
            min_p=None,
            repetition_penalty=1.0,
            beta=rl.beta,
            epsilon=rl.epsilon,
            loss_type=rl.loss_type,
            scale_rewards=rl.scale_rewards,
            mask_truncated_completions=False,
            shuffle_dataset=False,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            max_steps=args.steps,
            gradient_checkpointing=False,
            bf16=False,
            fp16=False,
            use_cpu=not cuda,
            seed=seed,
            data_seed=seed,
            logging_strategy="steps",
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            log_completions=False,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=first_number,
            args=config,
            train_dataset=dataset,
            processing_class=ctx["tokenizer"],
            peft_config=peft_config,
            callbacks=[Timer()],
        )
        init = fingerprint(trainer.model)
        rendered, _, _ = trainer._tokenize_prompts([conversations[i][0] for i in rows])
        same_prompts = [list(ids) for ids in rendered] == [ctx["split"].prompt_ids[i] for i in rows]
        generate = trainer._generate_single_turn

        def timed_generate(*a: Any, **kw: Any) -> Any:  # sampling time, as peftlab's TrainOutcome keeps it
            started = time.perf_counter()
            result = generate(*a, **kw)
            sampling_times.append(time.perf_counter() - started)
            return result

        trainer._generate_single_turn = timed_generate
        trainer.train()
        logged = [h.get("reward") for h in trainer.state.log_history if "reward" in h]
    return {
        "step_times": step_times,
        "sampling_times": sampling_times,
        "rewards": rewards,
        "generated_tokens": tokens,
        "init_fingerprint": init,
        "prompt_tokens_identical": same_prompts,
        "trl_logged_rewards": logged,
        "optimizer": type(
            trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
        ).__name__,
        "eos_token_ids": list(trainer.eos_token_ids),
    }


RUNNERS = {"peftlab": run_peftlab, "trl": run_trl}


# ---------------------------------------------------------------- summary


def t_quantile(df: int) -> float:
    """The two-sided 95% quantile of Student's t with `df` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def summarise(runs: list[dict[str, Any]], seeds: list[int], steps: int, warmup: int) -> dict[str, Any]:
    """Per-run table, speed ratios per seed, the reward curves over seeds and the last-half difference."""
    by = {(r["engine"], r["seed"]): r for r in runs}
    table = []
    for r in runs:
        timed = r["step_times"][warmup:]
        table.append(
            {
                "engine": r["engine"],
                "seed": r["seed"],
                "median_s_per_step": statistics.median(timed),
                "median_sampling_s": statistics.median(r["sampling_times"][warmup:]) if r["sampling_times"] else None,
                "mean_reward": statistics.fmean(r["rewards"]),
                "final3_reward": statistics.fmean(r["rewards"][-3:]),
                "generated_tokens": sum(r["generated_tokens"]),
            }
        )
    ratios = [
        statistics.median(by["trl", s]["step_times"][warmup:])
        / statistics.median(by["peftlab", s]["step_times"][warmup:])
        for s in seeds
    ]
    curves = {
        engine: [mean_sd([by[engine, s]["rewards"][k] for s in seeds]) for k in range(steps)] for engine in ENGINES
    }
    half = steps // 2
    diffs = [
        statistics.fmean(by["peftlab", s]["rewards"][half:]) - statistics.fmean(by["trl", s]["rewards"][half:])
        for s in seeds
    ]
    mean_diff, sd_diff = mean_sd(diffs)
    width = t_quantile(len(diffs) - 1) * sd_diff / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return {
        "table": table,
        "speed_ratio_trl_over_peftlab": {
            "per_seed": dict(zip(map(str, seeds), ratios, strict=True)),
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
        },
        "reward_curves": {
            engine: [{"step": k + 1, "mean": m, "sd": sd} for k, (m, sd) in enumerate(curve)]
            for engine, curve in curves.items()
        },
        "last_half_reward_difference": {
            "steps": [half + 1, steps],
            "peftlab_minus_trl_per_seed": dict(zip(map(str, seeds), diffs, strict=True)),
            "mean": mean_diff,
            "ci95": [mean_diff - width, mean_diff + width],
        },
    }


def show(summary: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """The results as Markdown (printed, and written beside the JSON for the findings page)."""
    lines: list[str] = []
    line = lines.append
    line("\n| engine | seed | median s/step | median sampling s | mean reward | final-3 reward | tokens sampled |")
    line("|---|---:|---:|---:|---:|---:|---:|")
    for row in summary["table"]:
        sampling = row["median_sampling_s"]
        line(
            f"| {row['engine']} | {row['seed']} | {row['median_s_per_step']:.3f} | "
            f"{'' if sampling is None else f'{sampling:.3f}'} | {row['mean_reward']:.3f} | "
            f"{row['final3_reward']:.3f} | {row['generated_tokens']} |"
        )
    speed = summary["speed_ratio_trl_over_peftlab"]
    shown = ", ".join(f"s{s} {r:.2f}" for s, r in speed["per_seed"].items())
    line(
        f"\ntrl / peftlab median s/step: {speed['median']:.2f} (per seed: {shown}; "
        f"range {speed['min']:.2f}–{speed['max']:.2f}); ≥ 1 means peftlab's loop is at least as fast"
    )
    line("\nreward per step, mean ± sd over seeds:\n\n| step | peftlab | trl |\n|---:|---:|---:|")
    for a, b in zip(summary["reward_curves"]["peftlab"], summary["reward_curves"]["trl"], strict=True):
        line(f"| {a['step']} | {a['mean']:.3f} ± {a['sd']:.3f} | {b['mean']:.3f} ± {b['sd']:.3f} |")
    diff = summary["last_half_reward_difference"]
    lo, hi = diff["ci95"]
    line(
        f"\nmean reward over steps {diff['steps'][0]}–{diff['steps'][1]}, peftlab − trl (paired by seed): "
        f"{diff['mean']:+.3f}, 95% t-interval [{lo:+.3f}, {hi:+.3f}] (0 inside: no difference beyond seed noise)"
    )
    checks = [r for r in runs if r["engine"] == "trl"]
    same_tokens = all(r["prompt_tokens_identical"] for r in checks)
    init = {r["seed"]: r["init_fingerprint"] for r in runs if r["engine"] == "peftlab"}
    same_init = all(math.isclose(r["init_fingerprint"], init[r["seed"]], rel_tol=1e-9) for r in checks)
    line(f"checks: prompt tokens identical {same_tokens}; initial adapter identical {same_init}")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()

    import torch
    import transformers
    import trl

    from peftlab.tasks.batching import train_batches

    ctx = build_context(args)
    per_step = ctx["rl"].prompts_per_step(ctx["batch"])
    name = torch.cuda.get_device_name() if ctx["device"] == "cuda" else f"CPU × {torch.get_num_threads()} threads"
    print(
        f"grpo engine: {args.model} + LoRA r=1 all-linear, {per_step} prompts × {ctx['rl'].num_generations} "
        f"completions, {args.steps} steps ({args.warmup} warm-up excluded from timing), seeds {args.seeds}, "
        f"{name}; trl {trl.__version__}, transformers {transformers.__version__}",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        batches = train_batches(ctx["split"], per_step, args.steps, seed, length_grouping=True)
        for engine in ENGINES:  # alternate: peftlab, trl, peftlab, trl, ...
            started = time.perf_counter()
            result = RUNNERS[engine](ctx, seed, batches)
            runs.append({"engine": engine, "seed": seed, "wall_s": time.perf_counter() - started, **result})
            timed = result["step_times"][args.warmup :]
            print(
                f"  seed {seed}: {engine:<7} median {statistics.median(timed):.3f} s/step, "
                f"mean reward {statistics.fmean(result['rewards']):.3f}",
                flush=True,
            )
    summary = summarise(runs, args.seeds, args.steps, args.warmup)
    text = show(summary, runs)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    environment = {
        "device": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }
    out.write_text(json.dumps({"settings": settings, "environment": environment, **summary, "runs": runs}, indent=1))
    header = (
        f"Measured by `python benchmarks/grpo_engine.py` on {name} "
        f"(trl {trl.__version__}, {args.steps} steps, seeds {args.seeds}).\n"
    )
    out.with_suffix(".md").write_text(header + text)
    print(f"\nwrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
