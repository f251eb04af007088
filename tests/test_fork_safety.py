"""Fork safety is enforced: a run is never forked from a process whose torch thread pool is alive.

Each check runs in a fresh interpreter (this pytest process may have computed already), with two
threads so that a parallel op starts an OpenMP pool.
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import torch
torch.set_num_threads(2)
from peftlab.execute.isolation import fork_is_safe
print("before", fork_is_safe(timeout=20))
x = torch.randn(512, 512); x @ x   # the parent computes: torch starts its thread pool
print("after", fork_is_safe(timeout=5))
"""


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_the_probe_tells_a_process_whose_pool_would_deadlock_a_fork():
    result = _python(PROBE)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["before", "True", "after", "False"]


RUN_AFTER_COMPUTING = """
import sys, torch
torch.set_num_threads(2)
from peftlab.config import load_experiment
from peftlab.execute import isolation
from peftlab.planners.grid import make_plan
from peftlab.runtime.workspace import prepare_workspace
exp = load_experiment(sys.argv[1])
spec = make_plan(exp)[0]
ws = prepare_workspace(exp)
x = torch.randn(512, 512); x @ x   # the parent computes before the run: a fork would hang
isolation.PROBE_S = 5.0
record = isolation.run_isolated(ws, spec, (1, 1), quiet=True)
print("STATUS", record.status)
"""


def test_a_run_after_the_parent_computed_still_completes_and_says_why_it_was_not_forked(experiment_file):
    path = experiment_file(steps=2)
    result = subprocess.run(
        [sys.executable, "-c", RUN_AFTER_COMPUTING, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "STATUS ok" in result.stdout
    (line,) = [x for x in result.stderr.splitlines() if "not forked" in x]
    assert "thread pool" in line and "running it in this process" in line
