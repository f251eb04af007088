"""`python -m peftlab.cli.export RUN --merge OUT`: merged models load with plain transformers and compute what
the adapted model computed; runs with nothing to merge fail with one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from peftlab.cli.export import find_record, load_adapted, main
from peftlab.records.record import RunRecord


def _record(results: Path, method: str) -> Path:
    for file in (results / "runs").glob("*.json"):
        if json.loads(file.read_text())["method"] == method:
            return file
    raise AssertionError(f"no {method} record in {results}")


def _inputs(tokenizer) -> dict[str, torch.Tensor]:
    batch = tokenizer(["the film was good", "a dull and boring plot and it was bad"], padding=True, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def test_merged_causal_lm_matches_the_adapted_one(sft_results, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    record_file = _record(sft_results, "lora")
    record = json.loads(record_file.read_text())
    out = tmp_path / "merged"
    assert main([record["run_id"], "--merge", str(out), "--results", str(sft_results.parent)]) == 0
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    assert out.stat().st_mode & 0o777 == 0o755 and (out / "model.safetensors").stat().st_mode & 0o777 == 0o644

    adapted, _ = load_adapted(RunRecord.model_validate(record), Path(record["artifacts"]["adapter"]))
    lora_b = [p for n, p in adapted.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b), "the adapter is still the identity: the test would prove nothing"
    merged = AutoModelForCausalLM.from_pretrained(out)
    inputs = _inputs(AutoTokenizer.from_pretrained(out))
    with torch.inference_mode():
        expected = adapted.eval()(**inputs).logits
        got = merged.eval()(**inputs).logits
        base = adapted.get_base_model()
        with adapted.disable_adapter():
            unadapted = base(**inputs).logits
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, unadapted, atol=1e-4), "the merge changed nothing"
    assert json.loads((out / "peftlab-export.json").read_text())["run_id"] == record["run_id"]


def test_merged_classifier_keeps_its_trained_head(experiment_file, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    experiment = load_experiment(experiment_file("  - method: lora\n    lr: 1.0e-2\n", steps=2))
    ws = prepare_workspace(experiment)
    (spec,) = make_plan(experiment)
    record = execute_run(ws, spec, quiet=True).as_json()  # the record as written
    assert record["status"] == "ok", record.get("error")
    out = tmp_path / "merged_cls"
    assert main([str(find_record(spec.run_id, tmp_path / "results")), "--merge", str(out)]) == 0

    adapted, _ = load_adapted(RunRecord.model_validate(record), Path(record["artifacts"]["adapter"]))
    merged = AutoModelForSequenceClassification.from_pretrained(out)
    inputs = _inputs(AutoTokenizer.from_pretrained(out))
    with torch.inference_mode():
        assert torch.allclose(merged.eval()(**inputs).logits, adapted.eval()(**inputs).logits, atol=1e-5)
    assert merged.config.id2label == {0: "0", 1: "1"}


@pytest.mark.parametrize(("method", "reason"), [("prompt_tuning", "nothing to merge"), ("zero_shot", "trains nothing")])
def test_runs_without_mergeable_weights_are_one_line_errors(sft_results, tmp_path, capsys, method, reason):
    out = tmp_path / "never"
    assert main([str(_record(sft_results, method)), "--merge", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and reason in err
    assert not out.exists()


def test_unknown_run_and_occupied_output_are_one_line_errors(sft_results, tmp_path, capsys):
    assert main(["no-such-run", "--merge", str(tmp_path / "x"), "--results", str(sft_results.parent)]) == 2
    assert "no record under" in capsys.readouterr().err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    assert main([str(_record(sft_results, "lora")), "--merge", str(occupied)]) == 2
    assert "not an empty folder" in capsys.readouterr().err and (occupied / "keep.txt").read_text() == "mine"
