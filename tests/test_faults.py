"""A run that diverges, runs out of memory or dies is a recorded result; the experiment goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.cli.run import main
from peftlab.records.record import SCHEMA_VERSION, RunRecord
from peftlab.records.results import read_record, record_path


def cli(args: list[str], prelude: str = "") -> int:
    """The CLI in a fresh process: runs fork, which is only safe where torch has not computed yet."""
    code = f"{prelude}\nfrom peftlab.cli.run import main\nraise SystemExit(main({args!r}))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result.returncode


TWO_METHODS = "  - method: full\n    lr: 1.0e-3\n  - method: lora\n    lr: 1.0e-2\n"


def records(tmp_path: Path) -> dict[str, dict]:
    out = {}
    for path in (tmp_path / "results" / "tiny" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        out[record["method"]] = record
    return out


def test_nan_loss_is_diverged_and_the_next_run_still_runs(experiment_file, tmp_path):
    # a learning rate of 1e30 blows every weight up after one step: the loss is no longer finite
    methods = "  - method: full\n    lr: 1.0e+30\n  - method: lora\n    lr: 1.0e-2\n"
    assert cli([str(experiment_file(methods, steps=4)), "-q", "--no-report"]) == 0
    recs = records(tmp_path)
    assert recs["full"]["status"] == "diverged" and "loss is" in recs["full"]["error"]
    assert recs["lora"]["status"] == "ok"


def test_out_of_memory_is_recorded_as_oom(experiment_file, tmp_path, monkeypatch):
    import torch

    import peftlab.runtime.train

    real_train = peftlab.runtime.train.train
    calls = []

    def train_or_oom(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(peftlab.runtime.train, "train", train_or_oom)
    assert main([str(experiment_file(TWO_METHODS, steps=2)), "-q", "--no-report", "--in-process"]) == 0
    recs = records(tmp_path)
    assert recs["full"]["status"] == "oom" and "out of memory" in recs["full"]["error"]
    assert recs["lora"]["status"] == "ok"


def _sigkill_prelude(proc: Path, oom: bool) -> str:
    """Inside the forked run of `full`: SIGKILL, after the kernel's OOM-kill count rose (`oom`) or not.

    The kernel's /proc is replaced by a folder holding a `vmstat` the test controls; the kill is a
    phase put in front of the recipe's phases.
    """
    (proc / "self").mkdir(parents=True, exist_ok=True)
    (proc / "vmstat").write_text("pgfault 10\noom_kill 4\n")
    bump = f"        open({str(proc / 'vmstat')!r}, 'w').write('oom_kill 5\\n')\n" if oom else ""
    return (
        "import os, signal, pathlib\nimport peftlab.runtime.oom\nimport peftlab.runtime.recipe as r\n"
        f"peftlab.runtime.oom.PROC = pathlib.Path({str(proc)!r})\n"
        "def die(run):\n"
        "    if run.spec.method == 'full':\n"
        f"{bump}"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "r.PHASES = (die, *r.PHASES)\n"
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="run isolation uses fork")
def test_a_sigkill_without_oom_evidence_is_killed_and_runs_again(experiment_file, tmp_path):
    path = str(experiment_file(TWO_METHODS, steps=2))
    assert cli([path, "-q", "--no-report"], _sigkill_prelude(tmp_path / "proc", oom=False)) == 0
    recs = records(tmp_path)
    assert recs["full"]["status"] == "killed" and "SIGKILL" in recs["full"]["error"]
    assert "not known to be out of memory" in recs["full"]["error"]
    assert recs["lora"]["status"] == "ok"
    # the parent built the dead child's record whole: a valid typed record of this schema version
    killed = read_record(record_path(tmp_path / "results" / "tiny", recs["full"]["run_id"]))
    assert isinstance(killed, RunRecord) and killed.schema_version == SCHEMA_VERSION and not killed.finished
    assert killed.config_hash and killed.data.fingerprint and killed.time.started_at and killed.metrics.test is None
    assert cli([path, "-q", "--no-report"]) == 0  # the next invocation runs it again
    assert records(tmp_path)["full"]["status"] == "ok"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="run isolation uses fork")
def test_a_sigkill_after_the_oom_kill_count_rose_is_oom(experiment_file, tmp_path):
    path = str(experiment_file(TWO_METHODS, steps=2))
    assert cli([path, "-q", "--no-report"], _sigkill_prelude(tmp_path / "proc", oom=True)) == 0
    recs = records(tmp_path)
    assert recs["full"]["status"] == "oom" and "OOM-kill count rose (4 → 5)" in recs["full"]["error"]
    assert recs["lora"]["status"] == "ok"


def test_speed_fields_exclude_warmup_and_latency_is_measured(experiment_file, tmp_path):
    assert cli([str(experiment_file(steps=6)), "-q", "--no-report", "train.timing_warmup_steps=2"]) == 0
    (rec,) = records(tmp_path).values()
    speed = rec["speed"]
    assert speed["warmup_steps_excluded"] == 2 and speed["timed_steps"] == 4
    assert speed["train_tokens_per_s"] > 0 and speed["train_samples_per_s"] > 0
    assert 0 < speed["step_time_median_s"] <= speed["step_time_p90_s"]
    assert speed["latency_ms_bs1"] > 0 and speed["latency_ms_bs1_merged"] > 0  # LoRA merges
    mem = rec["memory"]
    assert mem["device"] == "cpu" and mem["train_peak_rss_mb"] >= mem["baseline_rss_mb"] > 0
