"""Reinforcement learning from verifiable rewards (GRPO): a causal LM rewarded for answers that check out.

Each optimiser step samples `rl.num_generations` completions per prompt, scores them with the
task's verifiable reward (the answer compared with the row's reference, plus an optional format
term), normalises the rewards within each prompt's group into advantages, and takes trl's GRPO /
DAPO policy-gradient loss (peftlab/tasks/grpo.py; the `rl:` section in peftlab/config/rl.py).
Held-out prompts are scored greedily: `pass_at_1` (the share whose answer is right, the primary
score) and `reward` (the mean reward, format term included), per example, so the crossed
statistics resample them like any accuracy. The final test evaluation also measures the policy's
entropy and its KL divergence to the base model on its own greedy completions.
"""

from peftlab.task_specs import MetricChoice, MetricSpec, TaskSpec, register

_OUTCOMES = ("gold", "prediction", "correct", "reward")

SPEC = register(
    TaskSpec(
        name="grpo",
        summary="RL from verifiable rewards: group-sampled completions, advantages within the group, trl's GRPO loss",
        runtime="peftlab.tasks.grpo",
        peft_task_type="CAUSAL_LM",
        model_class="AutoModelForCausalLM",
        head="the pretrained LM head (no fresh module)",
        metrics=(
            MetricSpec(
                "pass_at_1",
                "max",
                "share of held-out prompts whose greedy answer is right (pass@1)",
                short="pass@1",
                statistic="mean:correct",
                display=("pass@1", "Pass@1", "PassAtOne"),
                words="pass@1",
            ),
            MetricSpec(
                "reward",
                "max",
                "mean reward of the greedy answers (correctness + rl.format_weight × format)",
                short="reward",
                statistic="mean:reward",
                display=("reward", "Reward", "Reward"),
                words="test reward",
            ),
            MetricSpec("format_rate", "max", "share of greedy answers in the reward's format", curve=False),
            MetricSpec("completion_tokens", "min", "mean length of the greedy answers, in tokens", fmt=".1f"),
            MetricSpec("entropy", "max", "policy's mean next-token entropy on its greedy answers (nats)", curve=False),
            MetricSpec(
                "kl_to_base", "min", "mean KL(policy ‖ base) per answer token, on the greedy answers", curve=False
            ),
        ),
        primary="pass_at_1",
        per_example=_OUTCOMES,
        predictions=(
            '{"split", "id", "gold": reference answer, "prediction": greedy answer, "correct": bool, "reward": float}'
        ),
        targets="answers",
        metric_choices=(
            MetricChoice("pass_at_1", "pass_at_1", _OUTCOMES),
            MetricChoice("reward", "reward", _OUTCOMES),
        ),
    )
)

# the verifiable rewards `rl.reward` may name (peftlab/tasks/rewards.py computes them), with what each compares
REWARDS = {
    "first_number": "the first number of the answer equals the reference's number (format: the answer is that number)",
    "final_number": "GSM8K's final number (after ####, else the last number) of both (format: the answer has ####)",
    "exact": "the normalised whole answer equals the reference (format: one line)",
}
# trl's loss formulations peftlab's loop implements (GRPOConfig.loss_type), and reward scalings (scale_rewards)
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
