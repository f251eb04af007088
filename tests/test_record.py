"""The typed, versioned run record (peftlab/records/record.py): validated when written and when read, an
old version upgraded by an explicit function, a newer one refused with one line, and no
unreadable file skipped in silence."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from peftlab.records.record import (
    SCHEMA_VERSION,
    Protocol,
    RecordError,
    RunRecord,
    upgrade,
    upgrade_1_to_2,
    upgrade_2_to_3,
    upgrade_3_to_4,
    upgrade_4_to_5,
    validate,
)
from peftlab.records.results import load_records, read_record, read_run_record, record_path, runs_dir, write_record

# a record written by the code before schema version 2 (a real run of the forgetting experiment,
# its curve, package list and citation shortened)
V1 = Path(__file__).parent / "fixtures" / "record_v1.json"
# a record written by schema version 2's code (a real run of tests/test_forgetting.py's stage test:
# an `init_from:` stage, forgetting probes, predictions; its package list shortened)
V2 = Path(__file__).parent / "fixtures" / "record_v2.json"


def v1() -> dict:
    return json.loads(V1.read_text())


def v2() -> dict:
    return json.loads(V2.read_text())


def minimal(run_id: str = "lora-s0-abc", **extra) -> dict:
    return {"run_id": run_id, "method": "lora", "seed": 0, "status": "ok", **extra}


def test_the_schema_version_is_five_and_the_fixtures_are_one_and_two():
    assert SCHEMA_VERSION == 5
    assert v1()["schema_version"] == 1 and v2()["schema_version"] == 2


def test_a_typed_record_round_trips_through_the_file(tmp_path):
    model = RunRecord.model_validate(
        minimal(
            metrics={
                "test": {"accuracy": 0.8, "n": 500},
                "validation": {"accuracy": 0.7},
                "validation_mismatched": {"accuracy": 0.6, "matthews": 0.1},  # an extra split fits
            },
            params={"trainable": 10, "total": 100, "trainable_pct": 10.0},
            trial={"number": 3, "study": "s"},
        )
    )
    path = write_record(tmp_path, model)
    back = read_run_record(path)
    assert back == model
    assert back.metrics.test == {"accuracy": 0.8, "n": 500}
    assert isinstance(back.metrics.test["n"], int)  # a count stays a count
    assert back.trial is not None and back.trial.number == 3 and back.trial.study == "s"
    assert back.metrics.splits()["validation_mismatched"] == {"accuracy": 0.6, "matthews": 0.1}
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
    """Each section's keys are typed."""
    with pytest.raises(RecordError) as err:
        validate({**minimal(), "schema_version": SCHEMA_VERSION, **bad})
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "unknown, key",
    [
        ({"scores": {"accuracy": 0.8}}, "scores"),  # a key no section names, at the top
        ({"memory": {"peak_mbb": 5.0}}, "memory.peak_mbb"),  # a typo inside a section
        ({"time": {"build_s": 1.0, "lunch_s": 3.0}}, "time.lunch_s"),
        ({"forgetting": {"linear_probe": {"before": 0.5, "delta_pct": 1}}}, "forgetting.linear_probe.delta_pct"),
        ({"trial": {"number": 1, "study": "s", "owner": "me"}}, "trial.owner"),
    ],
)
def test_an_unknown_key_is_refused_on_write_in_one_line_and_nothing_is_written(tmp_path, unknown, key):
    with pytest.raises(RecordError) as err:
        write_record(tmp_path, minimal(**unknown))
    message = str(err.value)
    assert "\n" not in message and key in message and "Extra inputs are not permitted" in message
    assert not runs_dir(tmp_path).exists() or not any(runs_dir(tmp_path).iterdir())


def test_read_returns_the_typed_record_every_reader_holds(tmp_path):
    record = read_record(V2)
    record_path(tmp_path, "v2").parent.mkdir(parents=True)
    record_path(tmp_path, "v2").write_text(V2.read_text())
    assert isinstance(record, RunRecord) and load_records([tmp_path]) == [record]
    assert record.init_from is not None and record.init_from.checkpoint
    assert record.forgetting is not None and all(p.metric for p in record.forgetting.values())
    assert record.predictions is not None and record.predictions.file.endswith(".jsonl.gz")
    assert record.env.device is not None and record.env.device.type == "cpu"


def test_upgrade_3_to_4_is_pure_and_keeps_a_real_version_2_record_as_it_was():
    old = upgrade_2_to_3(v2())  # a real version-2 record, at version 3
    before = copy.deepcopy(old)
    new = upgrade_3_to_4(old)
    assert old == before  # pure
    assert new["schema_version"] == 4 and "unmodelled" not in new  # every key of a real v2 record is named
    assert {k: v for k, v in new.items() if k != "schema_version"} == {
        k: v for k, v in old.items() if k != "schema_version"
    }
    assert read_record(V2).as_json() == upgrade_4_to_5(new)  # read as version 5, every JSON path the same


def test_upgrade_4_to_5_is_pure_and_changes_only_the_version():
    old = upgrade_3_to_4(upgrade_2_to_3(v2()))
    before = copy.deepcopy(old)
    new = upgrade_4_to_5(old)
    assert old == before and new["schema_version"] == 5
    assert {k: v for k, v in new.items() if k != "schema_version"} == {
        k: v for k, v in old.items() if k != "schema_version"
    }


def test_upgrade_3_to_4_keeps_what_it_does_not_model_under_unmodelled():
    old = {**upgrade_2_to_3(v2()), "notes": "by hand"}
    old["memory"] = {**old["memory"], "swap_mb": 1.0}
    old["forgetting"] = {k: {**v, "extra": 1} for k, v in old["forgetting"].items()}
    new = upgrade_3_to_4(old)
    probe = next(iter(old["forgetting"]))
    assert new["unmodelled"] == {
        "notes": "by hand",
        "memory.swap_mb": 1.0,
        **{f"forgetting.{k}.extra": 1 for k in old["forgetting"]},
    }
    assert "swap_mb" not in new["memory"] and "extra" not in new["forgetting"][probe]
    assert validate(old).unmodelled == new["unmodelled"]  # an older file with such keys still reads


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


def test_a_version_1_file_reads_as_the_current_version_with_the_paths_reports_use(tmp_path):
    record = read_record(V1)
    assert record.schema_version == SCHEMA_VERSION and record.task.primary == "accuracy"
    assert record.task.statistic == "mean:correct"  # version 3: the statistic travels with the metric
    assert record.metrics.test is not None
    assert record.metrics.test["accuracy"] == v1()["metrics"]["test"]["accuracy"]
    assert record.at("config.train.steps") == 60 and record.unmodelled is None
    # written again by this code, it is a current-version file that reads back the same
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
    assert [r.run_id for r in records] == ["good"]
    assert sorted(p.name for p, _ in seen) == ["future.json", "torn.json", "wrong.json"]
    reasons = dict((p.name, why) for p, why in seen)
    assert "not JSON" in reasons["torn.json"] and "schema_version 99" in reasons["future.json"]
    assert "status" in reasons["wrong.json"]

    load_records([tmp_path])  # by default: one line each on stderr, never a traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("peftlab: skipped ") for line in err)
    assert "Traceback" not in "".join(err)


# ---------------------------------------------------------------- the phases' parts and the assembly


def _base() -> RunRecord:
    """What recipe.base_record knows before a run (the sections the parts fill are there, empty)."""
    return RunRecord.model_validate(
        {
            **minimal("lora-s0-abc", status="failed"),
            "task": {"name": "classification", "primary": "accuracy", "direction": "max"},
            "hyperparameters": {"lr": 1e-3, "r": 4},
            "model": {"spec": "builtin:tiny"},
            "metrics": {},
            "params": {},
            "memory": {},
            "speed": {},
            "time": {"started_at": "2026-01-01T00:00:00+00:00"},
            "size": {},
            "env": {"pid": 1},
        }
    )


def _finished_parts() -> list:
    import numpy as np

    from peftlab.records.record import BuildInfo, Evaluation, Outcome, Saved, SetupInfo, TrainingOutcome

    return [
        SetupInfo(device={"type": "cpu"}),
        BuildInfo(
            params={"trainable": np.int64(10), "total": 100, "trainable_pct": 10.0},
            model_type="bert",
            dtype="torch.float32",
            targets={"resolved_target_modules": ["query"]},
            build_s=0.5,
        ),
        Evaluation(test={"accuracy": np.float64(0.75), "n": 8}, validation={"accuracy": 0.5}, final_eval_s=0.1),
        TrainingOutcome(
            steps=4,
            final_train_loss=float("nan"),  # JSON has no NaN: null
            curve=[{"step": 4, "train_loss": 0.7}],
            train_s=1.0,
            validation_s=0.2,
            speed={"train_tokens_per_s": 10.0, "latency_ms_bs1": float("nan")},
            memory={"device": "cpu", "peak_mb": 5.0},
        ),
        Saved(size={"saved_bytes": 1024, "saved_mb": 0.001, "what": "adapter"}, artifacts={"adapter": "/tmp/a"}),
        Outcome(status="ok", total_s=2.0, finished_at="2026-01-01T00:00:02+00:00"),
    ]


def test_the_record_is_assembled_from_the_parts_the_phases_return(tmp_path):
    from peftlab.records.record import assemble

    base = _base()
    record = assemble(base, _finished_parts())
    assert base == _base()  # the base is not written into
    data = record.as_json()
    assert data["status"] == "ok" and data["error"] is None and "traceback" not in data
    assert data["metrics"] == {
        "test": {"accuracy": 0.75, "n": 8},
        "validation": {"accuracy": 0.5},
        "final_train_loss": None,
        "curve": [{"step": 4, "train_loss": 0.7}],
    }
    assert data["params"]["trainable"] == 10 and data["env"] == {"pid": 1, "device": {"type": "cpu"}}
    assert data["hyperparameters"] == {"lr": 1e-3, "r": 4, "resolved_target_modules": ["query"]}
    assert data["model"] == {"spec": "builtin:tiny", "model_type": "bert", "dtype": "torch.float32"}
    assert data["time"]["started_at"] and data["time"]["steps"] == 4 and data["time"]["total_s"] == 2.0
    assert data["speed"]["latency_ms_bs1"] is None and data["artifacts"] == {"adapter": "/tmp/a"}
    assert read_record(write_record(tmp_path, record)).as_json() == data


def test_a_pruned_or_failed_run_keeps_what_was_measured_before_it_stopped():
    from peftlab.records.record import Outcome, PrunedOutcome, SetupInfo, assemble

    pruned = PrunedOutcome(validation={"accuracy": 0.4}, final_train_loss=0.9, curve=[], train_s=1.0, steps=2)
    data = assemble(_base(), [SetupInfo(device={"type": "cpu"}), pruned, Outcome(status="pruned", error="at 2")])
    data = data.as_json()
    assert data["metrics"]["test"] is None and data["metrics"]["validation"] == {"accuracy": 0.4}
    assert data["time"] == {"started_at": "2026-01-01T00:00:00+00:00", "train_s": 1.0, "steps": 2}
    failed = assemble(_base(), [Outcome(status="failed", error="RuntimeError: x", traceback="Traceback ...")])
    assert failed.status == "failed" and failed.traceback == "Traceback ..." and failed.metrics.test is None


def test_a_part_of_the_wrong_type_is_refused_where_the_phase_returns_it():
    from pydantic import ValidationError

    from peftlab.records.record import BuildInfo, Evaluation

    with pytest.raises(ValidationError):
        BuildInfo(params={"trainable": "many"}, build_s=0.1)
    with pytest.raises(ValidationError):
        Evaluation(test=0.8, final_eval_s=0.1)


def test_the_protocol_block_is_a_pure_function_of_the_finished_record():
    from peftlab.planners.tuned import stamp

    block = {"tuned": True, "chosen": {"lr": 0.01, "r": 4}, "trials": 2}
    record = RunRecord.model_validate({**minimal(), "hyperparameters": {"lr": 0.01, "r": 4, "alpha": 8.0}})
    before = record.model_copy(deep=True)
    added = stamp(Protocol.model_validate(block))(record)
    assert record == before  # derived, never written into the record
    assert added.protocol.model_dump(exclude_unset=True) == {**block, "as_chosen": True}
    other = record.model_copy(update={"hyperparameters": {"lr": 0.02, "r": 4}})
    assert stamp(Protocol.model_validate(block))(other).protocol.as_chosen is False
    untuned = {"tuned": False, "why": "not trained: nothing to tune"}
    assert stamp(Protocol.model_validate(untuned))(record).protocol.model_dump(exclude_unset=True) == untuned


def test_the_planners_block_is_one_more_part_of_the_assembly():
    from peftlab.planners.tuned import stamp
    from peftlab.records.record import Outcome, assemble

    block = Protocol(tuned=True, chosen={"lr": 1e-3}, trials=2)
    record = assemble(_base(), [Outcome(status="ok")], derive=stamp(block))
    assert record.protocol is not None and record.protocol.as_chosen is True and record.status == "ok"


def test_the_trial_block_is_a_pure_function_of_the_finished_record():
    from types import SimpleNamespace

    from peftlab.planners.optuna_search import trial_block

    experiment = SimpleNamespace(search=SimpleNamespace(objectives=[("val_accuracy", "maximize")]))
    static = {"number": 3, "study": "demo-1234", "params": {"lr": 0.01}}
    ok = RunRecord.model_validate({**minimal(), "metrics": {"validation": {"accuracy": 0.7}}})
    before = ok.model_copy(deep=True)
    block = trial_block(experiment, static, ok)
    assert ok == before
    assert block.model_dump(exclude_unset=True) == {
        **static,
        "state": "COMPLETE",
        "values": {"val_accuracy": 0.7},
        "directions": {"val_accuracy": "maximize"},
    }
    no_value = ok.model_copy(update={"metrics": ok.metrics.model_copy(update={"validation": None})})
    assert trial_block(experiment, static, no_value).state == "FAIL"  # ok but no objective value
    assert trial_block(experiment, static, ok.model_copy(update={"status": "pruned"})).state == "PRUNED"


def test_records_flatten_with_json_normalize_to_the_paths_reports_read(tmp_path):
    from peftlab.records.results import records_frame

    first = read_record(V1)
    untested = first.model_copy(update={"run_id": "b", "metrics": first.metrics.model_copy(update={"test": None})})
    frame = records_frame([first, untested])
    assert frame.loc[0, "metrics.test.accuracy"] == v1()["metrics"]["test"]["accuracy"]
    assert frame.loc[0, "config.train.steps"] == 60 and frame.loc[0, "task.primary"] == "accuracy"
    assert frame["metrics.test.accuracy"].isna().tolist() == [False, True]


def test_the_report_names_each_unreadable_record_in_one_line_and_reports_the_rest(tmp_path, capsys):
    from peftlab.cli.report import main as report_main
    from tests.test_report import make_records

    results = make_records(tmp_path / "plain", sweep=False, forgetting=False, seeds=(0, 1))
    (runs_dir(results) / "torn.json").write_text("{")
    (runs_dir(results) / "future.json").write_text(json.dumps({**minimal("future"), "schema_version": 99}))
    assert report_main([str(results)]) == 0
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if line.startswith("peftlab: skipped ")]
    assert len(skipped) == 2 and "Traceback" not in err
    assert any("torn.json: not JSON" in line for line in skipped)
    assert any("future.json: schema_version 99" in line for line in skipped)
    assert (results / "summary.csv").is_file()


def test_upgrade_2_to_3_adds_the_statistic_and_the_choice_and_changes_nothing_else():
    from peftlab.records.record import upgrade_2_to_3

    old = upgrade_1_to_2(v1())
    old["config"]["data"]["metric"] = None
    frozen = json.dumps(old, sort_keys=True)
    new = upgrade_2_to_3(old)
    assert json.dumps(old, sort_keys=True) == frozen  # pure
    assert new["schema_version"] == 3
    assert new["task"] == {**old["task"], "statistic": "mean:correct", "choice": None}
    assert {k: v for k, v in new.items() if k not in ("task", "schema_version")} == {
        k: v for k, v in old.items() if k not in ("task", "schema_version")
    }
    unknown = {**old, "task": {"name": "token_classification", "primary": None, "direction": None}}
    assert upgrade_2_to_3(unknown)["task"]["statistic"] is None
