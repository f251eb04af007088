"""Experiment bundles (`peftlab report EXP --bundle OUT`) load with `datasets` and give back the same report; one
report over several sources combines runs only where their config hash and data fingerprint agree (issue 32)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from peftlab.cli.report import main as report_main
from peftlab.records.results import read_record, write_record
from tests.test_report import records_with_predictions

ACCS = {"full": 0.86, "lora": 0.84, "prompt_tuning": 0.70}


def _report(sources: list[Path], out: Path) -> dict[str, str]:
    assert report_main([*map(str, sources), "--out", str(out)]) == 0
    return {name: (out / name).read_text() for name in ("summary.csv", "summary.md", "macros.tex")}


def _split_by_seed(results: Path, parts: dict[str, tuple[int, ...]], root: Path) -> list[Path]:
    """Copy `results` into one folder per part holding only those seeds' records and predictions files."""
    folders = []
    for name, seeds in parts.items():
        folder = root / name / results.name
        (folder / "runs").mkdir(parents=True)
        for path in (results / "runs").glob("*.json"):
            if read_record(path)["seed"] in seeds:
                shutil.copy2(path, folder / "runs" / path.name)
                for beside in (results / "runs").glob(f"{path.stem}.predictions*"):
                    shutil.copy2(beside, folder / "runs" / beside.name)
        folders.append(folder)
    return folders


def test_bundle_loads_with_datasets_and_round_trips_to_the_same_report(tmp_path, capsys):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    results = records_with_predictions(tmp_path / "results" / "exp", ACCS, n=200)
    bundle = tmp_path / "bundle"
    assert report_main([str(results), "--bundle", str(bundle)]) == 0
    assert {p.name for p in bundle.iterdir()} == {"records.parquet", "predictions.parquet", "README.md", "bundle.json"}

    runs = load_dataset("parquet", data_files=str(bundle / "records.parquet"), split="train")
    predictions = load_dataset("parquet", data_files=str(bundle / "predictions.parquet"), split="train")
    assert runs.num_rows == 9 and predictions.num_rows == 9 * 200
    row = runs.filter(lambda r: r["label"] == "lora" and r["seed"] == 1)[0]
    lora = read_record(next((results / "runs").glob("lora-s1-*.json")))
    assert row["metrics.test.accuracy"] == pytest.approx(lora["metrics"]["test"]["accuracy"])
    assert json.loads(row["record"]) == lora
    assert set(predictions.column_names) == {"experiment", "run_id", "split", "id", "gold", "prediction", "correct"}
    assert isinstance(predictions[0]["gold"], int) and isinstance(predictions[0]["correct"], bool)

    card = DatasetCard.load(bundle / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["records", "predictions"]
    assert "load_dataset" in card.text and "Lock" in card.text

    from_folder = _report([results], tmp_path / "from_folder")
    from_bundle = _report([bundle], tmp_path / "from_bundle")
    assert from_bundle == from_folder  # to the digit
    assert "(b) this training recipe" in from_bundle["summary.csv"]  # the crossed statistics: predictions read back


def test_bundle_of_text_answers_and_a_real_sft_run_round_trips(sft_results, tmp_path):
    bundle = tmp_path / "sft_bundle"
    assert report_main([str(sft_results), "--bundle", str(bundle)]) == 0
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["runs"] == len(list((sft_results / "runs").glob("*.json")))
    assert _report([bundle], tmp_path / "b") == _report([sft_results], tmp_path / "f")


def test_an_existing_bundle_folder_is_refused_and_left_alone(tmp_path, capsys):
    results = records_with_predictions(tmp_path / "results" / "exp", {"lora": 0.8}, seeds=(0,), n=20)
    bundle = tmp_path / "taken"
    bundle.mkdir()
    (bundle / "mine.txt").write_text("mine")
    assert report_main([str(results), "--bundle", str(bundle)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err
    assert [p.name for p in bundle.iterdir()] == ["mine.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".taken")]  # no temporary folder left


def test_seeds_run_in_two_places_combine_into_the_rows_of_one_folder(tmp_path):
    """Seeds 0–1 here and seed 2 elsewhere (one of them shared as a bundle) give the table of all three together."""
    results = records_with_predictions(tmp_path / "results" / "exp", ACCS, n=200)
    here, elsewhere = _split_by_seed(results, {"here": (0, 1), "elsewhere": (2,)}, tmp_path / "split")
    bundle = tmp_path / "elsewhere_bundle"
    assert report_main([str(elsewhere), "--bundle", str(bundle)]) == 0

    whole = _report([results], tmp_path / "whole")
    assert _report([here, elsewhere], tmp_path / "folders") == whole
    assert _report([here, bundle], tmp_path / "mixed") == whole
    summary = pd.read_csv(tmp_path / "mixed" / "summary.csv")
    assert summary["runs_ok"].tolist() == [3, 3, 3]  # every combined seed counts


def _variant(source: Path, out: Path, change) -> Path:
    """A copy of `source` (records and predictions) whose records are changed by `change(record)`."""
    shutil.copytree(source, out)
    for path in (out / "runs").glob("*.json"):
        record = read_record(path)
        change(record)
        write_record(out, record)
    return out


def test_sources_whose_data_differ_are_refused_naming_the_difference(tmp_path, capsys):
    results = records_with_predictions(tmp_path / "a" / "exp", {"lora": 0.8}, seeds=(0,), n=50)

    def other_test_set(record):
        record["data"]["fingerprint"] = "0000000000000000"
        record["config"].setdefault("data", {})["test_limit"] = 30
        record["seed"], record["run_id"] = 1, record["run_id"].replace("-s0-", "-s1-")

    other = _variant(results, tmp_path / "b" / "exp", other_test_set)
    for path in (other / "runs").glob("*-s0-*.json"):
        path.unlink()
    out = tmp_path / "combined"
    assert report_main([str(results), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.fingerprint" in err and "config.data.test_limit None vs 30" in err
    assert not out.exists()


def test_sources_whose_config_differs_are_refused_naming_the_difference(tmp_path, capsys):
    results = records_with_predictions(tmp_path / "a" / "exp", {"lora": 0.8}, seeds=(0,), n=50)

    def more_steps(record):
        record["config"]["train"]["steps"] = 300
        record["config_hash"] = "ffffffffffffffff"
        record["seed"], record["run_id"] = 1, record["run_id"].replace("-s0-", "-s1-")

    other = _variant(results, tmp_path / "b" / "exp", more_steps)
    for path in (other / "runs").glob("*-s0-*.json"):
        path.unlink()
    assert report_main([str(results), str(other), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config_hash" in err and "config.train.steps 150 vs 300" in err
    assert not (tmp_path / "c").exists()


def test_sources_from_different_environments_are_footnoted(tmp_path):
    results = records_with_predictions(tmp_path / "a" / "exp", {"lora": 0.8, "full": 0.9}, seeds=(0, 1), n=50)
    here, elsewhere = _split_by_seed(results, {"here": (0,), "elsewhere": (1,)}, tmp_path / "split")

    def newer_peft(record):
        record["env"]["versions"]["peft"] = "0.22.0"

    newer = _variant(elsewhere, tmp_path / "newer" / "exp", newer_peft)
    report = _report([here, newer], tmp_path / "out")
    assert "different environments" in report["summary.md"] and "0.22.0" in report["summary.md"]
