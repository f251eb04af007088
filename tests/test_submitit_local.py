"""`--launcher local`: a grid through submitit's local executor, 2 tasks of `--join` workers, each run once.

The same code path as `--launcher slurm` (a submitit job array of `JoinWorker`s sharing the
experiment's queue) with processes on this machine instead of sbatch.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from peftlab.config import load_experiment
from peftlab.planners.grid import make_plan


def run_in_own_session(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run the launcher in its own session and kill that whole session afterwards: submitit's local
    tasks outlive the process that submitted them by design, and a failed test must not leave
    workers training in the background."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


SIX_RUNS = "  - method: lora\n    lr: 1.0e-2\n    grid: {r: [2, 4, 8]}\n"


def test_a_grid_through_the_local_executor_gives_every_record_exactly_once(experiment_file, tmp_path):
    path = experiment_file(SIX_RUNS, steps=2, seeds="[0, 1]", extra="launcher:\n  tasks: 2\n  time: 10\n")
    planned = {spec.run_id: spec for spec in make_plan(load_experiment(path))}
    assert len(planned) == 6
    result = run_in_own_session(
        [sys.executable, "-m", "peftlab.run", str(path), "--launcher", "local", "--no-report"], tmp_path, timeout=240
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"submitted local jobs \d+, \d+: 2 task\(s\)", result.stdout), result.stdout
    assert "6/6 records, 0/2 task(s) not ended" in result.stdout, result.stdout

    results = tmp_path / "results" / "tiny"
    records = {p.stem: json.loads(p.read_text()) for p in (results / "runs").glob("*.json")}
    assert set(records) == set(planned)
    assert {r["status"] for r in records.values()} == {"ok"}
    # exactly once: each run was finished by exactly one worker, across both tasks' logs
    logs = [p.read_text() for p in (results / "slurm").rglob("*_log.out")]
    assert len(logs) == 2, sorted(p.name for p in (results / "slurm").rglob("*"))
    for spec in planned.values():
        made = sum(len(re.findall(rf"✓ \[\d+/\d+\] {re.escape(spec.label)} s{spec.seed}:", log)) for log in logs)
        assert made == 1, f"{spec.label} seed {spec.seed} was made {made} times"
