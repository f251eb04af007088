"""Search: the `search:` block validates like the rest, trials are ordinary runs, pruning and workers work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.config import load_experiment
from peftlab.errors import ConfigError

SEARCH = """search:
  sampler: {sampler}
  trials: {trials}
  pruner: {pruner}
  space:
    lora:
      r: [1, 2, 4]
      alpha_ratio: [1.0, 2.0]
      lr: {{low: 1.0e-3, high: 3.0e-2, log: true}}
      target_modules: [q, qv]
"""


def search_block(sampler: str = "tpe", trials: int = 3, pruner: str = "none") -> str:
    return SEARCH.format(sampler=sampler, trials=trials, pruner=pruner)


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "peftlab.run", *args], capture_output=True, text=True, timeout=timeout)


def study_trials(results: Path) -> list:
    import optuna

    (summary,) = optuna.study.get_all_study_summaries(f"sqlite:///{results / 'study.db'}")
    return optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{results / 'study.db'}").trials


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (search_block(sampler="bayes"), "search.sampler: got 'bayes', allowed: tpe, random, grid"),
        (search_block().replace("      r: [1, 2, 4]", "      rank: [1, 2]"), "search.space.lora.rank: not a hyper"),
        (search_block().replace("[q, qv]", "[q, query]"), "search.space.lora.target_modules[1]: got 'query'"),
        (search_block(pruner="median") + "  objectives: [val_accuracy, trainable_params]\n", "pruning needs a single"),
        (search_block() + "  objectives: [test_accuracy]\n", "select on validation"),
        (search_block(sampler="grid", trials=3), "grid search needs every searched hyperparameter as a list"),
        (search_block() + "  storage: study.db\n", "search.storage: got 'study.db'"),
        (search_block(pruner="{type: median, lower: 1}"), "search.pruner.lower: unknown option for the median"),
    ],
)
def test_search_block_errors_are_one_line(experiment_file, block, expected):
    path = experiment_file(extra=block)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert expected in str(info.value) and "\n" not in str(info.value) and str(info.value).startswith(str(path))


def test_search_space_merges_defaults_and_alpha_replaces_ratio(experiment_file):
    exp = load_experiment(experiment_file(extra=search_block()))
    space = exp.search.space["lora"]
    assert space["r"] == {"type": "categorical", "choices": [1, 2, 4]}
    assert space["lr"]["log"] and space["target_modules"]["choices"] == ["q", "qv"]
    exp = load_experiment(experiment_file(extra="search:\n  space:\n    lora:\n      alpha: [8, 16]\n      lr: null\n"))
    assert set(exp.search.space["lora"]) == {"r", "alpha"}  # default r; alpha replaces alpha_ratio; lr fixed


def test_search_dry_run_imports_neither_torch_nor_optuna(experiment_file):
    path = experiment_file(extra=search_block(pruner="median"))
    code = (
        "import sys\nfrom peftlab.cli.run import main\n"
        f"assert main([{str(path)!r}, '--dry-run']) == 0\n"
        "assert 'torch' not in sys.modules and 'optuna' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "tpe sampler, 3 trials" in result.stdout and "pruner median" in result.stdout
    assert "target_modules   one of q, qv" in result.stdout and "study.db" in result.stdout


def test_search_trials_are_runs_and_an_always_pruner_prunes(experiment_file, tmp_path):
    # a threshold no accuracy reaches prunes every trial at its first intermediate evaluation
    path = experiment_file(steps=4, extra=search_block(trials=2, pruner="{type: threshold, lower: 1.1}"))
    result = run_cli(str(path), "-q", "--no-report")
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results" / "tiny"
    trials = study_trials(results)
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    recs = records(results)
    assert len(recs) == 2 and {r["status"] for r in recs} == {"pruned"}
    for rec in recs:
        assert rec["trial"]["state"] == "PRUNED" and rec["trial"]["study"].startswith("tiny-")
        assert [p["step"] for p in rec["metrics"]["curve"]] == [2]  # stopped at the first evaluation
        hp, params = rec["hyperparameters"], rec["trial"]["params"]
        assert hp["r"] == params["r"] and hp["alpha"] == params["alpha_ratio"] * params["r"]  # alpha = ratio × r
    again = run_cli(str(path), "-q", "--no-report")
    assert again.returncode == 0 and len(study_trials(results)) == 2  # a finished study runs nothing more


def test_two_workers_share_one_study(experiment_file, tmp_path):
    path = experiment_file(steps=2, extra=search_block(trials=4))
    result = run_cli(str(path), "-q", "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results" / "tiny"
    trials = study_trials(results)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4 and not [t for t in trials if t.state.name == "RUNNING"]
    assert len({t.user_attrs["worker"]["pid"] for t in complete}) == 2  # both workers ran trials
    recs = records(results)
    assert len(recs) == 4 and {r["trial"]["number"] for r in recs} == {t.number for t in complete}
    assert all(r["status"] == "ok" and r["trial"]["state"] == "COMPLETE" for r in recs)
    share = max(1, (os.cpu_count() or 1) // 2)  # the workers split the cores instead of each taking all
    assert {r["env"]["device"]["torch_threads"] for r in recs} == {share}
    best = json.loads((results / "search.json").read_text())["best"]
    assert best and best[0]["test_accuracy"] is not None
    assert "best trial" in result.stdout and (results / "summary.csv").is_file()


def test_the_report_of_a_search_reads_its_trials_off_the_records_without_opening_the_study(experiment_file):
    from peftlab.planners.optuna_search import OptunaSearch, study_name
    from peftlab.records.results import write_record

    exp = load_experiment(experiment_file(extra=search_block()))
    name = study_name(exp)
    for run_id, study in [("mine-1", name), ("mine-2", name), ("older-study", "tiny-00000000")]:
        write_record(exp.results_dir(), {"run_id": run_id, "status": "ok", "trial": {"number": 0, "study": study}})
    write_record(exp.results_dir(), {"run_id": "plain-run", "status": "ok"})
    assert OptunaSearch(exp).run_ids() == {"mine-1", "mine-2"}
    assert not (exp.results_dir() / "study.db").exists()  # the study was never opened
