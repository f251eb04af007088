"""Task grpo: rewards, trl's advantages and loss, one tiny run end to end, and bad input as one line.

The tiny Llama of conftest.py answers at random, so its rewards show the plumbing (rollouts in the
record, the base model's probe, the constant-reward warning, predictions with a reward column), not
learning; the real model's learning is what experiments/grpo_*.yaml measure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.tasks.rewards import check_exact, check_final_number, check_first_number, first_number, score

# ---------------------------------------------------------------- rewards


@pytest.mark.parametrize(
    ("completion", "reference", "expected"),
    [
        ("81", "81", (True, True)),
        ("81.", "81", (True, False)),  # right, but not the number alone
        ("The larger is 81", "81", (True, False)),
        ("37 is smaller than 81", "81", (False, False)),  # the FIRST number is the answer
        ("1,000", "1000", (True, True)),
        ("-3", "-3", (True, True)),
        ("no number", "5", (False, False)),
    ],
)
def test_first_number_reward(completion, reference, expected):
    assert check_first_number(completion, reference) == expected


def test_final_number_reward_reads_gsm8k_answers_and_exact_reads_whole_answers():
    assert check_final_number("so 3 + 4 = 7\n#### 7", "She has 7 apples.\n#### 7") == (True, True)
    assert check_final_number("the answer is 7", "#### 7") == (True, False)
    assert check_final_number("#### 8", "#### 7") == (False, True)
    assert check_exact("Positive.", "positive") == (True, True)
    assert first_number("x 2.50 y") == "2.5"


def test_reward_is_correctness_plus_the_weighted_format_term():
    rewards, correct, in_format = score("first_number", ["81", "it is 81", "12"], ["81", "81", "81"], 0.25)
    assert rewards == [1.25, 1.0, 0.25] and correct == [True, True, False] and in_format == [True, False, True]


# ---------------------------------------------------------------- trl's advantages and loss


def test_advantages_are_trls_group_normalised_rewards():
    import torch

    from peftlab.tasks.grpo import advantages_of

    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    group = advantages_of(rewards, 4, "group")
    first = rewards[:4]
    expected = (first - first.mean()) / (first.std() + 1e-4)  # trl: (r − mean) / (std + 1e-4), unbiased std
    assert torch.allclose(group[:4], expected)
    assert torch.equal(group[4:], torch.zeros(4))  # a constant group has no signal
    assert torch.allclose(advantages_of(rewards, 4, "none")[:4], first - first.mean())
    batch = advantages_of(rewards, 4, "batch")
    assert torch.allclose(batch[:4], (first - first.mean()) / (rewards.std() + 1e-4))


class _Policy(__import__("torch").nn.Module):
    """A causal LM in miniature (an embedding and a head): what `_token_logps` calls, with `logits_to_keep`."""

    def __init__(self, vocab: int = 11, width: int = 6) -> None:
        import torch

        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(vocab, width)
        self.head = torch.nn.Linear(width, vocab)

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        from types import SimpleNamespace

        logits = self.head(self.embed(input_ids))
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_one_pass_loss_is_the_policy_gradient_with_trls_normalisers(loss_type):
    """With one pass per rollout the ratio is 1, so the loss is −A·logp's gradient, normalised as trl says."""
    import torch

    from peftlab.config.rl import RlConfig
    from peftlab.tasks.grpo import Rollout

    rl = RlConfig(num_generations=2, max_completion_length=3, loss_type=loss_type, temperature=0.7)
    model = _Policy()
    ids = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 6, 7, 0], [3, 2, 1, 8, 9], [3, 2, 4, 4, 4]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
    batch = {
        "input_ids": ids,
        "attention_mask": torch.cat([torch.ones(4, 2, dtype=torch.long), mask], dim=1),
        "completion_mask": mask,
        "advantages": torch.tensor([0.7, -0.7, 1.2, -1.2]),
    }
    loss, measured = Rollout(None, rl, None, 0, "cpu").loss(model, batch)  # type: ignore[arg-type]
    loss.backward()
    ours = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    logits = model(ids).logits[:, 1:-1] / 0.7  # positions predicting tokens 2..4 (the completion)
    logp = logits.log_softmax(-1).gather(-1, ids[:, 2:].unsqueeze(-1)).squeeze(-1)
    token = -batch["advantages"].unsqueeze(1) * logp * mask
    if loss_type == "grpo":
        expected = (token.sum(-1) / mask.sum(-1)).mean()
    elif loss_type == "dr_grpo":
        expected = token.sum() / (4 * 3)
    else:
        expected = token.sum() / mask.sum()
    expected.backward()
    for a, p in zip(ours, model.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-6)
    assert measured["entropy"] > 0


# ---------------------------------------------------------------- end to end on the tiny Llama


def _rows(count: int, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)
    words = ["which", "label", "fits", "this", "text"]
    return [{"prompt": " ".join(rng.sample(words, 3)) + " ?", "answer": str(rng.randint(0, 1))} for _ in range(count)]


LORA = "  - method: lora\n    lr: 1.0e-2\n    r: 1\n    alpha: 32\n"


@pytest.fixture
def rl_experiment(tmp_path: Path, tiny_llama: Path):
    """An experiment file for task grpo on the tiny Llama and {prompt, answer} rows; returns a function taking edits."""
    data = tmp_path / "data"
    data.mkdir()
    for split, count in (("train", 40), ("validation", 6), ("test", 8)):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(count, len(split))))

    def make(methods: str = LORA, rl: dict | None = None, model: Path | None = None, **train_keys) -> Path:
        path = tmp_path / "rl.yaml"
        train = {"steps": 3, "batch_size": 4, "eval_every": 3, "eval_batch_size": 8, "timing_warmup_steps": 1}
        settings = {"answer_column": "answer", "num_generations": 2, "max_completion_length": 3, "probe_prompts": 4}
        block = lambda keys: "".join(f"  {k}: {v}\n" for k, v in keys.items())  # noqa: E731
        path.write_text(
            f"name: tiny_rl\nmodel: {model or tiny_llama}\ntask: grpo\ndata:\n  source: {data}\n  max_length: 32\n"
            f"rl:\n{block({**settings, **(rl or {})})}train:\n{block({**train, **train_keys})}seeds: [0]\n"
            f"output_dir: {tmp_path / 'results'}\nmethods:\n{methods}"
        )
        return path

    return make


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "peftlab.run", *args], capture_output=True, text=True, timeout=600)


def test_a_tiny_grpo_run_records_rollouts_generation_speed_and_rewards(rl_experiment, tmp_path):
    from peftlab.records.results import read_record

    path = rl_experiment(
        "  - method: zero_shot\n  - method: lora\n    lr: 1.0e-2\n    r: 1\n    alpha: 32\n"
        "  - method: full\n    lr: 1.0e-3\n",
        rl={"beta": 0.04},
    )
    result = run_cli(str(path), "-q", "--no-report")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "results" / "tiny_rl" / "runs").glob("*.json"))
    records = {r.label: r for r in (read_record(p) for p in runs)}
    assert set(records) == {"zero_shot", "lora", "full"} and all(r.status == "ok" for r in records.values())
    for label in ("lora", "full"):
        record = records[label]
        assert record.task.name == "grpo" and record.task.primary == "pass_at_1"
        assert [p["step"] for p in record.metrics.rollout] == [1, 2, 3]
        point = record.metrics.rollout[0]
        assert 0 <= point["reward"] <= 1 and point["generated_tokens"] > 0 and "kl" in point  # beta > 0: KL term
        assert record.metrics.base_rollout["prompts"] == 4
        assert record.speed.generation_tokens_per_s > 0 and 0 < record.speed.generation_share < 1
        test = record.metrics.test
        assert 0 <= test["pass_at_1"] <= 1 and test["kl_to_base"] >= -1e-6 and test["entropy"] > 0
    assert records["zero_shot"].metrics.test["kl_to_base"] == pytest.approx(0, abs=1e-6)  # its own base
    lines = [json.loads(x) for x in _predictions(records["lora"], tmp_path)]
    assert {"gold", "prediction", "correct", "reward"} <= set(lines[0]) and len(lines) >= 8


def _predictions(record, tmp_path: Path) -> list[str]:
    import gzip

    file = tmp_path / "results" / "tiny_rl" / "runs" / f"{record.run_id}.predictions.jsonl.gz"
    with gzip.open(file, "rt") as handle:
        return [x for x in handle.read().splitlines() if '"test"' in x]


def test_a_constant_base_reward_is_warned_about_before_training(rl_experiment):
    # the random tiny model never writes "0" or "1": every group's reward is 0
    result = run_cli(str(rl_experiment(steps=1, timing_warmup_steps=0)), "-q", "--no-report")
    assert result.returncode == 0, result.stderr[-3000:]
    warning = [line for line in result.stderr.splitlines() if "reward is constant" in line]
    assert warning and "4 prompts × 2 completions" in warning[0] and "data.difficulty" in warning[0]


def test_few_shot_rows_become_earlier_turns_and_leave_training(rl_experiment):
    from peftlab.config import load_experiment
    from peftlab.runtime.workspace import prepare_workspace

    ws = prepare_workspace(load_experiment(rl_experiment(rl={"few_shot": 2})))
    assert len(ws.splits["train"]) == 38
    text = ws.tokenizer.decode(ws.splits["test"].prompt_ids[0])
    assert text.count("assistant") == 3  # two solved examples, then the question's generation prompt


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        ({"rl": {"num_generations": 1}}, "rl.num_generations", "at least 2"),
        ({"batch_size": 5}, "train.batch_size", "multiple of rl.num_generations"),
        ({"rl": {"loss_type": "ppo"}}, "rl.loss_type", "dapo"),
        ({"rl": {"reward": "accuracy"}}, "rl.reward", "first_number"),
    ],
)
def test_bad_rl_settings_are_one_line_errors_before_anything_is_written(rl_experiment, tmp_path, edit, key, words):
    path = rl_experiment(**edit)
    result = run_cli(str(path), "-q")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert key in line and words in line and str(path) in line
    assert not (tmp_path / "results").exists()


def test_a_missing_answer_column_and_an_encoder_model_are_one_line_errors(rl_experiment, tmp_path, tiny_bert):
    path = rl_experiment()
    path.write_text(path.read_text().replace("answer_column: answer", "answer_column: solution"))
    result = run_cli(str(path), "-q")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "rl.answer_column 'solution'" in line and "prompt, answer" in line
    assert not (tmp_path / "results").exists()

    encoder = rl_experiment(model=tiny_bert)
    result = run_cli(str(encoder), "-q")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "encoder-only" in line and "causal" in line
    assert not (tmp_path / "results").exists()


def test_an_rl_section_belongs_to_task_grpo_only(experiment_file):
    path = experiment_file(extra="rl:\n  num_generations: 4\n")
    result = run_cli(str(path), "--dry-run")
    assert result.returncode == 2
    assert "only task grpo takes an rl: section" in result.stderr
