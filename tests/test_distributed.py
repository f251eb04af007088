"""`train.distributed`: one run on many processes (docs/distributed.md).

The equivalence test launches the real command line under torchrun (2 CPU processes, gloo) and
compares its records with one process at the doubled batch. Dropout is switched off (model and
LoRA): with it on, 2 ranks draw other masks than 1 process and the curves differ by design.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.cli.run import main as run_main
from peftlab.config import computed_config, load_experiment
from peftlab.errors import ConfigError

METHODS = "  - method: lora\n    lr: 1.0e-2\n    dropout: 0.0\n  - method: full\n    lr: 1.0e-3\n"

# Two processes at batch 4 compute what one process at batch 8 computes up to float summation
# order (gloo's all-reduce and the division by 2 vs one batched mean; each rank pads only its own
# rows): measured at most 6e-8 (ddp and fsdp, lora and full) on losses near 0.69 over 4 steps of
# 2 accumulated micro-batches. Adam's normalised updates can grow such differences over a run,
# and other CPUs and thread counts sum in other orders, hence 1e-5: 100× the measured, still far
# below any change of what a step trains on (one example swapped moves the mean loss by its loss
# difference / 8). Each rank's share is checked apart: ranks that each trained on the whole
# global batch would give the same curve, so the record's samples per step must be 2 × 8.
LOSS_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def dropout_free_bert(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bert_nodrop")
    shutil.copytree(tiny_bert, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _experiment(folder: Path, model: Path, data: Path, batch: int, extra: str = "") -> Path:
    path = folder / "exp.yaml"
    path.write_text(
        f"name: ddp\nmodel: {model}\ndata:\n  source: {data}\n  max_length: 32\n  validation_limit: 8\n"
        f"  test_limit: 8\ntrain:\n  steps: 4\n  batch_size: {batch}\n  grad_accum: 2\n  eval_every: 1\n"
        f"  eval_batch_size: 8\n  threads: 1\n  timing_warmup_steps: 0\n{extra}save:\n  adapters: false\n"
        f"seeds: [0]\noutput_dir: {folder / 'results'}\nmethods:\n{METHODS}"
    )
    return path


def _records(folder: Path) -> dict[str, dict]:
    runs = folder / "results" / "ddp" / "runs"
    records = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    return {r["method"]: r for r in records}


def _losses(record: dict) -> list[float]:
    assert record["status"] == "ok", record.get("error")
    return [point["train_loss"] for point in record["metrics"]["curve"]]


# torchrun starts two processes that run the real command line's `main` on the DDP and then the
# FSDP experiment: one launch for both, as loading torch twice per rank would double the test's time
DRIVER = """import sys
from peftlab.cli.run import main
sys.exit(max(main([sys.argv[1], "-q", "--no-report"]), main([sys.argv[2], "-q", "--no-report"])))
"""


@pytest.fixture(scope="module")
def single_and_launched(dropout_free_bert: Path, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """The plan (lora, full) as 1 process at batch 8, and as 2 torchrun processes at 4 each, under ddp and fsdp."""
    one = tmp_path_factory.mktemp("one_process")
    code = run_main([str(_experiment(one, dropout_free_bert, tiny_dataset, 8)), "--in-process", "-q", "--no-report"])
    assert code == 0
    folders = {mode: tmp_path_factory.mktemp(mode) for mode in ("ddp", "fsdp")}
    experiments = [
        str(_experiment(folder, dropout_free_bert, tiny_dataset, 8, extra=f"  distributed: {mode}\n"))
        for mode, folder in folders.items()
    ]
    driver = folders["ddp"] / "driver.py"
    driver.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run([*launch, str(driver), *experiments], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return _records(one), {mode: _records(folder) for mode, folder in folders.items()}, done


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_two_processes_at_half_the_batch_reproduce_one_process(single_and_launched, mode, method):
    one, launched_by_mode, _ = single_and_launched
    two = launched_by_mode[mode]
    single, launched = _losses(one[method]), _losses(two[method])
    assert len(single) == len(launched) == 4
    diffs = [abs(a - b) for a, b in zip(single, launched, strict=True)]
    print(f"{mode} {method}: largest loss difference 1 process vs 2 ranks: {max(diffs):.2e}")
    assert max(diffs) < LOSS_TOLERANCE, (single, launched)
    assert launched[-1] != pytest.approx(launched[0], abs=1e-3)  # it trained: the comparison is not vacuous
    assert two[method]["time"]["steps"] == one[method]["time"]["steps"] == 4  # the same step budget
    # the model that was evaluated and saved is the one trained (FSDP: gathered from the shards)
    assert two[method]["metrics"]["test"]["loss"] == pytest.approx(one[method]["metrics"]["test"]["loss"], abs=1e-5)
    assert two[method]["size"]["saved_bytes"] == one[method]["size"]["saved_bytes"]
    assert two[method]["params"] == one[method]["params"]


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_the_launch_is_recorded_once_by_rank_0(single_and_launched, mode):
    _, launched_by_mode, done = single_and_launched
    for record in launched_by_mode[mode].values():
        assert record["distributed"]["mode"] == mode
        assert record["distributed"]["world_size"] == 2
        assert record["distributed"]["per_rank_batch_size"] == 4
        assert record["distributed"]["backend"] == "gloo"
        assert record["distributed"]["samples_per_step"] == [16]  # 2 micro-batches of 8, each rank took 4 rows of each
        ranks = record["memory"]["per_rank"]
        assert len(ranks) == 2 and all(r["peak_mb"] for r in ranks)
        assert record["memory"]["peak_mb"] == max(r["peak_mb"] for r in ranks)
        assert record["predictions"] is not None
    assert done.stdout.count("✓ [1/2]") == 2  # only rank 0 prints a run's line (once per experiment)


def test_distributed_in_one_process_is_a_one_line_error(experiment_file, monkeypatch, capsys):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    path = experiment_file(extra="")
    text = path.read_text().replace("train:\n", "train:\n  distributed: ddp\n")
    path.write_text(text)
    assert run_main([str(path), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "train.distributed" in err and "accelerate launch --multi_gpu --num_processes 2 -m peftlab.run" in err
    assert "torchrun --nproc-per-node 2" in err
    assert not (path.parent / "results").exists()  # nothing written


def test_a_launch_without_the_key_is_a_one_line_error(experiment_file, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    path = experiment_file()
    assert run_main([str(path), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.distributed" in err
    assert not (path.parent / "results").exists()


def test_the_config_checks_what_a_launch_can_run(experiment_file):
    path = experiment_file()
    assert load_experiment(path, ["train.distributed=fsdp"]).train.distributed == "fsdp"
    with pytest.raises(ConfigError, match=r"train\.distributed: got 'deepspeed'"):
        load_experiment(path, ["train.distributed=deepspeed"])
    with pytest.raises(ConfigError, match=r"methods\[0\].*'qlora' cannot be sharded by fsdp"):
        load_experiment(experiment_file("  - method: qlora\n"), ["train.distributed=fsdp"])
    assert load_experiment(experiment_file("  - method: qlora\n"), ["train.distributed=ddp"])
    search = "search:\n  trials: 2\n"
    with pytest.raises(ConfigError, match=r"train\.distributed: not with a search: block"):
        load_experiment(experiment_file(extra=search), ["train.distributed=ddp"])
    probes = "forgetting:\n  - probe: linear_probe\n"
    with pytest.raises(ConfigError, match=r"train\.distributed: not with a forgetting: block"):
        load_experiment(experiment_file(extra=probes), ["train.distributed=ddp"])


def test_run_ids_are_unchanged_while_unset(experiment_file):
    path = experiment_file()
    assert "distributed" not in computed_config(load_experiment(path))["train"]
    assert computed_config(load_experiment(path, ["train.distributed=ddp"]))["train"]["distributed"] == "ddp"
