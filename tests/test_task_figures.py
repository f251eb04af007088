"""Every task shape gets the whole report: one tiny experiment per shape writes its full figure set.

Classification (scored by a chosen metric, `data.metric: matthews`), regression, multiple choice
and scored generation (sft) each run full fine-tuning and a LoRA rank sweep with a forgetting
probe, then the report. Every figure must exist, and the axes that show the task's score must
name the metric the records were scored by (read back from the PNG's `peftlab:axes` text),
never "accuracy" by default. Set PEFTLAB_KEEP_FIGURES=DIR to copy each PNG to DIR/<shape>/.

The task choice itself (peftlab/task_specs `TaskChoice`) is resolved once by config and carried:
the run spec holds it, the record's `task` block is it, and the learning probe measures in it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from peftlab.config import load_experiment
from peftlab.task_specs import TaskChoice, resolve_task

FIGURES = (
    "metric_vs_trainable_params",
    "metric_vs_memory",
    "metric_vs_rank",
    "training_curves",
    "paired_differences",
    "throughput",
)
FORGETTING_FIGURES = ("learning_vs_forgetting", "forgetting_vs_rank")  # where the task has a forgetting probe
# shape -> (task, model fixture, the `data:` lines besides source and max_length, metric, its words on an axis)
SHAPES = {
    "classification": ("classification", "tiny_bert", "  metric: matthews\n", "matthews", "matthews"),
    "regression": (
        "regression",
        "tiny_bert",
        "  text_column: sentence\n  label_column: score\n",
        "pearson",
        "Pearson r",
    ),
    "multiple_choice": ("multiple_choice", "tiny_bert", "", "acc", "acc"),
    "sft": ("sft", "tiny_llama", "  validation_limit: 8\n  test_limit: 12\n", "accuracy", "accuracy"),
}


def _probe(shape: str, folder: Path, tiny_dataset: Path) -> str:
    """The shape's forgetting probe (regression and multiple choice have none: their figure set has no forgetting)."""
    if shape == "classification":
        return f"forgetting:\n  - probe: linear_probe\n    source: {tiny_dataset}\n    max_length: 32\n"
    if shape == "sft":
        text = folder / "general.csv"
        text.write_text("text\n" + "\n".join(f"the film was {w} and the story is {w}" for w in ("good", "bad") * 20))
        return f"forgetting:\n  - probe: lm_loss\n    source: {text}\n    block_size: 16\n    max_blocks: 4\n"
    return ""


def _source(shape: str, folder: Path, tiny_dataset: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if shape == "regression":
        from tests.test_tasks import _ratings

        return _ratings(folder, {"train": 48, "validation": 16, "test": 24})
    if shape == "multiple_choice":
        from tests.test_multiple_choice import _write

        return _write(folder, {"train": 32, "validation": 12, "test": 16})
    return tiny_dataset


@pytest.fixture(scope="module", params=list(SHAPES))
def shape_results(request, tmp_path_factory, tiny_dataset) -> tuple[str, Path]:
    """One experiment of the shape: full and LoRA r ∈ {2, 4}, 2 steps, a linear forgetting probe; its report."""
    from peftlab.cli.report import write_experiment_report
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    shape = request.param
    task, model_fixture, data, _, _ = SHAPES[shape]
    model = request.getfixturevalue(model_fixture)
    folder = tmp_path_factory.mktemp(f"figures_{shape}")
    source = _source(shape, folder / "data", tiny_dataset)
    path = folder / "e.yaml"
    path.write_text(
        f"name: {shape}\nmodel: {model}\ntask: {task}\ndata:\n  source: {source}\n{data}  max_length: 32\n"
        "train: {steps: 2, batch_size: 4, eval_every: 1, eval_batch_size: 8}\n"
        f"seeds: [0]\noutput_dir: {folder / 'results'}\n"
        f"{_probe(shape, folder, tiny_dataset)}"
        "methods:\n  - {method: full, lr: 1.0e-3}\n  - {method: lora, lr: 1.0e-2, grid: {r: [2, 4]}}\n"
    )
    experiment = load_experiment(path)
    ws = prepare_workspace(experiment)
    plan = make_plan(experiment)
    for i, spec in enumerate(plan, 1):
        record = execute_run(ws, spec, (i, len(plan)), quiet=True)
        assert record.status == "ok", record.error
    write_experiment_report(experiment.results_dir())
    return shape, experiment.results_dir()


def _axes(png: Path) -> list[dict[str, str]]:
    from PIL import Image

    from peftlab.reporting.style import AXES_KEY

    with Image.open(png) as image:
        return json.loads(image.text[AXES_KEY])


def test_each_task_shape_writes_its_full_figure_set_in_its_metric(shape_results):
    shape, results = shape_results
    _, _, _, metric, words = SHAPES[shape]
    figures = results / "figures"
    probed = shape in ("classification", "sft")
    expected = FIGURES + FORGETTING_FIGURES if probed else FIGURES
    if not probed:  # skipped with its reason, and no stale file left
        assert not any((figures / f"{name}.png").exists() for name in FORGETTING_FIGURES)
    for name in expected:
        for ext in ("png", "pdf"):
            assert (figures / f"{name}.{ext}").stat().st_size > 1000, (shape, name, ext)
    labels = {name: _axes(figures / f"{name}.png") for name in expected}
    for name in ("metric_vs_trainable_params", "metric_vs_memory", "metric_vs_rank", "training_curves"):
        y = labels[name][0]["y"]
        assert y.split("\n")[0].split(" (")[0] in (f"test {words}", f"validation {words}"), (shape, name, y)
    assert labels["paired_differences"][0]["x"].startswith(f"Δ test {words} vs full"), shape
    if probed:
        assert f"test {words} gain" in labels["learning_vs_forgetting"][-1]["x"], shape
    if shape != "sft" and shape != "multiple_choice":
        # no figure of a task scored in another metric names accuracy on an axis
        assert not any("accuracy" in v for panels in labels.values() for axis in panels for v in axis.values())
    for run in sorted((results / "runs").glob("*.json")):
        record = json.loads(run.read_text())
        assert record["task"]["primary"] == metric and record["task"]["name"] == SHAPES[shape][0]
        if probed:
            assert record["learning"]["metric"] == metric  # learning measured in the chosen metric
    keep = os.environ.get("PEFTLAB_KEEP_FIGURES")
    if keep:
        target = Path(keep) / shape
        target.mkdir(parents=True, exist_ok=True)
        for name in expected:
            shutil.copy(figures / f"{name}.png", target / f"{name}.png")


# ---------------------------------------------------------------- the choice, resolved once and carried


def test_the_task_choice_is_resolved_once_and_carried_by_every_run_spec(experiment_file):
    from peftlab.planners.grid import make_plan

    experiment = load_experiment(experiment_file(extra=""), ["data.metric=matthews"])
    chosen = experiment.task_choice
    assert chosen == TaskChoice("classification", "matthews", "max", "matthews", "matthews")
    assert {spec.task for spec in make_plan(experiment)} == {chosen}
    assert chosen.record_block() == {
        "name": "classification",
        "primary": "matthews",
        "direction": "max",
        "statistic": "matthews",
        "choice": "matthews",
    }
    assert TaskChoice.from_block(chosen.record_block()) == chosen


def test_a_cola_run_with_matthews_learns_and_forgets_in_matthews(experiment_file, tiny_dataset):
    """`data.metric: matthews`: learning is Matthews after minus the majority predictor's Matthews (0), not accuracy."""
    from peftlab.planners.grid import make_plan
    from peftlab.probes.suite import learning_baseline, learning_metric
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    chosen = resolve_task("classification", "matthews")
    assert learning_metric(chosen) == ("matthews", "max")
    assert learning_baseline(chosen) == "majority_matthews"
    assert learning_baseline(resolve_task("classification")) == "majority_rate"  # the default is unchanged
    probe = f"forgetting:\n  - probe: linear_probe\n    source: {tiny_dataset}\n    max_length: 32\n"
    experiment = load_experiment(experiment_file(steps=2, extra=probe), ["data.metric=matthews"])
    ws = prepare_workspace(experiment)
    (spec,) = make_plan(experiment)
    record = execute_run(ws, spec, quiet=True)
    assert record.status == "ok", record.error
    learning = record.learning
    assert learning.metric == "matthews" and learning.baseline == "majority_matthews"
    assert learning.base == 0.0  # always answering one class has no correlation with the gold classes
    assert learning.after == record.metrics.test["matthews"]
    assert learning.gain == pytest.approx(record.metrics.test["matthews"])


# ---------------------------------------------------------------- lower is better: the front flips


def test_a_lower_is_better_metric_flips_the_front_and_says_so_on_the_axis(tmp_path):
    import pandas as pd

    from peftlab.reporting.figures import metric_vs_memory, pareto_front
    from peftlab.reporting.style import method_styles

    points = [(1.0, 0.5), (2.0, 0.3), (3.0, 0.4), (4.0, 0.1)]
    assert pareto_front(points) == [(1.0, 0.5)]  # higher is better: the cheapest is best already
    assert pareto_front(points, higher_is_better=False) == [(1.0, 0.5), (2.0, 0.3), (4.0, 0.1)]
    summary = pd.DataFrame(
        {
            "method": ["a", "b", "c", "d"],
            "experiment": "e",
            "runs_ok": 1,
            "peak_memory_mb": [p[0] for p in points],
            "test_mse_mean": [p[1] for p in points],
            "test_mse_ci95": 0.01,
            "primary_metric": "mse",
            "primary_direction": "min",
            "device_type": "cpu",
        }
    )
    (png, _) = metric_vs_memory(None, summary, method_styles(list(summary["method"])), tmp_path)
    assert _axes(png)[0]["y"] == "test MSE (95% interval; lower is better)"
