"""The CLI end to end on a tiny model: records, summary, figure; a re-run skips finished runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.records.predictions import read_predictions

METHODS = "  - method: full\n    lr: 1.0e-3\n  - method: lora\n    lr: 1.0e-2\n  - method: prompt_tuning\n"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "peftlab.run", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_experiment_writes_records_summary_and_figures_then_skips(experiment_file, tmp_path):
    path = experiment_file(METHODS, steps=4, seeds="[0, 1]")
    first = run_cli(str(path), "-q")
    assert first.returncode == 0, first.stderr[-2000:]
    results = tmp_path / "results" / "tiny"
    records = sorted((results / "runs").glob("*.json"))
    assert len(records) == 6
    for file in records:
        rec = json.loads(file.read_text())
        assert rec["status"] == "ok", rec.get("error")
        assert rec["data"]["fingerprint"] and rec["config_hash"] and rec["env"]["versions"]["torch"]
        assert 0.0 <= rec["metrics"]["test"]["accuracy"] <= 1.0
        assert [p["step"] for p in rec["metrics"]["curve"]] == [2, 4]
        assert rec["params"]["trainable"] > 0 and rec["size"]["saved_bytes"] > 0
        assert rec["speed"]["train_tokens_per_s"] > 0 and rec["memory"]["peak_mb"] > 0
        assert rec["speed"]["warmup_steps_excluded"] == 3 and rec["speed"]["timed_steps"] == 1
    assert {json.loads(f.read_text())["method"] for f in records} == {"full", "lora", "prompt_tuning"}
    ids = set()
    for file in records:  # per-example predictions beside each record, paired on the same example ids
        rec = json.loads(file.read_text())
        read = read_predictions(results / "runs", rec)  # checks the record's sha256
        assert rec["predictions"]["splits"] == {"validation": 48, "test": 48} and set(read) == {"validation", "test"}
        test = read["test"]
        assert test.correct.mean() == pytest.approx(rec["metrics"]["test"]["accuracy"])
        assert sorted(test.gold) == sorted(i % 2 for i in range(48))  # the fixture's labels (split shuffled by hash)
        ids.add(tuple(test.ids))
    assert len(ids) == 1 and len(set(next(iter(ids)))) == 48  # the same 48 distinct ids in every method and seed
    assert "(a) these trained models" in (results / "summary.md").read_text()  # the questions are named
    summary = (results / "summary.csv").read_text()
    assert summary.splitlines()[0].startswith("method,") and len(summary.strip().splitlines()) == 4
    assert "test acc" in (results / "summary.md").read_text()
    for stem in ("metric_vs_trainable_params", "training_curves"):
        for ext in ("png", "pdf"):
            assert (results / "figures" / f"{stem}.{ext}").stat().st_size > 1000

    mtimes = {f: f.stat().st_mtime_ns for f in records}
    second = run_cli(str(path), "-q")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "6 of 6 runs already finished" in second.stdout
    assert {f: f.stat().st_mtime_ns for f in records} == mtimes

    dry = run_cli(str(path), "--dry-run")
    assert dry.stdout.count("(finished, will skip)") == 6


def test_failed_run_is_recorded_and_the_experiment_goes_on(experiment_file, tmp_path):
    # AdaLoRA with rank 0 fails inside the run, in its rank allocation (target names that match nothing no
    # longer get that far: they are a config error before any run); the next run still runs
    methods = "  - method: adalora\n    init_r: 0\n  - method: ia3\n"
    result = run_cli(str(experiment_file(methods, steps=2)), "-q", "--no-report")
    assert result.returncode == 1  # a failed run is reported through the exit code
    statuses = {
        json.loads(f.read_text())["method"]: json.loads(f.read_text())
        for f in (tmp_path / "results" / "tiny" / "runs").glob("*.json")
    }
    assert statuses["adalora"]["status"] == "failed" and "Error: " in statuses["adalora"]["error"]
    assert "Traceback" in statuses["adalora"]["traceback"]
    assert statuses["ia3"]["status"] == "ok"
    # the screen ends with one line saying what failed and where its traceback is
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("peftlab: 1 of 2 runs did not finish (failed); first: adalora seed 0: ")
    assert f"{statuses['adalora']['run_id']}.json" in last


def test_target_modules_that_match_nothing_are_one_line_before_any_run(experiment_file, tmp_path):
    methods = "  - method: ia3\n  - method: lora\n    target_modules: [q_proj, value]\n"
    result = run_cli(str(experiment_file(methods, steps=2)), "-q", "--no-report")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert "methods.lora.target_modules: 'q_proj' matches no layer" in line
    assert "linear layers: query, key, value, dense" in line  # what the model has, to copy from
    assert not list((tmp_path / "results").rglob("*.json"))  # nothing ran, nothing half-written


def test_a_clean_experiment_ends_without_a_failure_line(experiment_file):
    result = run_cli(str(experiment_file("  - method: ia3\n", steps=2)), "-q", "--no-report")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "did not finish" not in result.stdout


def test_unknown_model_source_is_a_one_line_error(experiment_file, tmp_path):
    path = experiment_file()
    text = path.read_text().replace("model: /", "model: ./missing/", 1)
    path.write_text(text)
    result = run_cli(str(path))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: model './missing/") and len(result.stderr.strip().splitlines()) == 1


def test_unreachable_hub_model_suggests_the_builtin_source(experiment_file):
    result = run_cli(str(experiment_file()), "model=no-such-org/no-such-model")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not load from the Hugging Face hub" in lines[0]
    assert "builtin:minilm-l6" in lines[0]
