"""The `rl:` section (task grpo): rollouts, the verifiable reward and trl's loss, validated torch-free.

The names and defaults follow trl's `GRPOConfig` where it has the knob (`num_generations`,
`max_completion_length`, `temperature`, `top_p`, `beta`, `epsilon`, `epsilon_high`, `loss_type`,
`scale_rewards`), so a trl recipe reads across. `train.batch_size` counts completions per step,
as trl's `per_device_train_batch_size` does: a step samples `batch_size / num_generations` prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.config.schema import build, check, fail
from peftlab.task_specs.grpo import LOSS_TYPES, REWARDS, SCALE_REWARDS


@dataclass
class RlConfig:
    """How each step's completions are sampled, rewarded and turned into a loss (docs/rl.md)."""

    num_generations: int = 4  # completions per prompt: the group the advantages are normalised in
    max_completion_length: int = 8  # tokens per completion, in training and in the greedy evaluation
    temperature: float = 1.0  # sampling temperature (the loss's log-probabilities use it too, as trl's)
    top_p: float = 1.0
    loss_type: str = "dapo"  # trl's default; grpo, bnpo, dr_grpo, dapo
    beta: float = 0.0  # weight of the KL term to the base model (trl's default 0: no reference forward)
    epsilon: float = 0.2  # clipping of the importance ratio (lower side, and upper unless epsilon_high)
    epsilon_high: float | None = None
    scale_rewards: str = "group"  # divide advantages by the group's std (trl's default), the batch's, or none
    reward: str = "first_number"  # the verifiable reward (peftlab/task_specs/grpo.py REWARDS)
    # the column of each row holding the reference answer; the conversational `completion` by default
    answer_column: str = "completion"
    format_weight: float = 0.0  # reward = correct + format_weight × (the answer is in the reward's format)
    few_shot: int = 0  # solved train rows shown before every prompt (as earlier chat turns); taken out of train
    # prompts of the train split sampled with the base model before training: a constant reward is warned about
    probe_prompts: int = 8

    def __post_init__(self) -> None:
        check(
            self.num_generations >= 2,
            "num_generations",
            f"got {self.num_generations}, must be at least 2 (advantages compare completions within a group)",
        )
        check(self.max_completion_length >= 1, "max_completion_length", "must be at least 1")
        check(self.temperature > 0, "temperature", f"got {self.temperature}, must be positive")
        check(0 < self.top_p <= 1, "top_p", f"got {self.top_p}, must be in (0, 1]")
        check(self.loss_type in LOSS_TYPES, "loss_type", f"got {self.loss_type!r}, allowed: {', '.join(LOSS_TYPES)}")
        check(self.beta >= 0, "beta", f"got {self.beta}, must be at least 0")
        check(self.epsilon >= 0, "epsilon", f"got {self.epsilon}, must be at least 0")
        check(self.epsilon_high is None or self.epsilon_high >= 0, "epsilon_high", "must be at least 0 or null")
        allowed = ", ".join(SCALE_REWARDS)
        check(self.scale_rewards in SCALE_REWARDS, "scale_rewards", f"got {self.scale_rewards!r}, allowed: {allowed}")
        check(self.reward in REWARDS, "reward", f"got {self.reward!r}, allowed: {', '.join(REWARDS)}")
        check(self.format_weight >= 0, "format_weight", f"got {self.format_weight}, must be at least 0")
        check(self.few_shot >= 0, "few_shot", f"got {self.few_shot}, must be at least 0")
        check(self.probe_prompts >= 0, "probe_prompts", f"got {self.probe_prompts}, must be at least 0")

    def prompts_per_step(self, batch_size: int) -> int:
        return batch_size // self.num_generations


def parse_rl(raw: Any, origin: str, task: str, batch_size: int, distributed: str | None = None) -> RlConfig | None:
    """The section for task grpo (its defaults when the file has none); refused for any other task."""
    if task != "grpo":
        if raw is not None:
            fail(origin, "rl", f"only task grpo takes an rl: section (this experiment's task is {task!r})")
        return None
    rl = build(RlConfig, raw, origin, "rl")
    if distributed is not None:
        fail(origin, "train.distributed", "task grpo samples on one process; leave train.distributed out")
    if batch_size % rl.num_generations:
        fail(
            origin,
            "train.batch_size",
            f"got {batch_size}: it counts completions per step and must be a multiple of "
            f"rl.num_generations ({rl.num_generations}), e.g. {_multiple(batch_size, rl.num_generations)}",
        )
    return rl


def _multiple(batch_size: int, group: int) -> int:
    """The multiple of `group` nearest below `batch_size` (at least one group)."""
    return group * max(1, batch_size // group)
