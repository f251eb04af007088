"""The typed, versioned run record (peftlab/record.py): validated when written and when read, an
old version upgraded by an explicit function, a newer one refused with one line, and no
unreadable file skipped in silence."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from peftlab.record import SCHEMA_VERSION, RecordError, RunRecord, upgrade, upgrade_1_to_2, validate
from peftlab.results import load_records, read_record, read_run_record, record_path, runs_dir, write_record

# a record written by the code before schema version 2 (a real run of the forgetting experiment,
# its curve, package list and citation shortened)
V1 = Path(__file__).parent / "fixtures" / "record_v1.json"


def v1() -> dict:
    return json.loads(V1.read_text())


def minimal(run_id: str = "lora-s0-abc", **extra) -> dict:
    return {"run_id": run_id, "method": "lora", "seed": 0, "status": "ok", **extra}


def test_the_schema_version_is_two_and_the_fixture_is_one():
    assert SCHEMA_VERSION == 2
    assert v1()["schema_version"] == 1


def test_a_typed_record_round_trips_through_the_file(tmp_path):
    model = RunRecord.model_validate(
        minimal(
            metrics={
                "test": {"accuracy": 0.8, "n": 500},
                "validation": {"accuracy": 0.7},
                "validation_mismatched": {"accuracy": 0.6, "matthews": 0.1},  # an extra split fits
            },
            params={"trainable": 10, "total": 100, "trainable_pct": 10.0},
            trial={"number": 3},
        )
    )
    path = write_record(tmp_path, model)
    back = read_run_record(path)
    assert back == model
    assert back.metrics.test == {"accuracy": 0.8, "n": 500}
    assert isinstance(back.metrics.test["n"], int)  # a count stays a count
    assert back.model_extra == {} and back.trial == {"number": 3}
    assert json.loads(path.read_text())["metrics"]["validation_mismatched"]["matthews"] == 0.1


def test_a_bad_record_is_refused_with_one_line_naming_the_key_and_nothing_is_written(tmp_path):
    with pytest.raises(RecordError) as err:
        write_record(tmp_path, minimal(seed="first"))
    message = str(err.value)
    assert "\n" not in message and "seed" in message and "lora-s0-abc" in message
    assert not runs_dir(tmp_path).exists() or not any(runs_dir(tmp_path).iterdir())


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"status": "finished"}, "status"),
        ({"metrics": {"test": [0.8]}}, "metrics.test"),
        ({"metrics": {"validation_mismatched": 0.6}}, "metrics.validation_mismatched"),
        ({"params": {"trainable": "many"}}, "params.trainable"),
    ],
)
def test_each_typed_section_refuses_a_value_of_the_wrong_type(bad, key):
    with pytest.raises(RecordError) as err:
        validate({**minimal(), "schema_version": SCHEMA_VERSION, **bad})
    assert key in str(err.value) and "\n" not in str(err.value)


def test_upgrade_1_to_2_adds_the_task_block_and_changes_nothing_else():
    old = v1()
    before = copy.deepcopy(old)
    new = upgrade_1_to_2(old)
    assert old == before  # pure: the input is left as it was
    assert new["schema_version"] == 2
    assert new["task"] == {"name": "classification", "primary": "accuracy", "direction": "max"}
    assert {k: v for k, v in new.items() if k not in ("task", "schema_version")} == {
        k: v for k, v in old.items() if k != "schema_version"
    }


def test_a_version_1_file_reads_as_version_2_with_the_paths_reports_use(tmp_path):
    record = read_record(V1)
    assert record["schema_version"] == 2 and record["task"]["primary"] == "accuracy"
    assert record["metrics"]["test"]["accuracy"] == v1()["metrics"]["test"]["accuracy"]
    assert record["config"]["train"]["steps"] == 60
    # written again by this code, it is a version-2 file that reads back the same
    again = read_record(write_record(tmp_path, record))
    assert again == record


def test_an_unknown_task_upgrades_with_no_primary_metric():
    old = v1()
    old["config"]["task"] = "token_classification"
    assert upgrade_1_to_2(old)["task"] == {"name": "token_classification", "primary": None, "direction": None}


@pytest.mark.parametrize("version", [99, 0, "2"])
def test_a_version_this_peftlab_does_not_read_is_refused_with_one_line(tmp_path, version):
    path = record_path(tmp_path, "future")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**minimal("future"), "schema_version": version}))
    with pytest.raises(RecordError) as err:
        read_record(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and f"schema_version {version!r}".replace("'", "") in message.replace("'", "")
    assert f"1..{SCHEMA_VERSION}" in message


def test_upgrade_leaves_a_current_record_as_it_is():
    current = {**minimal(), "schema_version": SCHEMA_VERSION}
    assert upgrade(current) is current


def test_load_records_reports_each_unreadable_file_and_keeps_the_rest(tmp_path, capsys):
    write_record(tmp_path, minimal("good"))
    runs = runs_dir(tmp_path)
    (runs / "torn.json").write_text('{"run_id": "torn", ')
    (runs / "future.json").write_text(json.dumps({**minimal("future"), "schema_version": 99}))
    (runs / "wrong.json").write_text(json.dumps({**minimal("wrong"), "status": "finished"}))

    seen: list[tuple[Path, str]] = []
    records = load_records([tmp_path], unreadable=lambda path, why: seen.append((path, why)))
    assert [r["run_id"] for r in records] == ["good"]
    assert sorted(p.name for p, _ in seen) == ["future.json", "torn.json", "wrong.json"]
    reasons = dict((p.name, why) for p, why in seen)
    assert "not JSON" in reasons["torn.json"] and "schema_version 99" in reasons["future.json"]
    assert "status" in reasons["wrong.json"]

    load_records([tmp_path])  # by default: one line each on stderr, never a traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("peftlab: skipped ") for line in err)
    assert "Traceback" not in "".join(err)
