"""A run's identity names the device type it runs on, and no table row pools device types.

With `device: auto` hashed as written, a CPU record counted as finished on a GPU machine and was
averaged with GPU runs (CPU RSS and CUDA memory in one column).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from peftlab.config import load_experiment
from peftlab.planners.grid import computed_config, make_plan
from peftlab.records.results import records_frame
from peftlab.reporting.frame import summarise


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    from peftlab.records import environment

    monkeypatch.setattr(environment, "auto_device_type", lambda: "cuda" if count else "cpu")


def _ids(path: Path, *overrides: str) -> list[str]:
    return [spec.run_id for spec in make_plan(load_experiment(path, list(overrides)))]


def test_auto_run_ids_are_those_of_the_device_type_found(monkeypatch: pytest.MonkeyPatch, experiment_file) -> None:
    path = experiment_file()
    _gpus(monkeypatch, 0)
    on_cpu = _ids(path)
    assert on_cpu == _ids(path, "train.device=cpu")
    _gpus(monkeypatch, 1)
    on_gpu = _ids(path)
    assert on_gpu == _ids(path, "train.device=cuda")
    assert set(on_gpu).isdisjoint(on_cpu)  # a CPU record never counts as finished on a GPU machine


def test_record_config_names_the_device_type_not_auto(monkeypatch: pytest.MonkeyPatch, experiment_file) -> None:
    _gpus(monkeypatch, 0)
    experiment = load_experiment(experiment_file())
    assert experiment.train.device == "auto"
    assert computed_config(experiment)["train"]["device"] == "cpu"
    assert computed_config(load_experiment(experiment_file(), ["train.device=cuda:1"]))["train"]["device"] == "cuda"


def _record(seed: int, device: str | None, accuracy: float, memory: float, label: str = "lora") -> dict:
    record = {
        "experiment": "exp",
        "label": label,
        "method": label,
        "seed": seed,
        "status": "ok",
        "task": {"name": "classification", "primary": "accuracy", "direction": "max", "statistic": "mean:correct"},
        "config": {"train": {"device": device or "auto"}},
        "metrics": {"test": {"accuracy": accuracy, "f1_macro": accuracy}},
        "memory": {"peak_mb": memory},
        "env": {},
    }
    if device is not None:
        record["env"]["device"] = {"type": device}
    return record


def test_a_table_row_never_pools_device_types() -> None:
    records = [_record(0, "cpu", 0.80, 900.0), _record(1, "cpu", 0.82, 910.0), _record(0, "cuda", 0.70, 300.0)]
    # one device type only: the plain label, also for a run that failed before it recorded its device
    records += [_record(0, "cpu", 0.9, 1000.0, "full"), _record(1, None, 0.9, 1000.0, "full")]
    records[-1]["config"]["train"]["device"] = "cpu"
    summary = summarise(records_frame(records)).set_index("method")
    assert list(summary.index) == ["full", "lora (cpu)", "lora (cuda)"]
    assert summary.loc["full", "runs"] == 2
    assert summary.loc["lora (cpu)", "runs"] == 2
    assert summary.loc["lora (cpu)", "test_accuracy_mean"] == pytest.approx(0.81)
    assert summary.loc["lora (cuda)", "peak_memory_mb"] == pytest.approx(300.0)
    assert summary.loc["lora (cuda)", "device_type"] == "cuda"


def test_a_cpu_only_torch_build_is_cpu_without_importing_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    import torch

    if torch.version.cuda is not None or torch.version.hip is not None:
        pytest.skip("this test reads a CPU-only torch build")
    code = (
        "import sys\nfrom peftlab.records.environment import device_type\n"
        "print(device_type('auto'))\nassert 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpu"


def test_cuda_visible_devices_hiding_every_gpu_means_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from peftlab.records import environment

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert environment._nvml_visible_device_count() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert environment._nvml_visible_device_count() == 0
