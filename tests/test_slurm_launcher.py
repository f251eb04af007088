"""`--launcher slurm|local` without a cluster: the `launcher:` block, the one-line errors, the requeue handshake.

The grid through submitit's local executor is tests/test_submitit_local.py; a real single-node
SLURM is tests/test_slurm_smoke.py.
"""

from __future__ import annotations

import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peftlab.config import load_experiment
from peftlab.config.launcher import LauncherConfig
from peftlab.run import main as run_main


def test_the_launcher_block_is_read_and_validated(experiment_file):
    path = experiment_file(
        extra="launcher:\n  tasks: 4\n  partition: gpu\n  time: 30\n  mem: 16G\n  gpus_per_task: 1\n"
        "  array_parallelism: 2\n  sbatch: {account: lab, exclusive: true}\n  setup: [module load cuda]\n"
    )
    cfg = load_experiment(path).launcher
    assert cfg == LauncherConfig(
        tasks=4,
        partition="gpu",
        time=30,
        mem="16G",
        gpus_per_task=1,
        array_parallelism=2,
        sbatch={"account": "lab", "exclusive": True},
        setup=["module load cuda"],
    )
    assert cfg.parallelism() == 2
    assert load_experiment(path, ["launcher.tasks=8"]).launcher.tasks == 8
    assert load_experiment(experiment_file()).launcher is None


@pytest.mark.parametrize(
    ("block", "key", "says"),
    [
        ("launcher:\n  taks: 2\n", "launcher.taks", "did you mean 'tasks'"),
        ("launcher:\n  mem: lots\n", "launcher.mem", "16G"),
        ("launcher:\n  time: 0\n", "launcher.time", "at least 1"),
        ("launcher:\n  tasks: 0\n", "launcher.tasks", "at least 1"),
        ("launcher:\n  sbatch: {--qos: high}\n", "launcher.sbatch.--qos", "without dashes"),
        ("launcher: slurm\n", "launcher", "expected a mapping"),
    ],
)
def test_a_bad_launcher_block_is_one_line_naming_file_and_key(experiment_file, capsys, block, key, says):
    path = experiment_file(extra=block)
    assert run_main([str(path), "--launcher", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {path}: {key}:") and says in err, err
    assert not (path.parent / "results").exists()


def test_missing_sbatch_is_one_line_and_writes_nothing(experiment_file, tmp_path):
    path = experiment_file(extra="launcher:\n  tasks: 2\n")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {**os.environ, "PATH": str(empty_bin)}
    result = subprocess.run(
        [sys.executable, "-m", "peftlab.run", str(path), "--launcher", "slurm"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --launcher slurm: sbatch not found on PATH; submit from a SLURM login node, "
        "or use --launcher local to run the workers on this machine"
    ]
    assert not (tmp_path / "results").exists()


def test_missing_submitit_is_one_line_and_writes_nothing(experiment_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` now raises ImportError
    assert run_main([str(experiment_file()), "--launcher", "local"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --launcher local: needs the submitit package; install it with pip install 'peftlab[slurm]'"
    )
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------ the requeue handshake

FAKE_WORKER = """#!/bin/sh
# stands in for `python -m peftlab.run EXP --join`: says it started, then waits to be stopped
trap 'echo interrupted >> "$LOG"; exit 130' INT
echo "started $*" >> "$LOG"
while true; do sleep 0.1; done
"""


def _fake_python(tmp_path: Path) -> Path:
    script = tmp_path / "fake-python"
    script.write_text(FAKE_WORKER)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_checkpoint_stops_the_worker_like_ctrl_c_and_resubmits_a_fresh_one(tmp_path, monkeypatch):
    """The timeout/preemption path: SLURM's USR2 reaches every process of the step, but the worker
    ignores it; submitit's handler calls `checkpoint`, which interrupts the worker (it hands its run
    back to the queue) and resubmits a fresh worker for the same experiment."""
    import threading

    from submitit.helpers import DelayedSubmission

    from peftlab.execute.join_worker import JoinWorker, WorkerFailedError

    log = tmp_path / "worker.log"
    monkeypatch.setenv("LOG", str(log))
    worker = JoinWorker(str(tmp_path / "exp.yaml"), ["train.steps=2"], str(tmp_path), str(_fake_python(tmp_path)))
    outcome: dict[str, BaseException] = {}

    def call() -> None:
        try:
            worker()
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=call)
    thread.start()
    _wait_for(lambda: log.is_file() and "started" in log.read_text())
    assert log.read_text().split()[1:] == [
        "-m",
        "peftlab.run",
        str(tmp_path / "exp.yaml"),
        "train.steps=2",
        "--join",
        "--quiet",
    ]
    os.kill(worker._process.pid, signal.SIGUSR2)  # what SLURM sends the whole step before the limit
    time.sleep(0.3)
    assert worker._process.poll() is None, "the worker must survive USR2; only submitit's process acts on it"

    resubmission = worker.checkpoint()
    thread.join(timeout=20)
    assert log.read_text().splitlines()[-1] == "interrupted"
    assert isinstance(outcome.get("error"), WorkerFailedError)  # this task's worker ended: code 130
    assert isinstance(resubmission, DelayedSubmission)
    fresh = resubmission.function
    assert isinstance(fresh, JoinWorker) and fresh is not worker and fresh._process is None
    assert (fresh.experiment, fresh.overrides, fresh.cwd) == (worker.experiment, worker.overrides, worker.cwd)
    assert pickle.loads(pickle.dumps(fresh)) == fresh
