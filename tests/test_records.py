"""Run records round-trip, are written atomically, and flatten into a DataFrame."""

from __future__ import annotations

import json
import math

import pytest

from peftlab.cli.report import ci95, summarise
from peftlab.records.record import SCHEMA_VERSION
from peftlab.records.results import (
    finished_record,
    load_records,
    read_record,
    record_path,
    records_frame,
    write_record,
)


def record(run_id: str, status: str = "ok", acc: float = 0.8, label: str = "lora", seed: int = 0) -> dict:
    return {
        "run_id": run_id,
        "experiment": "demo",
        "label": label,
        "method": label,
        "seed": seed,
        "status": status,
        "metrics": {
            "test": {"accuracy": acc, "f1_macro": acc - 0.01},
            "validation": {"accuracy": acc},
            "curve": [{"step": 1, "val_accuracy": acc}],
        },
        "params": {"trainable": 10, "total": 100, "trainable_pct": 10.0},
        "memory": {"device": "cpu", "peak_mb": 500.0},
        "speed": {"train_tokens_per_s": 1000.0},
        "size": {"saved_mb": 0.5},
        "time": {"train_s": 3.0},
    }


def test_round_trip_is_exact_and_leaves_no_temp_files(tmp_path):
    rec = record("lora-s0-abc")
    path = write_record(tmp_path, rec)
    assert path == record_path(tmp_path, "lora-s0-abc")
    loaded = read_record(path)
    assert loaded.pop("schema_version") == SCHEMA_VERSION
    assert loaded == rec
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_non_finite_numbers_become_null_so_json_stays_valid(tmp_path):
    rec = record("x")
    rec["metrics"]["final_train_loss"] = float("nan")
    path = write_record(tmp_path, rec)
    assert json.loads(path.read_text())["metrics"]["final_train_loss"] is None


def test_bad_status_is_refused(tmp_path):
    with pytest.raises(ValueError):
        write_record(tmp_path, record("x", status="done"))


def test_finished_means_ok_diverged_or_oom_not_failed(tmp_path):
    for status in ("ok", "diverged", "oom", "failed"):
        write_record(tmp_path, record(f"r-{status}", status=status))
    assert finished_record(tmp_path, "r-ok") and finished_record(tmp_path, "r-oom")
    assert finished_record(tmp_path, "r-failed") is None
    assert finished_record(tmp_path, "absent") is None
    record_path(tmp_path, "broken").write_text("{half")
    assert finished_record(tmp_path, "broken") is None
    assert len(load_records([tmp_path])) == 4  # the unreadable file is skipped
    assert {r["run_id"] for r in load_records([tmp_path], {"r-ok"})} == {"r-ok"}


def test_frame_and_summary_mean_and_interval(tmp_path):
    accs = [0.80, 0.82, 0.84]
    for seed, acc in enumerate(accs):
        write_record(tmp_path, record(f"lora-s{seed}", acc=acc, seed=seed))
    write_record(tmp_path, record("full-s0", label="full", acc=0.9))
    write_record(tmp_path, record("full-s1", label="full", status="failed", seed=1))
    frame = records_frame(load_records([tmp_path]))
    assert "metrics.test.accuracy" in frame.columns and len(frame) == 5
    summary = summarise(frame).set_index("method")
    assert summary.loc["lora", "test_accuracy_mean"] == pytest.approx(0.82)
    # t(0.975, 2) = 4.303; sd = 0.02; half-width = 4.303 * 0.02 / sqrt(3)
    assert summary.loc["lora", "test_accuracy_ci95"] == pytest.approx(4.3027 * 0.02 / math.sqrt(3), rel=1e-3)
    assert summary.loc["full", "runs_ok"] == 1 and summary.loc["full", "runs"] == 2
    assert math.isnan(summary.loc["full", "test_accuracy_ci95"])
    assert math.isnan(ci95([0.5]))
