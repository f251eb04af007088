"""Metric modules that peftlab ships, so that `evaluate` works offline.

`evaluate.load("accuracy")` fetches a script from the hub and fails without a network; a metric
module loaded by file path needs nothing from outside. Each module keeps one import per line:
evaluate's dependency check misreads `import a, b`. The modules are a few lines each: what they
share, the `evaluate.Metric` over integer labels, is `label_metric` below. Adding a metric adds
one module here and edits none.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

METRICS_DIR = Path(__file__).parent
SHIPPED = tuple(sorted(p.stem for p in METRICS_DIR.glob("[!_]*.py")))  # accuracy, f1: one module each


@cache
def load_metric(name: str) -> Any:
    """Load a shipped metric module (`accuracy`, `f1`) through `evaluate.load` by path."""
    import evaluate

    if name not in SHIPPED:
        raise KeyError(f"no shipped metric {name!r}; available: {', '.join(SHIPPED)}")
    return evaluate.load(str(METRICS_DIR / f"{name}.py"))


def label_metric(name: str, description: str, inputs: str, score: Callable[..., dict[str, float]]) -> type:
    """An `evaluate.Metric` subclass `name` over integer labels, computed as `score(predictions, references, **kw)`.

    What every shipped metric module shares. `evaluate.load` uses the first concrete
    `evaluate.Metric` class a module holds, so each module binds the class this returns to a name.
    """
    import datasets
    import evaluate

    @evaluate.utils.file_utils.add_start_docstrings(description, inputs)
    class LabelMetric(evaluate.Metric):
        def _info(self) -> evaluate.MetricInfo:
            features = {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            return evaluate.MetricInfo(
                description=description,
                citation="",
                inputs_description=inputs,
                features=datasets.Features(features),
            )

        def _compute(self, predictions: list[int], references: list[int], **kwargs: Any) -> dict[str, float]:
            return score(predictions, references, **kwargs)

    LabelMetric.__name__ = LabelMetric.__qualname__ = name
    return LabelMetric


def classification_scores(predictions: list[int], references: list[int], num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 over all `num_labels` classes, the two numbers every classification record carries.

    Without an explicit label set, F1 averages over the classes that occur in the references or
    the predictions: a class absent from a (small) test split counts only for a method that
    predicts it, so two methods' macro-F1 would average over different classes. With every
    class, the average is the same for all methods; an absent class that is never predicted
    scores 0 (sklearn's `zero_division=0`) for every method alike.
    """
    accuracy = load_metric("accuracy").compute(predictions=predictions, references=references)["accuracy"]
    labels = list(range(num_labels)) or None  # None only for an empty split
    f1 = load_metric("f1").compute(predictions=predictions, references=references, average="macro", labels=labels)
    return {"accuracy": float(accuracy), "f1_macro": float(f1["f1"])}


def chosen_classification_score(metric: str | None, predictions: list[int], references: list[int]) -> dict[str, float]:
    """The score `data.metric` adds beside accuracy and macro-F1: GLUE's per-task metrics, by scikit-learn.

    `matthews`: `matthews_corrcoef` (CoLA). `f1`: `f1_score` of class 1 (`average="binary"`,
    GLUE's F1 for MRPC and QQP, whose class 1 is "equivalent"/"duplicate"); 0 when class 1 is
    never predicted nor gold (`zero_division=0`). None or `accuracy`: nothing more.
    """
    if metric == "matthews":
        from sklearn.metrics import matthews_corrcoef

        return {"matthews": float(matthews_corrcoef(references, predictions))}
    if metric == "f1":
        from sklearn.metrics import f1_score

        return {"f1": float(f1_score(references, predictions, average="binary", pos_label=1, zero_division=0))}
    return {}
