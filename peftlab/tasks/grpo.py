"""Task grpo: reinforcement learning from verifiable rewards on peftlab's own loop, with trl's loss.

One optimiser step (peftlab/runtime/train.py, through the `Rollout` hooks below):

1. **Rollout.** The step's prompts (`train.batch_size / rl.num_generations` of them, the same
   prompts in the same order for every method: they come from the seed-fixed batches every task
   uses) are each sampled `rl.num_generations` times (temperature, top-p, at most
   `rl.max_completion_length` tokens), with dropout off and no gradient.
2. **Reward.** Each completion is checked against its row's reference (peftlab/tasks/rewards.py).
3. **Advantages.** Rewards minus the group's mean, divided by the group's std (`scale_rewards:
   group`, trl's default), the batch's (`batch`) or not at all (`none`), as trl computes them.
4. **Loss.** trl's `GRPOTrainer._compute_loss` for one pass per rollout (its default
   `num_iterations: 1`): the importance ratio exp(logp − logp.detach()) is 1 with the policy
   gradient's derivative, clipped to [1 − ε, 1 + ε_high]; token losses aggregated as `grpo`
   (per sequence, then mean), `bnpo` (over the batch's tokens), `dr_grpo` (over batch × max length)
   or `dapo` (over the step's tokens; trl's default); plus `beta` × the k3 estimate of KL to the
   base model, whose log-probabilities come from the same model with its adapter disabled (a
   frozen copy only for full fine-tuning, which has no adapter to disable).

Why not trl's `GRPOTrainer` itself: it brings its own loop (accelerate, its own data order and
timing), where every other task here runs under peftlab's loop, measured one way; the benchmark
`benchmarks/grpo_engine.py` runs both on the same prompts and shows the speed ratio and the reward
curves side by side (docs/rl.md).

Evaluation is greedy: `pass_at_1`, `reward`, the format rate and the answers' length, per example
kept; on the test split also the policy's entropy and KL(policy ‖ base) on its own greedy answers.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from peftlab.errors import ModelSourceError
from peftlab.task_specs import get_task_spec
from peftlab.tasks.batching import attention_mask, pad_rows
from peftlab.tasks.rewards import score
from peftlab.tasks.splits import prepare_data

SAMPLES_KEPT = 8


@dataclass
class RlSplit:
    """Chat-rendered prompt tokens (generation prompt added) and the references their answers are checked against."""

    name: str
    prompt_ids: list[list[int]]
    references: list[str]
    prompts: list[str] = field(default_factory=list)  # the last user turn, for the stored samples
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompt_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.prompt_ids), dtype=np.int64, count=len(self.prompt_ids))


def check_decoder(location: str, model: str) -> None:
    """An encoder-only model (BERT, RoBERTa, ...) cannot sample answers: one line before anything runs."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    config = AutoConfig.from_pretrained(location)
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        raise ModelSourceError(
            f"model: {model} is an encoder-only {config.model_type} model; task grpo samples answers and needs a "
            "causal (decoder) LM, e.g. builtin:smollm2-135m or a hub id such as Qwen/Qwen2.5-0.5B-Instruct"
        )


def _conversations(data: Any, frame: Any, system: str | None, shots: list[tuple[list[dict], str]]) -> list[Any]:
    """(prompt messages, reference) per row: conversations as they are, labelled texts through the instruction."""
    from peftlab.tasks.sft import with_system

    if data.kind == "labels":
        rows = [
            ([{"role": "user", "content": data.prompt_text(t)}], data.label_names[label])
            for t, label in zip(frame["text"], frame["label"], strict=True)
        ]
    else:
        rows = [data.conversation(text) for text in frame["text"]]
    examples = [m for messages, answer in shots for m in (*messages, {"role": "assistant", "content": answer})]
    return [(with_system([*examples, *messages], system), answer) for messages, answer in rows]


def tokenize_prompts(name: str, conversations: list[Any], tokenizer: Any, max_length: int) -> RlSplit:
    """Chat-render each prompt with the generation prompt; prompts over `max_length` keep their end."""
    if not getattr(tokenizer, "chat_template", None):
        raise ModelSourceError(
            "task grpo needs a tokenizer with a chat template; this model's has none "
            "(use an instruct/chat model, e.g. builtin:smollm2-135m)"
        )
    from peftlab.records.predictions import example_ids

    texts = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m, _ in conversations]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return RlSplit(
        name=name,
        prompt_ids=[list(x[-max_length:]) for x in ids],
        references=[a for _, a in conversations],
        prompts=[m[-1]["content"] for m, _ in conversations],
        ids=example_ids(conversations),
    )


# ---------------------------------------------------------------- one step: rollout, reward, advantages, loss


def _completion_mask(completions: Any, eos_id: int) -> Any:
    """1 up to and including each row's first EOS (trl's completion mask), 0 after it."""
    import torch

    is_eos = completions == eos_id
    first = torch.full((completions.size(0),), completions.size(1), dtype=torch.long)
    has = is_eos.any(dim=1)
    first[has] = is_eos.int().argmax(dim=1)[has]
    positions = torch.arange(completions.size(1)).expand(completions.size(0), -1)
    return (positions <= first.unsqueeze(1)).long()


def advantages_of(rewards: Any, group: int, scale: str) -> Any:
    """trl's advantages: reward − its group's mean, over the group's std (`group`), the batch's or 1 (`none`)."""
    grouped = rewards.view(-1, group)
    centred = (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)
    if scale == "group":
        std = grouped.std(dim=1).repeat_interleave(group)
    elif scale == "batch":
        std = rewards.std().expand_as(rewards)
    else:
        return centred
    return centred / (std + 1e-4)


def _token_logps(model: Any, input_ids: Any, attention: Any, completion_len: int, temperature: float) -> Any:
    """(log-probabilities of the completion tokens, the logits they came from), logits divided by temperature."""
    logits = model(input_ids=input_ids, attention_mask=attention, logits_to_keep=completion_len + 1).logits
    logits = logits[:, -completion_len - 1 : -1, :].float() / temperature
    targets = input_ids[:, -completion_len:]
    logps = logits.log_softmax(dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logps, logits


def _entropy(logits: Any, mask: Any) -> float:
    """Mean next-token entropy (nats) over the masked positions."""
    logp = logits.log_softmax(dim=-1)
    per_token = -(logp.exp() * logp).sum(-1)
    return float((per_token * mask).sum() / mask.sum().clamp(min=1))


def base_model_of(model: Any, reference: Any = None) -> contextlib.AbstractContextManager[Any]:
    """A context giving the base model: the same model with its adapter disabled, or `reference` (full fine-tuning)."""
    if reference is not None:
        return contextlib.nullcontext(reference)
    if getattr(model, "peft_config", None) and hasattr(model, "disable_adapter"):

        @contextlib.contextmanager
        def disabled() -> Any:
            with model.disable_adapter():
                yield model

        return disabled()
    raise RuntimeError("no base model to compare with: the model has no adapter to disable and no reference copy")


@dataclass
class Rollout:
    """The task's hooks into the one training loop (train.TrainSpec.rollout / .loss); see the module docstring."""

    split: RlSplit
    rl: Any  # config.rl.RlConfig
    tokenizer: Any
    pad_id: int
    device: str
    reference: Any = None  # a frozen copy of the base model, only for full fine-tuning with beta > 0

    def prompts_per_batch(self, batch_size: int) -> int:
        return self.rl.prompts_per_step(batch_size)

    def collate(self, indices: Any) -> dict[str, Any]:
        """The step's prompts, left-padded, and which rows they are (their references are looked up by row)."""
        import torch

        seqs = [self.split.prompt_ids[i] for i in indices]
        return {
            "input_ids": pad_rows(seqs, self.pad_id, "left"),
            "attention_mask": attention_mask(seqs, "left"),
            "rows": torch.as_tensor(np.asarray(indices, dtype=np.int64)),
        }

    def sample(self, model: Any, prompts: dict[str, Any], greedy: bool = False) -> tuple[Any, Any, list[str]]:
        """(completion ids, their mask, their texts): `num_generations` samples per prompt, or one greedy answer."""
        import torch

        from peftlab.tasks.sft import _unwrap

        was_training = model.training
        model.eval()
        width = prompts["input_ids"].size(1)
        kwargs: dict[str, Any] = (
            {"do_sample": False}
            if greedy
            else {
                "do_sample": True,
                "temperature": self.rl.temperature,
                "top_p": self.rl.top_p,
                "top_k": 0,
                "num_return_sequences": self.rl.num_generations,
            }
        )
        with torch.inference_mode():
            out = _unwrap(model).generate(
                input_ids=prompts["input_ids"].to(self.device),
                attention_mask=prompts["attention_mask"].to(self.device),
                max_new_tokens=self.rl.max_completion_length,
                pad_token_id=self.pad_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **kwargs,
            )
        model.train(was_training)
        completions = out[:, width:].cpu()
        if completions.size(1) == 0:  # nothing generated (cannot happen with max_new_tokens ≥ 1, kept safe)
            completions = torch.full((out.size(0), 1), self.tokenizer.eos_token_id, dtype=torch.long)
        mask = _completion_mask(completions, self.tokenizer.eos_token_id)
        texts = self.tokenizer.batch_decode(completions * mask + self.pad_id * (1 - mask), skip_special_tokens=True)
        return completions, mask, [t.strip() for t in texts]

    def collect(self, model: Any, prompts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
        """One rollout: the training batch (prompt + completion, masks, advantages) and what it measured."""
        import torch

        group = self.rl.num_generations
        completions, mask, texts = self.sample(model, prompts)
        rows = prompts["rows"].repeat_interleave(group)
        references = [self.split.references[int(r)] for r in rows]
        rewards_list, correct, in_format = score(self.rl.reward, texts, references, self.rl.format_weight)
        rewards = torch.tensor(rewards_list, dtype=torch.float32)
        advantages = advantages_of(rewards, group, self.rl.scale_rewards)
        grouped = rewards.view(-1, group)
        prompt_ids = prompts["input_ids"].repeat_interleave(group, dim=0)
        prompt_mask = prompts["attention_mask"].repeat_interleave(group, dim=0)
        batch = {
            "input_ids": torch.cat([prompt_ids, completions], dim=1),
            "attention_mask": torch.cat([prompt_mask, mask], dim=1),
            "completion_mask": mask,
            "advantages": advantages,
        }
        if self.rl.beta > 0:
            batch["ref_logps"] = self._reference_logps(model, batch)
        stats = {
            "reward": float(rewards.mean()),
            "reward_std": float(grouped.std(dim=1).mean()),
            "correct": float(np.mean(correct)),
            "format_rate": float(np.mean(in_format)),
            "zero_std_fraction": float((grouped.std(dim=1) == 0).float().mean()),
            "completion_tokens": float(mask.sum(dim=1).float().mean()),
            "generated_tokens": int(mask.sum()),
        }
        return batch, stats

    def _reference_logps(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch

        width = batch["completion_mask"].size(1)
        with torch.inference_mode(), base_model_of(model, self.reference) as base:
            logps, _ = _token_logps(
                base,
                batch["input_ids"].to(self.device),
                batch["attention_mask"].to(self.device),
                width,
                self.rl.temperature,
            )
        return logps.detach().cpu()

    def loss(self, model: Any, batch: dict[str, Any]) -> tuple[Any, dict[str, float]]:
        """trl's GRPO loss of one rollout (one pass: old log-probabilities are the current ones, detached)."""
        import torch

        rl = self.rl
        mask = batch["completion_mask"].float()
        width = mask.size(1)
        logps, logits = _token_logps(model, batch["input_ids"], batch["attention_mask"], width, rl.temperature)
        ratio = torch.exp(logps - logps.detach())
        advantages = batch["advantages"].unsqueeze(1)
        high = rl.epsilon_high if rl.epsilon_high is not None else rl.epsilon
        clipped = torch.clamp(ratio, 1 - rl.epsilon, 1 + high)
        per_token = -torch.min(ratio * advantages, clipped * advantages)
        measured: dict[str, float] = {"entropy": _entropy(logits.detach(), mask)}
        if rl.beta > 0:
            ref = batch["ref_logps"]
            kl = torch.exp(ref - logps) - (ref - logps) - 1
            per_token = per_token + rl.beta * kl
            measured["kl"] = float((kl.detach() * mask).sum() / mask.sum().clamp(min=1))
        if rl.loss_type == "grpo":
            loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
        elif rl.loss_type == "dr_grpo":
            loss = (per_token * mask).sum() / (per_token.size(0) * rl.max_completion_length)
        else:  # bnpo, and dapo over the step's tokens (one micro-batch per step: the same normaliser)
            loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
        return loss, measured

    def warning(self, probe: dict[str, float] | None) -> str | None:
        """What to say before training when the base model's probe rollout gives GRPO nothing to learn from."""
        return constant_reward_warning(probe, self.rl.num_generations)

    def probe(self, model: Any, count: int, batch_size: int) -> dict[str, float] | None:
        """The base model's rollout on the first `count` train prompts, before any step: is there a signal to learn?"""
        if count <= 0:
            return None
        rows = np.arange(min(count, len(self.split)))
        per = max(1, self.prompts_per_batch(batch_size))
        parts = [self.collect(model, self.collate(rows[i : i + per]))[1] for i in range(0, len(rows), per)]
        weights = np.array([p["generated_tokens"] for p in parts], dtype=float)
        keys = ("reward", "reward_std", "correct", "format_rate", "zero_std_fraction", "completion_tokens")
        return {"prompts": len(rows), **{k: float(np.mean([p[k] for p in parts])) for k in keys}} | {
            "generated_tokens": int(weights.sum())
        }


def constant_reward_warning(probe: dict[str, float] | None, group: int) -> str | None:
    """The warning when every group of the base model's probe rollout had one reward: GRPO has nothing to learn."""
    if probe is None or probe["zero_std_fraction"] < 1.0:
        return None
    return (
        f"peftlab: warning: the base model's reward is constant over the probe batch ({probe['prompts']} prompts × "
        f"{group} completions: mean reward {probe['reward']:.3f}, every group's std 0); GRPO's advantages are all 0 "
        "and it learns nothing. Make the task easier (data.difficulty), show solved examples (rl.few_shot), "
        "or start from a warm-started model"
    )


# ---------------------------------------------------------------- evaluation


def evaluate_split(model: Any, split: RlSplit, ctx: Any) -> dict[str, Any]:
    """Greedy answers to every prompt of `split`, scored by the reward; entropy and KL to base on the test split."""
    from peftlab.records.predictions import outcomes

    rl = ctx.rl
    rollout = Rollout(split, rl, ctx.tokenizer, ctx.pad_id, ctx.device)
    started = time.perf_counter()
    answers: list[str] = [""] * len(split)
    lengths = np.zeros(len(split))
    entropy_sum = kl_sum = 0.0
    tokens_scored = 0
    measure_kl = split.name == "test"
    order = np.argsort(split.lengths, kind="stable")
    with ctx.autocast():
        for start in range(0, len(order), ctx.batch_size):
            idx = order[start : start + ctx.batch_size]
            prompts = rollout.collate(idx)
            completions, mask, texts = rollout.sample(model, prompts, greedy=True)
            for i, text, n in zip(idx, texts, mask.sum(dim=1).tolist(), strict=True):
                answers[i], lengths[i] = text, n
            if measure_kl:
                e, k, n = _entropy_and_kl(model, prompts, completions, mask, ctx)
                entropy_sum, kl_sum, tokens_scored = entropy_sum + e, kl_sum + k, tokens_scored + n
    elapsed = time.perf_counter() - started
    rewards, correct, in_format = score(rl.reward, answers, split.references, rl.format_weight)
    scores: dict[str, Any] = {
        "pass_at_1": float(np.mean(correct)),
        "reward": float(np.mean(rewards)),
        "format_rate": float(np.mean(in_format)),
        "completion_tokens": float(lengths.mean()),
        "n": len(split),
        "samples_per_s": len(split) / elapsed if elapsed > 0 else None,
        "tokens_per_s": float(lengths.sum() + split.lengths.sum()) / elapsed if elapsed > 0 else None,
        "samples": [
            {"prompt": split.prompts[i], "expected": split.references[i], "generated": answers[i]}
            for i in range(min(SAMPLES_KEPT, len(split)))
        ],
        "examples": {
            **outcomes(split.ids, split.references, answers, correct),
            "reward": [float(r) for r in rewards],
        },
    }
    if measure_kl and tokens_scored:
        scores["entropy"] = entropy_sum / tokens_scored
        scores["kl_to_base"] = kl_sum / tokens_scored if kl_sum == kl_sum else None
    return scores


def _entropy_and_kl(model: Any, prompts: Any, completions: Any, mask: Any, ctx: Any) -> tuple[float, float, int]:
    """Sums over the answer tokens of the policy's entropy and of KL(policy ‖ base) (full next-token distributions)."""
    import torch

    ids = torch.cat([prompts["input_ids"], completions], dim=1).to(ctx.device)
    attn = torch.cat([prompts["attention_mask"], mask], dim=1).to(ctx.device)
    width, m = completions.size(1), mask.to(ctx.device).float()
    with torch.inference_mode():
        _, logits = _token_logps(model, ids, attn, width, 1.0)
        logp = logits.log_softmax(-1)
        entropy = float((-(logp.exp() * logp).sum(-1) * m).sum())
        try:
            with base_model_of(model, ctx.reference) as base:
                _, base_logits = _token_logps(base, ids, attn, width, 1.0)
        except RuntimeError:
            return entropy, float("nan"), int(m.sum())
        kl = (logp.exp() * (logp - base_logits.log_softmax(-1))).sum(-1)
        return entropy, float((kl * m).sum()), int(m.sum())


class GrpoTask:
    """RL from verifiable rewards; see the module docstring."""

    spec = get_task_spec("grpo")
    name = spec.name
    peft_task_type = spec.peft_task_type
    latency_examples = 8
    compares_with_base = True  # the recipe hands the base model to the test evaluation (KL to base)

    def prepare_data(self, experiment: Any, tokenizer: Any, base_dir: Any) -> tuple[Any, dict[str, Any]]:
        from peftlab.tasks.sft import instruction_data

        cfg, rl = experiment.data, experiment.rl
        check_decoder(tokenizer.name_or_path, experiment.model)
        data = instruction_data(cfg, base_dir, completion_column=rl.answer_column)
        shots: list[Any] = []
        if rl.few_shot:
            train = data.split("train")
            if rl.few_shot >= len(train):
                from peftlab.errors import ConfigError

                left = f"({len(train)} train rows)"
                raise ConfigError(f"rl.few_shot: {rl.few_shot} solved examples leave no train prompt {left}")
            shots = [pair for pair in _conversations(data, train.iloc[: rl.few_shot], None, [])]
            data = _without_first_train_rows(data, rl.few_shot)

        def tokenize(frame: Any) -> RlSplit:
            return tokenize_prompts("", _conversations(data, frame, cfg.system, shots), tokenizer, cfg.max_length)

        data, splits = prepare_data(data, tokenize)
        for name, split in splits.items():
            split.name = name
        return data, splits

    def load_model(self, source: Any, data: Any, load_kwargs: dict[str, Any], pad_token_id: int | None) -> Any:
        from peftlab.runtime.models import load_causal_lm

        return load_causal_lm(source, load_kwargs, pad_token_id=pad_token_id)

    def head_modules(self, model: Any) -> tuple[str, ...]:
        return ()

    def unquantized_modules(self, source: Any, data: Any) -> tuple[str, ...]:
        return ("lm_head",)

    def collate(self, split: RlSplit, indices: Any, pad_id: int, padding_side: str) -> dict[str, Any]:
        """Prompts only (the latency probe's forward and a calibration pass read these)."""
        seqs = [split.prompt_ids[i] for i in indices]
        return {"input_ids": pad_rows(seqs, pad_id, "left"), "attention_mask": attention_mask(seqs, "left")}

    def evaluate(self, model: Any, split: RlSplit, ctx: Any) -> dict[str, Any]:
        return evaluate_split(model, split, ctx)

    def preload(self) -> None:
        return None

    def rollout(self, split: RlSplit, rl: Any, tokenizer: Any, pad_id: int, device: str, reference: Any) -> Rollout:
        """The loop's hooks for this run (train.TrainSpec.rollout)."""
        return Rollout(split, rl, tokenizer, pad_id, device, reference)


def _without_first_train_rows(data: Any, count: int) -> Any:
    """`data` with its first `count` train rows (the few-shot examples) taken out of training."""
    import dataclasses

    return dataclasses.replace(data, train=data.train.iloc[count:].reset_index(drop=True))


TASK = GrpoTask()
