"""Every shipped experiment file loads: a key renamed or a check added cannot silently break one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "experiments").glob("*.yaml"))


def test_the_shipped_experiments_include_the_rl_ones():
    assert {"grpo_rank.yaml", "grpo_methods.yaml", "grpo_gsm8k_qwen.yaml"} <= {f.name for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_experiment_file_loads(path):
    from peftlab.config import load_experiment

    experiment = load_experiment(path)
    assert experiment.methods and experiment.name
    if experiment.task == "grpo":  # batch_size counts completions: whole groups per step
        assert experiment.rl is not None and experiment.train.batch_size % experiment.rl.num_generations == 0
