"""What the shipped label metrics share: an `evaluate.Metric` over integer labels, scored by scikit-learn.

`evaluate.load` takes a metric module by file path (peftlab/metrics/__init__.py: offline, no hub
script) and uses the first concrete `evaluate.Metric` class the module holds. Each shipped
module is therefore a few lines that call `label_metric` with its sklearn scorer; the features,
the info and the compute plumbing live here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import datasets
import evaluate


def label_metric(name: str, description: str, inputs: str, score: Callable[..., dict[str, float]]) -> type:
    """An `evaluate.Metric` subclass named `name` whose compute is `score(predictions, references, **kwargs)`."""

    @evaluate.utils.file_utils.add_start_docstrings(description, inputs)
    class LabelMetric(evaluate.Metric):
        def _info(self) -> evaluate.MetricInfo:
            return evaluate.MetricInfo(
                description=description,
                citation="",
                inputs_description=inputs,
                features=datasets.Features(
                    {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
                ),
            )

        def _compute(self, predictions: list[int], references: list[int], **kwargs: Any) -> dict[str, float]:
            return score(predictions, references, **kwargs)

    LabelMetric.__name__ = LabelMetric.__qualname__ = name
    return LabelMetric
