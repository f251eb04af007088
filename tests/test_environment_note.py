"""A table whose runs come from different environments says so and names the packages; pooling is never silent."""

from __future__ import annotations

from peftlab.records.record import RunRecord
from peftlab.reporting.environments import environment_note


def _record(transformers: str, lock: str | None = "abc", status: str = "ok") -> RunRecord:
    versions = {"torch": "2.13.0+cpu", "transformers": transformers, "peft": "0.21.2", "bitsandbytes": "0.50.2"}
    return RunRecord.model_validate({"run_id": "r", "status": status, "env": {"versions": versions, "lock": lock}})


def test_one_environment_is_named_with_its_lock():
    note = environment_note([_record("5.23.0"), _record("5.23.0")])
    assert note.startswith("Environment of every run: torch 2.13.0+cpu, transformers 5.23.0, peft 0.21.2")
    assert "lock abc" in note and "pooled" not in note


def test_runs_from_different_releases_get_a_footnote_naming_the_packages():
    note = environment_note([_record("5.23.0"), _record("5.23.0"), _record("5.25.0", lock=None)])
    assert "different environments are pooled" in note
    assert "transformers 5.23.0 (2 runs), 5.25.0 (1 runs)" in note
    assert "peft" not in note.split("pooled")[1]  # only the packages that differ are named


def test_a_failed_run_does_not_decide_the_environment():
    failed = _record("5.25.0", status="failed")
    assert "pooled" not in environment_note([_record("5.23.0"), failed])
