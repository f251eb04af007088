"""Results others can use (issue 32): portable adapters that load on a "second machine" with plain peft, a model
card written from the record that huggingface_hub reads back, `peftlab export --adapter/--push/best`, and the
one-line refusals of bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.cli.export import main as export_main

HUB_ID = "peftlab-test/tiny-bert"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(root: Path, model_folder: Path, hub_id: str = HUB_ID) -> Path:
    """`root` laid out as the hub's cache (models--org--name/snapshots/<rev>/…, refs/main) holding `model_folder`."""
    repo = root / f"models--{hub_id.replace('/', '--')}"
    shutil.copytree(model_folder, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return root


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory, tiny_bert, tiny_dataset):
    """A LoRA run (2 steps) of an experiment whose model is a hub id, found offline in a hub-layout cache."""
    import huggingface_hub.constants as hub_constants

    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    root = tmp_path_factory.mktemp("training_machine")
    cache = hub_cache(root / "hub", tiny_bert)
    before = hub_constants.HF_HUB_CACHE
    hub_constants.HF_HUB_CACHE = str(cache)  # huggingface_hub reads it at call time: the run loads from here
    try:
        path = root / "exp.yaml"
        path.write_text(
            f"name: hubexp\nmodel: {HUB_ID}\ndata:\n  source: {tiny_dataset}\n  max_length: 32\n"
            "train:\n  steps: 2\n  batch_size: 8\n  eval_every: 2\n  eval_batch_size: 16\n"
            f"seeds: [0]\noutput_dir: {root / 'results'}\nmethods:\n  - method: lora\n    lr: 1.0e-2\n"
        )
        experiment = load_experiment(path)
        ws = prepare_workspace(experiment)
        (spec,) = make_plan(experiment)
        record = execute_run(ws, spec, quiet=True)
    finally:
        hub_constants.HF_HUB_CACHE = before
    assert record["status"] == "ok", record.get("error")
    return experiment.results_dir(), record


def test_builtin_models_carry_their_hub_id_as_data():
    from peftlab.runtime.models import BUILTIN_MODELS, ModelSource

    assert BUILTIN_MODELS["minilm-l6"].hub_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert BUILTIN_MODELS["smollm2-135m"].hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    builtin = ModelSource("builtin:minilm-l6", "builtin", "/venv/site-packages/x/model", "pkg==1", "org/name", "abc")
    assert builtin.portable_name == "org/name"
    assert builtin.as_dict()["location"] == "/venv/site-packages/x/model"  # the local path: the record only
    assert builtin.as_dict()["hub_id"] == "org/name" and builtin.as_dict()["revision"] == "abc"
    assert ModelSource("models/mine", "local", "/home/me/models/mine").portable_name == "models/mine"  # as given
    assert ModelSource("org/x", "hub", "org/x").portable_name == "org/x"


def test_saved_adapter_names_the_hub_id_not_this_machines_path(hub_run):
    from huggingface_hub import ModelCard

    _, record = hub_run
    adapter = Path(record["artifacts"]["adapter"])
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == HUB_ID
    assert record["model"]["hub_id"] == HUB_ID and record["model"]["kind"] == "hub"
    card = ModelCard.load(adapter / "README.md")  # peft's own card, repointed too
    assert card.data.base_model == HUB_ID and f"base_model:adapter:{HUB_ID}" in card.data.tags
    assert "snapshots" not in (adapter / "README.md").read_text()


SECOND_MACHINE = """
import json, sys, torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer
adapter = sys.argv[1]
base_id = json.load(open(adapter + "/adapter_config.json"))["base_model_name_or_path"]
base = AutoModelForSequenceClassification.from_pretrained(base_id)
model = PeftModel.from_pretrained(base, adapter).eval()
batch = AutoTokenizer.from_pretrained(base_id)(["the film was good", "a dull plot"], padding=True, return_tensors="pt")
with torch.inference_mode():
    print(json.dumps(model(**batch).logits.tolist()))
"""


def test_adapter_loads_on_a_second_machine_with_plain_peft(hub_run, tiny_bert, tmp_path):
    """A fresh process, a different hub cache (the training one is gone), offline: plain peft finds the base."""
    import torch
    from transformers import AutoTokenizer

    from peftlab.cli.export import load_adapted

    results, record = hub_run
    out = tmp_path / "shared_adapter"
    assert export_main([record["run_id"], "--adapter", str(out), "--results", str(results.parent)]) == 0
    cache = hub_cache(tmp_path / "other_machine_hub", tiny_bert)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", SECOND_MACHINE, str(out)], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))

    local = dict(record, model={**record["model"], "location": str(tiny_bert), "kind": "local"})
    adapted, _ = load_adapted(local, Path(record["artifacts"]["adapter"]))
    batch = AutoTokenizer.from_pretrained(tiny_bert)(
        ["the film was good", "a dull plot"], padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        expected = adapted.eval()(**batch).logits
    assert torch.allclose(got, expected, atol=1e-5), "the second machine computes something else"


def test_export_adapter_writes_a_hub_folder_whose_card_huggingface_hub_reads_back(hub_run, tmp_path):
    from huggingface_hub import ModelCard

    results, record = hub_run
    out = tmp_path / "card_adapter"
    assert export_main([record["run_id"], "--adapter", str(out), "--results", str(results.parent)]) == 0
    assert {p.name for p in out.iterdir()} == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
        "record.json",
    }
    assert json.loads((out / "record.json").read_text())["run_id"] == record["run_id"]
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.library_name == "peft" and data.base_model == HUB_ID
    assert data.to_dict()["base_model_relation"] == "adapter"
    scores = {e.metric_type: e.metric_value for e in data.eval_results}
    test = record["metrics"]["test"]
    assert scores["accuracy"] == pytest.approx(test["accuracy"]) and scores["f1_macro"] == pytest.approx(
        test["f1_macro"]
    )
    assert {e.dataset_split for e in data.eval_results} == {"test"}
    text = card.text
    for section in ("## Evaluation (test split)", "## Method", "## Training recipe", "## Costs", "## Data"):
        assert section in text
    assert '"r": 8' in text and "| steps | 2 |" in text and "trainable parameters" in text
    assert "(a) these trained models" in text  # the interval and the question it answers
    assert record["env"]["versions"]["peft"] in text
    assert "Model Card for Model ID" not in text and str(results) not in card.content


def test_exporting_a_failed_run_or_a_run_without_adapter_is_one_line(sft_results, tmp_path, capsys):
    from peftlab.records.results import read_record, write_record

    results = tmp_path / "results" / "copy"
    shutil.copytree(sft_results, results)
    lora = next(read_record(p) for p in (results / "runs").glob("*.json") if read_record(p)["method"] == "lora")
    failed = dict(lora, run_id="lora-s9-failed", status="failed", error="boom")
    write_record(results, failed)
    cases = [("lora-s9-failed", "status failed"), ("zero_shot", "trains nothing")]
    for run, reason in cases:
        if run == "zero_shot":
            run = next(read_record(p)["run_id"] for p in (results / "runs").glob("zero*.json"))
        out = tmp_path / f"never-{run}"
        assert export_main([run, "--adapter", str(out), "--results", str(results.parent)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and reason in err and not out.exists()
    nosave = dict(lora, run_id="lora-s8-nosave", artifacts=None)
    write_record(results, nosave)
    assert export_main(["lora-s8-nosave", "--adapter", str(tmp_path / "n"), "--results", str(results.parent)]) == 2
    assert "no saved adapter" in capsys.readouterr().err and not (tmp_path / "n").exists()


def test_push_offline_or_without_token_is_one_line_and_uploads_nothing(hub_run, tmp_path, capsys, monkeypatch):
    import peftlab.runtime.hub as hub

    results, record = hub_run
    out = tmp_path / "pushed"
    args = [record["run_id"], "--adapter", str(out), "--push", "me/tiny", "--results", str(results.parent)]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert export_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "offline" in err and not out.exists()

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no_token_home"))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    uploads = []
    monkeypatch.setattr("huggingface_hub.HfApi.upload_folder", lambda *a, **k: uploads.append(k))
    assert export_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no Hugging Face token" in err and not out.exists() and not uploads


def test_push_uploads_the_folder_in_one_commit(hub_run, tmp_path, monkeypatch):
    import peftlab.runtime.hub as hub

    results, record = hub_run
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_test")
    calls = []
    monkeypatch.setattr(
        "huggingface_hub.HfApi.create_repo", lambda self, repo_id, **k: calls.append(("create", repo_id))
    )

    def upload(self, **kwargs):
        calls.append(("upload", kwargs["repo_id"], sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())))
        return "https://example.invalid/commit/1"

    monkeypatch.setattr("huggingface_hub.HfApi.upload_folder", upload)
    assert export_main([record["run_id"], "--push", "me/tiny", "--results", str(results.parent)]) == 0
    assert calls == [
        ("create", "me/tiny"),
        ("upload", "me/tiny", ["README.md", "adapter_config.json", "adapter_model.safetensors", "record.json"]),
    ]


def _best_experiment(folder: Path, accuracies: dict[str, float]) -> Path:
    from peftlab.records.results import write_record
    from tests.test_report import synthetic_record

    for label, acc in accuracies.items():
        for seed in (0, 1, 2):
            record = synthetic_record(folder.name, label, label, seed, acc, 100, 1000.0, 900.0, 0.3, {"r": 8})
            record["artifacts"] = {"adapter": str(folder / "adapters" / record["run_id"])}
            write_record(folder, record)
    return folder


def test_best_is_the_significantly_best_methods_best_seed_with_the_reason(tmp_path):
    from peftlab.cli.export import choose_best
    from peftlab.records.results import read_record

    folder = _best_experiment(tmp_path / "exp", {"lora": 0.95, "prompt_tuning": 0.60, "ia3": 0.62})
    record_file, reason = choose_best(folder)
    chosen = read_record(record_file)
    assert chosen["label"] == "lora"
    lora = [read_record(p) for p in (folder / "runs").glob("lora-*.json")]
    assert chosen["metrics"]["test"]["accuracy"] == max(r["metrics"]["test"]["accuracy"] for r in lora)
    assert "marked best" in reason and f"seed {chosen['seed']}" in reason and "α = 0.05" in reason


def test_best_without_a_significant_winner_is_one_line(tmp_path, capsys):
    folder = _best_experiment(tmp_path / "tie", {"lora": 0.80, "ia3": 0.80})
    assert export_main(["best", "--adapter", str(tmp_path / "x"), "--results", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no method is significantly best" in err and not (tmp_path / "x").exists()
