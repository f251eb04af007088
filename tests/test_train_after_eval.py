"""Every registered method trains on after an intermediate evaluation, on every CPU.

QLoRA died at the first training step after a validation pass on CPUs with AVX-512-BF16:
bitsandbytes repacked its 4-bit weights in place for a bf16 inference kernel during the
evaluation and never unpacked them (`peftlab/methods/bnb_cpu.py`). The suite passed on machines
without that instruction set because no test trained past an evaluation. Here bitsandbytes is
told the CPU has AVX-512-BF16 (`has_avx512bf16` → True), so the repacking path is taken on any
machine, and every method trains through evaluations after steps 1, 2 and 3.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from peftlab.methods import REGISTRY

SFT_UNSUPPORTED: set[str] = set()  # methods that are a config error for the sft task (none today)


@pytest.fixture
def cpu_claims_avx512bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every 4-bit layer built from now on take bitsandbytes' AVX-512-BF16 repacking path."""
    import bitsandbytes.nn.modules as bnb_modules

    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)


def _run_all(path: Path) -> list[dict]:
    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    experiment = load_experiment(path)
    ws = prepare_workspace(experiment)
    plan = make_plan(experiment)
    return [execute_run(ws, spec, (i, len(plan)), quiet=True).as_json() for i, spec in enumerate(plan, 1)]


def _write(path: Path, model: Path, data: Path, task: str, method: str) -> Path:
    from tests.test_methods import yaml_params

    lr = "1.0e-3" if method == "full" else "1.0e-2"
    path.write_text(
        f"name: after_eval\nmodel: {model}\ntask: {task}\ndata:\n  source: {data}\n  max_length: 32\n"
        "  validation_limit: 8\n  test_limit: 8\n"
        "train:\n  steps: 3\n  batch_size: 4\n  eval_every: 1\n  eval_batch_size: 8\n  warmup_ratio: 0.0\n"
        f"seeds: [0]\noutput_dir: {path.parent / 'results'}\nmethods:\n  - method: {method}\n    lr: {lr}\n"
        + yaml_params(method)
    )
    return path


@pytest.mark.parametrize("task", ["classification", "sft"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_trains_on_after_intermediate_evaluations(
    name, task, cpu_claims_avx512bf16, tiny_bert, tiny_llama, tiny_dataset, tmp_path
):
    if task == "sft" and name in SFT_UNSUPPORTED:
        pytest.skip(f"{name} does not support sft")
    model = tiny_bert if task == "classification" else tiny_llama
    (record,) = _run_all(_write(tmp_path / "exp.yaml", model, tiny_dataset, task, name))
    assert record["status"] == "ok", f"{name}/{task}: {record.get('error')}\n{record.get('traceback', '')}"
    if REGISTRY[name].trains:
        # an evaluation after every step, and a training step after each of the first two
        assert [p["step"] for p in record["metrics"]["curve"]] == [1, 2, 3]
    # the recipe ran the method's calibration pass (EVA, LoRA-GA) through the registry's hook
    assert ("calibrate_s" in record["time"]) == (REGISTRY[name].calibrate is not None)


def test_an_evaluation_leaves_4bit_weights_in_their_training_layout(cpu_claims_avx512bf16, tiny_bert):
    """The 4-bit weights after train → eval → train are byte-identical to those before the evaluation."""
    import bitsandbytes as bnb

    from tests.test_methods import prepare

    model, tokenizer = prepare("qlora", tiny_bert)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers
    batch = tokenizer(["a good film", "a dull plot"], return_tensors="pt", padding=True)
    labels = torch.tensor([1, 0])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    model.train()
    model(**batch, labels=labels).loss.backward()
    optimizer.step()
    before = [layer.weight.data.clone() for layer in layers]
    model.eval()
    with torch.no_grad():
        model(**batch)
    assert not any(getattr(layer.weight.quant_state, "packing_format_for_cpu", False) for layer in layers)
    assert all(torch.equal(layer.weight.data, b) for layer, b in zip(layers, before, strict=True))
    model.train()
    model(**batch, labels=labels).loss.backward()  # the step that raised "a view of a leaf Variable…"
    optimizer.step()


def test_the_bitsandbytes_cpu_kernel_notice_is_dropped_and_other_lines_are_not(caplog):
    """bitsandbytes' import-time "Failed to load CPU gemm_4bit_forward…" concerns a path peftlab never takes."""
    import logging

    import peftlab  # noqa: F401  (installs the filter)

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING, logger="bitsandbytes.backends.cpu.ops"):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please …", "No module")
        logger.warning("some other bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes warning"]
