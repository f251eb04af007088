"""Trackers (`loggers:`, issue 25): each sink is read back with its own library's reader.

One tiny BERT run (4 steps, validation every 2) streams to TensorBoard, MLflow (SQLite store) and
W&B (offline) at once; TensorBoard's EventAccumulator, MlflowClient and the offline `.wandb`
file (W&B's own protobuf records) must hold the loop's steps, each evaluation, the final record's
metrics and costs, and the resolved config. Without `loggers:` nothing of it is imported; an
unknown logger or a missing package is one line, exit 2, nothing written; a search trial is a
child run of its study; only rank 0 of a distributed launch logs.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from peftlab.records.record import RunRecord

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytest.importorskip("wandb")

REPO = Path(__file__).resolve().parents[1]
TRAIN = "train:\n  steps: 4\n  batch_size: 8\n  eval_every: 2\n  eval_batch_size: 16\n  warmup_ratio: 0.0\n"


def _experiment(folder: Path, bert: Path, data: Path, extra: str, name: str = "tracked") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: {bert}\ndata:\n  source: {data}\n  max_length: 32\n  validation_limit: 16\n"
        f"  test_limit: 16\n{TRAIN}seeds: [0]\noutput_dir: {folder / 'results'}\n{extra}"
        "methods:\n  - method: lora\n    lr: 1.0e-2\n"
    )
    return path


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, tiny_dataset: Path) -> tuple[Path, dict]:
    """One run logged to all three trackers; (its folder, its record)."""
    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    folder = tmp_path_factory.mktemp("tracked")
    loggers = (
        "loggers:\n  - tensorboard\n"
        f"  - {{logger: mlflow, tracking_uri: 'sqlite:///{folder / 'mlflow.db'}'}}\n"
        f"  - {{logger: wandb, mode: offline, project: peftlab-tests, dir: {folder / 'wb'}}}\n"
    )
    experiment = load_experiment(_experiment(folder, tiny_bert, tiny_dataset, loggers))
    ws = prepare_workspace(experiment)
    (spec,) = make_plan(experiment)
    record = execute_run(ws, spec, quiet=True).as_json()  # the record as written
    assert record["status"] == "ok", record.get("error")
    return folder, record


# ---------------------------------------------------------------- TensorBoard


def test_tensorboard_holds_steps_evaluations_final_metrics_and_config(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, record = tracked
    (run_dir,) = (folder / "results" / "tensorboard" / "tracked").iterdir()
    assert run_dir.name == record["run_id"]  # named by run id, grouped by experiment
    assert record["trackers"]["tensorboard"] == {"log_dir": str(run_dir)}  # the record says where
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3, 4]
    assert losses[-1].value == pytest.approx(record["metrics"]["final_train_loss"], rel=1e-6)
    assert [e.step for e in events.Scalars("validation/accuracy")][:2] == [2, 4]
    curve = {p["step"]: p["val_accuracy"] for p in record["metrics"]["curve"]}
    assert events.Scalars("validation/accuracy")[0].value == pytest.approx(curve[2])
    linear_decay = [pytest.approx(1e-2 * (1 - s / 4)) for s in range(1, 5)]
    assert [e.value for e in events.Scalars("train/lr")] == linear_decay
    assert all(e.value > 0 for e in events.Scalars("train/tokens_per_s"))
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert events.Scalars("params/trainable")[0].value == record["params"]["trainable"]
    assert {"speed/train_tokens_per_s", "time/train_s", "size/saved_mb"} <= set(scalars)
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.strip("`\njson")) == json.loads(json.dumps(record["config"], default=str))


# ---------------------------------------------------------------- MLflow


def test_mlflow_run_is_named_by_run_id_with_config_params_and_metric_history(tracked):
    from mlflow.tracking import MlflowClient

    folder, record = tracked
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")  # grouped by experiment
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == record["run_id"] and run.info.status == "FINISHED"
    assert record["trackers"]["mlflow"]["run_id"] == run.info.run_id
    params = run.data.params
    assert params["method"] == "lora" and float(params["lr"]) == 0.01 and params["train.steps"] == "4"
    assert params["data.max_length"] == "32" and params["run_id"] == record["run_id"]
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert history[-1].value == pytest.approx(record["metrics"]["final_train_loss"])
    evaluations = client.get_metric_history(run.info.run_id, "validation/accuracy")
    assert [m.step for m in evaluations][:2] == [2, 4]
    metrics = run.data.metrics
    assert metrics["test/accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert metrics["speed/train_tokens_per_s"] == pytest.approx(record["speed"]["train_tokens_per_s"])
    assert metrics["params/trainable"] == record["params"]["trainable"]
    assert run.data.tags["peftlab.status"] == "ok" and "mlflow.parentRunId" not in run.data.tags


# ---------------------------------------------------------------- W&B (offline)


def read_wandb_records(path: Path) -> list:
    """The protobuf records of an offline `.wandb` file: W&B's log format, read with W&B's own `Record`.

    A 7-byte header (`:W&B`, magic 0xBEE1, version), then 32 KiB blocks of chunks, each with a
    7-byte header (CRC-32, length, type: 1 full, 2 first, 3 middle, 4 last).
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    records, pending, offset, block = [], b"", 7, 32768
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # a block's tail too short for a header is padding
            offset += block - offset % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        chunk = data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind == 0 and length == 0:
            break
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"corrupt chunk at byte {offset}"
        pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _key(item) -> str:
    """An item's name: `key`, or (history and summary items) its `nested_key` path."""
    return item.key or ".".join(item.nested_key)


def test_wandb_offline_run_holds_config_history_and_summary(tracked):
    folder, record = tracked
    (file,) = (folder / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    records = read_wandb_records(file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == record["run_id"] and run.project == "peftlab-tests"
    assert record["trackers"]["wandb"] == {"project": "peftlab-tests", "id": run.run_id, "dir": str(file.parent)}
    assert run.run_group == "tracked" and run.job_type == "run"
    config = {}
    for r in records:
        if r.WhichOneof("record_type") == "config":
            config |= {_key(item): json.loads(item.value_json) for item in r.config.update}
    for r in records:
        if r.WhichOneof("record_type") == "run":
            config |= {_key(item): json.loads(item.value_json) for item in r.run.config.update}
    assert config["method"] == "lora" and config["train"]["steps"] == 4 and config["run_id"] == record["run_id"]
    rows = [
        {_key(item): json.loads(item.value_json) for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    losses = {row["_step"]: row["train/loss"] for row in rows if "train/loss" in row}
    assert sorted(losses) == [1, 2, 3, 4]
    assert losses[4] == pytest.approx(record["metrics"]["final_train_loss"])
    assert any("validation/accuracy" in row and row["_step"] == 2 for row in rows)
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary |= {_key(item): json.loads(item.value_json) for item in r.summary.update}
    assert summary["test/accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert summary["params/trainable"] == record["params"]["trainable"] and summary["status"] == "ok"
    exits = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert exits and exits[-1].exit_code == 0


# ---------------------------------------------------------------- without loggers; bad input


def test_without_loggers_nothing_is_imported_and_the_record_is_unchanged(tmp_path, tiny_bert, tiny_dataset):
    path = _experiment(tmp_path, tiny_bert, tiny_dataset, "", name="plain")
    script = (
        "import sys\n"
        "from peftlab.config import load_experiment\n"
        "from peftlab.planners.grid import make_plan\n"
        "from peftlab.runtime.workspace import prepare_workspace\n"
        "from peftlab.runtime.recipe import execute_run\n"
        f"exp = load_experiment({str(path)!r})\n"
        "(spec,) = make_plan(exp)\n"
        "record = execute_run(prepare_workspace(exp), spec, quiet=True)\n"
        "assert record.status == 'ok', record.error\n"
        "names = ('peftlab.loggers', 'mlflow', 'wandb', 'tensorboard', 'torch.utils.tensorboard')\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in names or n.startswith(names)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert not (tmp_path / "results" / "tensorboard").exists() and not (tmp_path / "results" / "mlflow.db").exists()


def test_an_unknown_logger_is_one_line_exit_2_nothing_written(tmp_path, tiny_bert, tiny_dataset, capsys):
    from peftlab.cli.run import main

    path = _experiment(tmp_path, tiny_bert, tiny_dataset, "loggers: [tensorbord]\n")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "loggers[0].logger: unknown logger 'tensorbord'" in err and "did you mean 'tensorboard'" in err
    assert not (tmp_path / "results").exists()


def test_a_missing_package_names_the_pip_install(tmp_path, tiny_bert, tiny_dataset, capsys, monkeypatch):
    import importlib.util

    from peftlab.cli.run import main
    from peftlab.config import loggers

    real = importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    path = _experiment(tmp_path, tiny_bert, tiny_dataset, "loggers: [tensorboard, {logger: wandb, mode: offline}]\n")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "loggers[1]: wandb is not installed; pip install 'peftlab[trackers]' (or: pip install wandb)" in err
    assert not (tmp_path / "results").exists()


def test_a_logger_key_is_checked_like_any_other(tmp_path, tiny_bert, tiny_dataset):
    from peftlab.config import load_experiment
    from peftlab.errors import ConfigError

    path = _experiment(tmp_path, tiny_bert, tiny_dataset, "loggers: [{logger: mlflow, tracking_url: x}]\n")
    with pytest.raises(ConfigError, match=r"loggers\[0\]\.tracking_url: unknown key.*did you mean 'tracking_uri'"):
        load_experiment(path)
    twice = _experiment(tmp_path, tiny_bert, tiny_dataset, "loggers: [wandb, wandb]\n")
    with pytest.raises(ConfigError, match=r"loggers\[1\]: logger 'wandb' is listed twice"):
        load_experiment(twice)


def test_loggers_leave_the_run_ids_unchanged(tmp_path, tiny_bert, tiny_dataset):
    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan

    plain = make_plan(load_experiment(_experiment(tmp_path, tiny_bert, tiny_dataset, "", name="a")))
    logged = make_plan(load_experiment(_experiment(tmp_path, tiny_bert, tiny_dataset, "loggers: [mlflow]\n", "a")))
    assert [s.run_id for s in plain] == [s.run_id for s in logged]


# ---------------------------------------------------------------- rank 0 only; a trial is a child run


def test_only_rank_0_of_a_distributed_launch_opens_trackers(tmp_path, tiny_bert, tiny_dataset, monkeypatch):
    from types import SimpleNamespace

    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import _open_trackers

    extra = "loggers: [tensorboard]\n"
    experiment = load_experiment(_experiment(tmp_path, tiny_bert, tiny_dataset, extra), ["train.distributed=ddp"])
    (spec,) = make_plan(experiment)
    ws = SimpleNamespace(experiment=experiment)
    record = RunRecord(run_id=spec.run_id, status="failed", config={"method": "lora"})
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert _open_trackers(ws, spec, record) is None
    monkeypatch.setenv("RANK", "0")
    trackers = _open_trackers(ws, spec, record)
    assert list(trackers.sinks) == ["tensorboard"]
    trackers.finish(RunRecord.model_validate({"run_id": "r", "status": "ok", "time": {"steps": 0}}))


def test_a_search_trial_is_a_child_run_of_its_study(tmp_path, tiny_bert, tiny_dataset):
    from mlflow.tracking import MlflowClient

    from peftlab.cli.run import main

    search = (
        "search: {sampler: random, trials: 2, space: {lora: {r: [2, 4]}}}\n"
        f"loggers:\n  - {{logger: mlflow, tracking_uri: 'sqlite:///{tmp_path / 'mlflow.db'}'}}\n"
        f"  - {{logger: wandb, mode: offline, dir: {tmp_path / 'wb'}}}\n"
    )
    path = _experiment(tmp_path, tiny_bert, tiny_dataset, search, name="searched")
    assert main([str(path), "train.steps=2", "--in-process"]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "searched" / "runs").glob("*.json")]
    assert len(records) == 2
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("searched").experiment_id])
    (study,) = [r for r in runs if r.data.tags.get("peftlab.role") == "study"]
    children = [r for r in runs if r is not study]
    assert sorted(r.info.run_name for r in children) == sorted(r["run_id"] for r in records)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {study.info.run_id}
    assert study.info.run_name == study.data.tags["peftlab.study"] and study.info.run_name.startswith("searched-")
    groups = set()
    for file in (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb"):
        (run,) = [r.run for r in read_wandb_records(file) if r.WhichOneof("record_type") == "run"]
        groups.add((run.run_group, run.job_type))
    assert groups == {(study.info.run_name, "trial")}


def test_a_failing_tracker_is_one_warning_and_the_others_go_on(capsys):
    from peftlab.loggers import Trackers

    class Broken:
        def log(self, step, values):
            raise ConnectionError("tracking server unreachable\nmore detail")

        def finish(self, step, metrics, status):
            raise AssertionError("a dropped sink is not called again")

    class Kept:
        def __init__(self):
            self.logged, self.finished = [], None

        def log(self, step, values):
            self.logged.append((step, values))

        def finish(self, step, metrics, status):
            self.finished = (step, metrics, status)

    kept = Kept()
    trackers = Trackers({"mlflow": Broken(), "tensorboard": kept})
    trackers.log(1, {"train/loss": 0.5, "train/lr": float("nan"), "note": "text"})
    trackers.log(2, {"train/loss": 0.4})
    trackers.finish(
        RunRecord.model_validate(
            {"run_id": "r", "status": "ok", "time": {"steps": 2}, "metrics": {"test": {"accuracy": 0.75}}}
        )
    )
    assert kept.logged == [(1, {"train/loss": 0.5}), (2, {"train/loss": 0.4})]  # NaN and text left out
    assert kept.finished == (2, {"test/accuracy": 0.75, "time/steps": 2.0}, "ok")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "peftlab: logger mlflow failed (ConnectionError: tracking server unreachable); the run goes on without it"
    ]
