"""Search modes end to end: the grid sampler, hyperband, a multi-objective Pareto front, and Ctrl-C.

Each test runs the real CLI in a fresh process (the runner forks per trial, which must not happen
from a process that has already computed with torch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from test_search import records, run_cli, study_trials

GRID_HYPERBAND = """search:
  sampler: grid
  trials: 4
  pruner: {type: hyperband, min_resource: 2, reduction_factor: 2}
  space:
    lora:
      r: [1, 4]
      target_modules: [q, qv]
"""

MULTI = """search:
  sampler: random
  trials: 3
  objectives: [val_accuracy, trainable_params]
  space:
    lora:
      r: [1, 2, 4, 8]
      lr: {low: 1.0e-3, high: 3.0e-2, log: true}
"""


def test_grid_sampler_covers_each_cell_once_under_hyperband(experiment_file, tmp_path):
    path = experiment_file(steps=4, extra=GRID_HYPERBAND)
    result = run_cli(str(path), "-q", "--no-report")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study_trials(tmp_path / "results" / "tiny")
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4 and not [t for t in trials if t.state.name == "RUNNING"]
    cells = {(t.params["r"], t.params["target_modules"]) for t in finished}
    assert cells == {(1, "q"), (1, "qv"), (4, "q"), (4, "qv")}  # the whole grid, no cell twice
    recs = records(tmp_path / "results" / "tiny")
    assert sorted((r["hyperparameters"]["r"], r["hyperparameters"]["target_modules"]) for r in recs) == sorted(cells)


def test_multi_objective_study_records_values_and_draws_the_pareto_front(experiment_file, tmp_path):
    path = experiment_file(steps=2, extra=MULTI)
    result = run_cli(str(path), "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results" / "tiny"
    recs = [r for r in records(results) if r["status"] == "ok"]
    assert len(recs) == 3
    for rec in recs:
        values = rec["trial"]["values"]
        assert values == {
            "val_accuracy": rec["metrics"]["validation"]["accuracy"],
            "trainable_params": rec["params"]["trainable"],
        }
        assert rec["trial"]["directions"] == {"val_accuracy": "maximize", "trainable_params": "minimize"}
    best = json.loads((results / "search.json").read_text())["best"]
    front = {b["number"] for b in best}
    assert front, "a multi-objective study has a non-empty Pareto front"
    # the front is exactly the non-dominated trials, recomputed here from the records
    points = {
        r["trial"]["number"]: (r["trial"]["values"]["val_accuracy"], -r["trial"]["values"]["trainable_params"])
        for r in recs
    }
    dominated = {n for n, p in points.items() for q in points.values() if q[0] >= p[0] and q[1] >= p[1] and q != p}
    assert front == set(points) - dominated
    assert (results / "figures" / "optuna_pareto.png").is_file()


def test_ctrl_c_stops_cleanly_and_the_rerun_finishes_each_trial_once(experiment_file, tmp_path):
    path = experiment_file(steps=6, extra=MULTI.replace("trials: 3", "trials: 4"))
    results = tmp_path / "results" / "tiny"
    runs = results / "runs"
    command = [sys.executable, "-m", "peftlab.run", str(path), "-q", "--no-report"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    started = time.monotonic()
    while not (runs.is_dir() and any(runs.glob("*.json"))) and proc.poll() is None and time.monotonic() - started < 180:
        time.sleep(0.1)
    assert proc.poll() is None, "the search finished before it could be interrupted"
    time.sleep(1.0)  # inside the next trial
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err and "Traceback" not in err
    assert not list(runs.glob(".*.tmp")), "a half-written record was left behind"
    assert not [t for t in study_trials(results) if t.state.name == "RUNNING"]

    again = run_cli(str(path), "-q", "--no-report")
    assert again.returncode == 0, again.stderr[-3000:]
    trials = study_trials(results)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4 and not [t for t in trials if t.state.name == "RUNNING"]
    recs = records(results)
    assert {r["run_id"] for r in recs} == {t.user_attrs["run_id"] for t in finished}
    assert len(recs) == 4


def test_pareto_helper_handles_mixed_directions():
    from peftlab.reporting.figures import non_dominated

    points = [(0.8, 100.0), (0.7, 10.0), (0.6, 50.0), (0.8, 200.0)]
    assert non_dominated(points, (True, False)) == [True, True, False, False]


def test_ctrl_c_inside_a_finalizer_is_not_reported_but_other_finalizer_errors_are(capsys, monkeypatch):
    """A KeyboardInterrupt that lands in a `__del__` (garbage collection) prints no traceback beside "interrupted"."""
    import gc

    from peftlab.cli.run import _quiet_interrupted_finalizers

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    _quiet_interrupted_finalizers()

    class Raises:
        def __init__(self, error: BaseException) -> None:
            self.error = error

        def __del__(self) -> None:
            raise self.error

    Raises(KeyboardInterrupt())
    gc.collect()
    assert "Traceback" not in capsys.readouterr().err
    Raises(ValueError("a real bug"))
    gc.collect()
    assert "a real bug" in capsys.readouterr().err
