"""`--launcher slurm|local` without a cluster: the `launcher:` block, the one-line errors, the requeue handshake.

The grid through submitit's local executor is tests/test_submitit_local.py; a real single-node
SLURM is tests/test_slurm_smoke.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.cli.run import main as run_main
from peftlab.config import load_experiment
from peftlab.config.launcher import LauncherConfig


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


HANDSHAKE = """
import os, pickle, signal, sys, threading, time
from pathlib import Path
from peftlab.cli import join_worker
from peftlab.cli.join_worker import JoinWorker

join_worker.STOP_GRACE_S = 5.0
log = Path(os.environ["LOG"])
worker = JoinWorker(sys.argv[1], ["train.steps=2"], sys.argv[2], sys.argv[3])

def handler(signum, frame):  # what submitit does on USR2: checkpoint, dump, requeue, exit
    fresh = worker.checkpoint().function
    print("FRESH", pickle.loads(pickle.dumps(fresh)) == fresh, fresh is not worker, fresh._process is None,
          (fresh.experiment, fresh.overrides, fresh.cwd) == (worker.experiment, worker.overrides, worker.cwd))
    sys.exit(3)

def warn():  # SLURM: USR2 to every process of the step, then (here) the handler's own signal
    while not (log.is_file() and "started" in log.read_text()):
        time.sleep(0.05)
    os.kill(worker._process.pid, signal.SIGUSR2)
    time.sleep(0.3)
    print("ALIVE", worker._process.poll() is None, flush=True)
    os.kill(os.getpid(), signal.SIGUSR1)

signal.signal(signal.SIGUSR1, handler)
threading.Thread(target=warn, daemon=True).start()
worker()
"""


def test_checkpoint_stops_the_worker_like_ctrl_c_and_resubmits_a_fresh_one(tmp_path):
    """The timeout/preemption path as submitit drives it: SLURM's USR2 reaches every process of
    the step, but the worker ignores it; submitit's handler, in the task's main thread while it
    waits for the worker, calls `checkpoint`, which interrupts the worker (it hands its run back
    to the queue) and returns a fresh worker to resubmit. A subprocess with a timeout, because a
    handler that waits on the worker the main thread is waiting on can deadlock."""
    log = tmp_path / "worker.log"
    experiment = str(tmp_path / "exp.yaml")
    result = subprocess.run(
        [sys.executable, "-c", HANDSHAKE, experiment, str(tmp_path), str(_fake_python(tmp_path))],
        capture_output=True,
        text=True,
        env={**os.environ, "LOG": str(log)},
        timeout=30,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.split() == ["ALIVE", "True", "FRESH", "True", "True", "True", "True"], result.stdout
    lines = log.read_text().splitlines()
    assert lines[0].split()[1:] == ["-m", "peftlab.run", experiment, "train.steps=2", "--join", "--quiet"]
    assert lines[-1] == "interrupted"


def test_each_worker_gets_its_share_of_the_cores_as_omp_threads(monkeypatch):
    """Workers sharing a node must not each start a thread per core (they spin against each other)."""
    from peftlab.cli.join_worker import JoinWorker

    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        monkeypatch.delenv(name, raising=False)
    assert "OMP_NUM_THREADS" not in JoinWorker("e.yaml", [], "/").env()  # nothing known: torch's default
    assert JoinWorker("e.yaml", [], "/", threads=3).env()["OMP_NUM_THREADS"] == "3"  # --launcher local's share
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "1")  # SLURM allotted one CPU (no --cpus-per-task)
    assert JoinWorker("e.yaml", [], "/").env()["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert JoinWorker("e.yaml", [], "/").env()["OMP_NUM_THREADS"] == "4"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's own setting wins
    assert JoinWorker("e.yaml", [], "/").env()["OMP_NUM_THREADS"] == "2"
