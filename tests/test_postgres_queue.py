"""Many hosts, one search, on a real PostgreSQL server: a worker killed mid-trial is retried by another.

Three `--join` workers in their own process groups pose as three hosts (PEFTLAB_WORKER_HOST), so
the pid check cannot see each other's deaths and only Optuna's heartbeats can. One is SIGKILLed,
with its run, while it holds a trial; after the grace period (8 s) another worker fails that trial
(once) and runs its grid point again. The server is started by the test (tests/pg_server.py);
without server binaries the test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[dev]' installs it)")

from pg_server import PASSWORD, start_server


@pytest.fixture(scope="module")
def postgres():
    try:
        server = start_server()
    except RuntimeError as err:  # no binaries and no way to install them here
        pytest.skip(str(err))
    yield server
    server.stop()


def _worker(path: Path, host: str) -> subprocess.Popen:
    env = {**os.environ, "PEFTLAB_WORKER_HOST": host}
    return subprocess.Popen(
        [sys.executable, "-m", "peftlab.run", str(path), "--join", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: the kill takes the worker and its run, nothing else
    )


def _finish(workers: dict[str, subprocess.Popen], timeout: float) -> tuple[dict[str, str], dict[str, int]]:
    """Each worker's output and exit code; one still running after `timeout` is killed and shown."""
    outputs, deadline = {}, time.monotonic() + timeout
    for host, worker in workers.items():
        try:
            outputs[host] = worker.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            outputs[host] = worker.communicate()[0]
            pytest.fail(f"worker {host} did not finish in {timeout}s:\n{outputs[host][-3000:]}")
    return outputs, {host: worker.returncode for host, worker in workers.items()}


def _held_trial(study, results: Path):
    """A trial some worker holds mid-run: RUNNING, its run named, no record yet."""
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get("run_id")
        if trial.state.name == "RUNNING" and run_id and not (results / "runs" / f"{run_id}.json").exists():
            return trial
    return None


def test_a_worker_killed_mid_trial_on_one_host_is_retried_by_another(postgres, experiment_file, tmp_path):
    import optuna

    from peftlab.config import load_experiment
    from peftlab.planners.optuna_search import load_study, open_storage

    extra = (
        f"search:\n  sampler: grid\n  trials: 3\n  storage: {postgres.url}\n"
        "  space:\n    lora:\n      r: [1, 2, 4]\n"
        "queue:\n  heartbeat_interval: 1\n  grace_period: 8\n"
    )
    path = experiment_file(steps=2, extra=extra)
    exp = load_experiment(path)
    results = exp.results_dir()
    workers = {host: _worker(path, host) for host in ("host-a", "host-b", "host-c")}
    study = load_study(exp, open_storage(postgres.url))
    deadline, victim = time.monotonic() + 120, None  # three workspaces load at once on a slow CI machine
    while victim is None and time.monotonic() < deadline:
        held = _held_trial(study, results)
        if held is not None:
            victim = held
            os.killpg(workers[held.user_attrs["worker"]["host"]].pid, signal.SIGKILL)
        time.sleep(0.1)
    if victim is None:  # show why: the workers' own words
        for worker in workers.values():
            os.killpg(worker.pid, signal.SIGKILL)
        said = {host: worker.communicate()[0][-2000:] for host, worker in workers.items()}
        pytest.fail("no worker ever held a trial; workers said:\n" + "\n".join(f"{h}: {o}" for h, o in said.items()))
    killed_host = victim.user_attrs["worker"]["host"]
    outputs, codes = _finish(workers, timeout=600)
    assert codes.pop(killed_host) == -signal.SIGKILL
    assert set(codes.values()) == {0}, outputs

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["r"] for t in complete) == [1, 2, 4]  # every grid point exactly once
    assert study._storage.get_trial(victim._trial_id).state.name == "FAIL"
    # the victim's grid point is made again by another host: by the retry trial the heartbeat check
    # enqueued, or (under load, seen once) by the grid sampler re-asking the unfinished point first,
    # which leaves the retry WAITING; either way exactly once (checked above)
    (retry,) = [t for t in complete if t.params == victim.params]
    assert retry.user_attrs["worker"]["host"] != killed_host
    print(
        f"\nkilled {killed_host} holding trial {victim.number} {victim.params}; "
        f"retried as trial {retry.number} by {retry.user_attrs['worker']['host']}"
    )

    files = sorted((results / "runs").glob("*.json"))
    recs = [json.loads(p.read_text()) for p in files]  # none torn: every record parses
    counted = [r for r in recs if not r["trial"].get("taken_over")]  # a late heartbeat's run, set aside
    assert sorted(r["run_id"] for r in counted) == sorted(t.user_attrs["run_id"] for t in complete)
    assert all(r["status"] == "ok" for r in counted) and not list((results / "runs").glob(".*.tmp"))
    assert not (results / "runs" / f"{victim.user_attrs['run_id']}.json").exists()
    on_disk = [p.read_text() for p in files] + [(results / "search.json").read_text(), *outputs.values()]
    assert not [text for text in on_disk if PASSWORD in text]  # the password is in no record, file or log
