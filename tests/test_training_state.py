"""Training-state memory on CPU: weights as stored, gradients, optimiser state and one step's
activations, so that the accuracy-vs-memory comparison shows the methods, not the runtime."""

from __future__ import annotations

import json

import pytest

from peftlab.cli.run import main

MB = 1024 * 1024


def _records(tmp_path) -> dict[str, dict]:
    out = {}
    for path in (tmp_path / "results" / "tiny" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        out[record["label"]] = record
    return out


def test_each_part_of_the_training_state_is_recorded_and_4bit_weights_show(tmp_path, experiment_file):
    methods = (
        "  - {method: full, lr: 1.0e-4}\n  - {method: lora, lr: 1.0e-2, r: 4}\n  - {method: qlora, lr: 1.0e-2, r: 4}\n"
    )
    assert main([str(experiment_file(methods, steps=3)), "-q", "--no-report"]) == 0
    records = _records(tmp_path)
    states = {label: r["memory"]["training_state"] for label, r in records.items()}
    for label, state in states.items():
        trainable_mb = records[label]["params"]["trainable"] * 4 / MB  # fp32 trainable elements
        assert state["gradients_mb"] == pytest.approx(trainable_mb, rel=0.02)
        assert state["optimizer_mb"] == pytest.approx(2 * trainable_mb, rel=0.02)  # AdamW: two moments
        assert state["activations_mb"] >= 0
        parts = state["weights_mb"] + state["optimizer_mb"] + state["gradients_mb"] + state["activations_mb"]
        assert state["total_mb"] == pytest.approx(parts, abs=0.01)
    assert states["full"]["total_mb"] > states["lora"]["total_mb"]
    assert states["qlora"]["weights_mb"] < states["lora"]["weights_mb"]  # the 4-bit base, as stored


def test_the_profiled_step_is_inside_the_timing_warmup_or_not_profiled(tmp_path, experiment_file):
    path = experiment_file("  - {method: lora, lr: 1.0e-2, r: 4}\n", steps=3)
    path.write_text(path.read_text().replace("train:\n", "train:\n  timing_warmup_steps: 1\n"))
    assert main([str(path), "-q", "--no-report"]) == 0
    (record,) = _records(tmp_path).values()
    assert "training_state" not in record["memory"]  # profiling would have cost a measured step


def test_kineto_memory_events_the_measurement_reads():
    """torch.profiler's private event list (checked on torch 2.13): what measure.StepAllocations sums."""
    import torch

    from peftlab.runtime.measure import StepAllocations

    with StepAllocations() as allocations:
        x = torch.ones(256, 1024)  # 1 MiB
        y = x * 2
        del x, y
    assert allocations.peak_bytes is not None, "torch.profiler kineto_results.events()/[memory] moved (torch 2.13)"
    assert allocations.peak_bytes >= 2 * MB
