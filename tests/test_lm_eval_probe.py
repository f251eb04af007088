"""The `lm_eval` forgetting probe (issue 25): lm-evaluation-harness over the live causal LM, before and after.

Offline, the task is one of our own in lm-eval's task format: a YAML over a local jsonl file,
found through `include_path` (lm-eval's `TaskManager(include_path=...)`). The tiny Llama is
evaluated in memory (adapter off for "before"); the record gets before/after/delta and each task's
figures, the predictions file each example's outcome, paired by lm-eval's document hash.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from peftlab.config import load_experiment
from peftlab.errors import ConfigError


@pytest.fixture(scope="module")
def local_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `tiny_sentiment.yaml` (multiple choice, accuracy) over `tiny_sentiment.jsonl` (24 rows)."""
    from tests.conftest import _sentence

    folder = tmp_path_factory.mktemp("lm_eval_tasks")
    rng = random.Random(3)
    rows = [{"text": _sentence(rng, i % 2), "label": i % 2} for i in range(24)]
    (folder / "tiny_sentiment.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "tiny_sentiment.yaml").write_text(
        "task: tiny_sentiment\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'tiny_sentiment.jsonl'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "review : {{text}} answer :"\n'
        "doc_to_choice: [negative, positive]\n"
        "doc_to_target: label\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return folder


def _sft(folder: Path, llama: Path, data: Path, probes: str, methods: str, name: str = "lmeval") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: {llama}\ntask: sft\ndata:\n  source: {data}\n  max_length: 48\n"
        "  validation_limit: 4\n  test_limit: 4\ntrain:\n  steps: 3\n  batch_size: 4\n  eval_every: 3\n"
        f"  eval_batch_size: 8\nseeds: [0]\noutput_dir: {folder / 'results'}\n{probes}methods:\n{methods}"
    )
    return path


def _probe(task_dir: Path, tasks: str = "[tiny_sentiment]") -> str:
    return f"forgetting:\n  - lm_eval: {{tasks: {tasks}, limit: 12, include_path: {task_dir}, batch_size: 4}}\n"


def _run(path: Path) -> list[dict]:
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    experiment = load_experiment(path)
    ws = prepare_workspace(experiment)
    return [execute_run(ws, spec, quiet=True).as_json() for spec in make_plan(experiment)]


def test_before_and_after_on_the_live_model_with_per_example_outcomes(tmp_path, tiny_llama, tiny_dataset, local_task):
    from peftlab.records.predictions import read_predictions

    methods = "  - method: zero_shot\n  - method: full\n    lr: 5.0e-2\n"
    zero, full = _run(_sft(tmp_path, tiny_llama, tiny_dataset, _probe(local_task), methods))
    for record in (zero, full):
        assert record["status"] == "ok", record.get("error")
        result = record["forgetting"]["lm_eval"]
        assert result["metric"] == "accuracy"
        task = result["detail"]["after"]["tasks"]["tiny_sentiment"]
        assert task["n"] == 12 and result["after"] == pytest.approx(task["acc"])
        assert result["delta"] == pytest.approx(result["before"] - result["after"])
        assert "examples" not in result["detail"]["before"] and "examples" not in result["detail"]["after"]
    assert zero["forgetting"]["lm_eval"]["before"] == full["forgetting"]["lm_eval"]["before"]  # one base model
    assert zero["forgetting"]["lm_eval"]["delta"] == 0.0  # nothing trained, nothing forgotten

    runs = tmp_path / "results" / "lmeval" / "runs"
    zero_preds, full_preds = read_predictions(runs, zero), read_predictions(runs, full)
    assert {"test", "lm_eval/tiny_sentiment/before", "lm_eval/tiny_sentiment/after"} <= set(full_preds)
    before, after = full_preds["lm_eval/tiny_sentiment/before"], full_preds["lm_eval/tiny_sentiment/after"]
    assert len(before.ids) == 12 and list(before.ids) == list(after.ids)  # paired by lm-eval's document hash
    assert after.correct.mean() == pytest.approx(full["forgetting"]["lm_eval"]["after"])
    assert set(before.prediction) <= {0, 1} and before.gold == [int(g) for g in before.gold]
    same = zero_preds["lm_eval/tiny_sentiment/after"]
    assert list(same.correct) == list(zero_preds["lm_eval/tiny_sentiment/before"].correct)
    # the full fine-tune moved the model lm-eval saw: its likelihoods, hence some choice, changed
    assert full["forgetting"]["lm_eval"]["detail"]["after"] != full["forgetting"]["lm_eval"]["detail"]["before"]


def test_measuring_leaves_training_exactly_as_without_the_probe(tmp_path, tiny_llama, tiny_dataset, local_task):
    methods = "  - method: lora\n    lr: 1.0e-2\n    dropout: 0.3\n"
    (plain,) = _run(_sft(tmp_path, tiny_llama, tiny_dataset, "", methods, name="plain"))
    (probed,) = _run(_sft(tmp_path, tiny_llama, tiny_dataset, _probe(local_task), methods, name="probed"))
    assert plain["status"] == probed["status"] == "ok"
    assert probed["metrics"]["final_train_loss"] == plain["metrics"]["final_train_loss"]


def test_an_unknown_task_names_the_closest_ones(tmp_path, tiny_llama, tiny_dataset, local_task):
    path = _sft(tmp_path, tiny_llama, tiny_dataset, _probe(local_task, "[tiny_sentimnt]"), "  - method: lora\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    message = str(err.value)
    assert "forgetting[0].tasks: unknown lm-eval task 'tiny_sentimnt'; closest: tiny_sentiment" in message
    assert "\n" not in message
    builtin = _sft(tmp_path, tiny_llama, tiny_dataset, _probe(local_task, "[hellaswg]"), "  - method: lora\n")
    with pytest.raises(ConfigError, match=r"unknown lm-eval task 'hellaswg'; closest: hellaswag"):
        load_experiment(builtin)


def test_known_builtin_tasks_and_the_long_spelling_are_accepted(tmp_path, tiny_llama, tiny_dataset):
    probes = "forgetting:\n  - {probe: lm_eval, tasks: [hellaswag, arc_challenge, winogrande], limit: 500}\n"
    experiment = load_experiment(_sft(tmp_path, tiny_llama, tiny_dataset, probes, "  - method: lora\n"))
    (entry,) = experiment.forgetting
    assert entry.probe == "lm_eval" and entry.params.tasks == ["hellaswag", "arc_challenge", "winogrande"]


def test_on_an_encoder_it_is_a_one_line_config_error(experiment_file, local_task):
    path = experiment_file(
        extra=f"forgetting: [{{lm_eval: {{tasks: [tiny_sentiment], include_path: {local_task}}}}}]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    message = str(err.value)
    assert "forgetting[0].probe: lm_eval evaluates causal language models (task: sft)" in message
    assert "'classification'" in message and "\n" not in message


def test_a_missing_lm_eval_names_the_pip_install(tmp_path, tiny_llama, tiny_dataset, local_task, monkeypatch):
    from peftlab.config import lm_eval_tasks

    monkeypatch.setattr(lm_eval_tasks, "lm_eval_installed", lambda: False)
    path = _sft(tmp_path, tiny_llama, tiny_dataset, _probe(local_task), "  - method: lora\n")
    with pytest.raises(ConfigError, match=r"lm_eval is not installed; pip install 'peftlab\[lmeval\]'"):
        load_experiment(path)


def test_overrides_address_the_probe_and_a_logger_by_name(tmp_path, tiny_llama, tiny_dataset, local_task):
    pytest.importorskip("wandb")
    probes = _probe(local_task) + "loggers: [tensorboard, {logger: wandb, mode: offline}]\n"
    path = _sft(tmp_path, tiny_llama, tiny_dataset, probes, "  - method: lora\n")
    experiment = load_experiment(path, ["forgetting.lm_eval.limit=5", "loggers.wandb.mode=disabled"])
    assert experiment.forgetting[0].params.limit == 5
    assert [(e.logger, getattr(e.params, "mode", None)) for e in experiment.loggers] == [
        ("tensorboard", None),
        ("wandb", "disabled"),
    ]
    with pytest.raises(ConfigError, match=r"no entry 'lm_evl' in the list; entries: lm_eval \(did you mean 'lm_eval'"):
        load_experiment(path, ["forgetting.lm_evl.limit=5"])
