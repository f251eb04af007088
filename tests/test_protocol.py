"""The tuned protocol (issue 12, item 5): each method's lr tuned on validation at seeds[0], then every seed on test."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.cli.run import main
from peftlab.config import load_experiment
from peftlab.errors import ConfigError

PROTOCOL = "protocol:\n  tune:\n    trials: 2\n    lr_factor: 10\n"


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("protocol:\n  tune:\n    trails: 3\n", "protocol.tune.trails: unknown key; allowed: trials, lr_factor"),
        ("protocol: fair\n", "protocol: got 'fair', allowed: hand_picked, tuned"),
        ("protocol:\n  tune:\n    lr_factor: 1\n", "protocol.tune.lr_factor: got 1.0, must be above 1"),
        ("protocol:\n  tune:\n    space:\n      lora:\n        rank: [2, 4]\n", "protocol.tune.space.lora.rank: not a"),
        ("protocol:\n  tune:\n    space:\n      full: {}\n", "protocol.tune.space.full: no method labelled"),
    ],
)
def test_bad_protocol_is_one_line_error(experiment_file, block, expected, capsys):
    path = experiment_file(extra=block)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert expected in message and "\n" not in message and message.startswith(str(path))
    assert main([str(path), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_protocol_switch_builds_an_lr_study_around_each_methods_lr(experiment_file):
    methods = "  - method: lora\n    lr: 1.0e-2\n  - method: full\n    lr: 1.0e-3\n"
    exp = load_experiment(experiment_file(methods, extra="protocol: tuned\n"))
    assert exp.protocol.trials == 4 and exp.protocol.lr_factor == 10
    lora, full = exp.protocol.searches["lora"], exp.protocol.searches["full"]
    assert lora.space["lora"]["lr"]["log"] and lora.sampler == "tpe"
    assert math.isclose(lora.space["lora"]["lr"]["low"], 1e-3) and math.isclose(lora.space["lora"]["lr"]["high"], 1e-1)
    assert set(lora.space["lora"]) == {"lr"} and math.isclose(full.space["full"]["lr"]["high"], 1e-2)
    declared = PROTOCOL + "    space:\n      lora:\n        r: [2, 4]\n"
    exp = load_experiment(experiment_file(methods, extra=declared))
    assert exp.protocol.searches["lora"].space["lora"]["r"] == {"type": "categorical", "choices": [2, 4]}
    assert exp.protocol.searches["lora"].trials == 2


def run_cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "peftlab.run", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tuned_protocol_tunes_at_first_seed_then_runs_the_choice_at_every_seed(experiment_file):
    path = experiment_file(seeds="[3, 5]", extra=PROTOCOL + "    space:\n      lora:\n        r: [2, 4]\n")
    results = load_experiment(path).results_dir()
    out = run_cli(str(path), "-q")
    runs = records(results)
    trials = [r for r in runs if r.get("trial")]
    final = [r for r in runs if not r.get("trial")]
    assert len(trials) == 2 and {r["seed"] for r in trials} == {3}  # tuned at seeds[0] only
    assert all(1e-3 <= r["hyperparameters"]["lr"] <= 1e-1 and r["status"] == "ok" for r in trials)
    best = max(r["metrics"]["validation"]["accuracy"] for r in trials)  # chosen on validation
    assert len(final) == 2 and sorted(r["seed"] for r in final) == [3, 5]
    (lr,) = {r["hyperparameters"]["lr"] for r in final}
    assert lr in {r["hyperparameters"]["lr"] for r in trials if r["metrics"]["validation"]["accuracy"] == best}
    for record in final:
        block = record["protocol"]
        assert block["tuned"] and block["trials"] == 2 and block["seed"] == 3
        assert block["chosen"] == {"lr": lr, "r": record["hyperparameters"]["r"]}  # the declared space too
        assert block["value"] == best and block["objective"] == "val_accuracy"
        assert record["metrics"]["test"]["accuracy"] is not None
    summary = (results / "summary.md").read_text()
    assert "tuned on validation (val_accuracy) at seed 3 with 2 TPE trials" in summary
    assert f"lora lr={lr:.3g}, r=" in summary and "lora[t" not in summary  # final rows only, not the trials
    assert "lora: chose lr=" in out and "2 of 2 runs" not in out
    macros = (results / "macros.tex").read_text()  # the paper says how the lr was chosen, from the records
    assert "tuned on validation (val\\_accuracy) with 2 TPE trials at seed 3;" in macros
    assert "hand-picked" not in macros

    before = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    again = run_cli(str(path), "-q", "--no-report")
    assert "2 of 2 runs already finished" in again
    assert {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")} == before  # nothing re-ran


def test_protocol_dry_run_shows_both_phases_without_torch_or_optuna(experiment_file):
    methods = "  - method: lora\n    lr: 1.0e-2\n  - zero_shot\n"
    path = experiment_file(methods, seeds="[0, 1]", extra=PROTOCOL)
    code = (
        "import sys\nfrom peftlab.cli.run import main\n"
        f"assert main([{str(path)!r}, '--dry-run']) == 0\n"
        "assert 'torch' not in sys.modules and 'optuna' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "phase 1: per method, 2 TPE trials" in result.stdout and "lr float log-uniform [0.001, 0.1]" in result.stdout
    assert "zero_shot (zero_shot): not trained, runs as written" in result.stdout
    assert "phase 2: each method's best trial × seeds [0, 1] (4 runs)" in result.stdout
