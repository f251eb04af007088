"""Sweeps survive SIGKILL: killed at random points and re-run, every run or trial is finished once.

The sweep runs in its own session and the whole process group is killed, as a scheduler or an
OOM-killed terminal would, so the forked run processes die with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peftlab.config import load_experiment
from peftlab.execute.lock import hold_results_lock
from peftlab.records.results import write_record

GRID = "  - method: lora\n    lr: 1.0e-2\n    grid:\n      r: [1, 4]\n"
SEARCH = "search:\n  trials: 3\n  pruner: median\n  space:\n    lora:\n      r: [1, 2, 4, 8]\n"


def cli(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "peftlab.run", str(path), "-q", "--no-report", *args]


def count_files(runs: Path) -> int:
    return len(list(runs.glob("*.json"))) if runs.is_dir() else 0


def kill_at_random(command: list[str], runs: Path, rng: random.Random, kills: int) -> None:
    """Start the sweep and SIGKILL its process group, `kills` times: the first kill waits until a run
    has finished (so the sweep is inside its runs) plus a random delay, the later ones land at a
    random time after start (loading, mid-run, mid-write, between runs: wherever)."""
    for i in range(kills):
        before = count_files(runs)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        started = time.monotonic()
        if i == 0:
            while count_files(runs) == before and proc.poll() is None and time.monotonic() - started < 120:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, 2.0))
        else:
            time.sleep(rng.uniform(2.0, 10.0))
        with contextlib.suppress(ProcessLookupError):  # it may have finished already
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def no_process_left(results: Path) -> None:
    # every process of a killed sweep is gone: the results lock is free again
    handle = hold_results_lock(results, wait_s=10)
    handle.close()


def check_records(runs: Path, expected: int) -> list[dict]:
    assert not list(runs.glob(".*.tmp")), "a half-written record was left behind"
    files = sorted(runs.glob("*.json"))
    recs = [json.loads(f.read_text()) for f in files]  # every record parses
    assert len(recs) == expected, [r["run_id"] for r in recs]
    assert len({r["run_id"] for r in recs}) == expected
    assert all(f.stem == r["run_id"] and r["status"] in ("ok", "pruned") for f, r in zip(files, recs, strict=True))
    return recs


def test_plain_grid_killed_twice_then_resumed_runs_each_run_once(experiment_file, tmp_path):
    path = experiment_file(GRID, steps=2, seeds="[0, 1]")
    results, runs = tmp_path / "results" / "tiny", tmp_path / "results" / "tiny" / "runs"
    kill_at_random(cli(path), runs, random.Random(4), kills=2)
    no_process_left(results)
    final = subprocess.run(cli(path), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    recs = check_records(runs, 4)
    plan_ids = {
        line.split()[1]
        for line in subprocess.run(cli(path, "--dry-run"), capture_output=True, text=True).stdout.splitlines()
        if line.strip()[:1].isdigit()
    }
    assert plan_ids == {r["run_id"] for r in recs}


def test_search_killed_twice_then_resumed_finishes_each_trial_once(experiment_file, tmp_path):
    import optuna

    path = experiment_file(steps=4, extra=SEARCH)
    results, runs = tmp_path / "results" / "tiny", tmp_path / "results" / "tiny" / "runs"
    kill_at_random(cli(path), runs, random.Random(7), kills=2)
    no_process_left(results)
    final = subprocess.run(cli(path), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    url = f"sqlite:///{results / 'study.db'}"
    (summary,) = optuna.study.get_all_study_summaries(url)
    trials = optuna.load_study(study_name=summary.study_name, storage=url).trials
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and not [t for t in trials if t.state.name == "RUNNING"]
    recs = check_records(runs, 3)
    assert {r["run_id"] for r in recs} == {t.user_attrs["run_id"] for t in finished}
    assert all(r["trial"]["state"] == t.state.name for r in recs for t in finished if t.number == r["trial"]["number"])


def _stale_trial(study, run_id: str) -> int:
    trial = study.ask()
    trial.suggest_categorical("r", [1, 2, 4, 8])
    trial.set_user_attr("worker", {"host": os.uname().nodename, "pid": 2**22 + 1, "start": "0"})  # dead
    trial.set_user_attr("run_id", run_id)
    return trial.number


def test_stale_trials_are_finished_from_their_record_or_requeued(experiment_file):
    from peftlab.planners import optuna_search as search

    exp = load_experiment(experiment_file(extra=SEARCH))
    storage = search.open_storage(search.storage_url(exp))
    study = search.load_study(exp, storage)
    with_record = _stale_trial(study, "lora-with-record")
    without = _stale_trial(study, "lora-without-record")
    write_record(
        exp.results_dir(),
        {"run_id": "lora-with-record", "status": "ok", "metrics": {"validation": {"accuracy": 0.75}}},
    )
    notes = search.recover_stale(exp, study, startup=True)
    assert len(notes) == 2
    trials = study.get_trials()
    assert trials[with_record].state.name == "COMPLETE" and trials[with_record].values == [0.75]
    assert trials[without].state.name == "FAIL"
    (queued,) = [t for t in trials if t.state.name == "WAITING"]
    assert queued.user_attrs["retry_of"] == without
    assert search.recover_stale(exp, study, startup=True) == []  # idempotent
    next_trial = study.ask()
    assert next_trial.suggest_categorical("r", [1, 2, 4, 8]) == trials[without].params["r"]  # same params again


def test_a_second_sweep_on_a_busy_results_folder_is_a_one_line_error(experiment_file, tmp_path):
    path = experiment_file()
    lock = hold_results_lock(tmp_path / "results" / "tiny")
    try:
        result = subprocess.run(cli(path), capture_output=True, text=True, timeout=120)
    finally:
        lock.close()
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and f"in use by pid {os.getpid()}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["journal"])
def test_journal_storage_is_accepted(experiment_file, kind):
    from peftlab.planners import optuna_search as search

    exp = load_experiment(experiment_file(extra=SEARCH + f"  storage: {kind}\n"))
    assert search.storage_url(exp).endswith("study.journal")
    study = search.load_study(exp, search.open_storage(search.storage_url(exp)))
    assert study.study_name.startswith("tiny-") and (exp.results_dir() / "study.journal").is_file()
