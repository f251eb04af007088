"""The runtime of `balanced_classification`: peftlab's classification, with balanced accuracy added."""

from __future__ import annotations

from typing import Any

from peftlab.task_specs import get_task_spec
from peftlab.tasks.classification import ClassificationTask


class BalancedClassification(ClassificationTask):
    spec = get_task_spec("balanced_classification")
    name = spec.name

    def evaluate(self, model: Any, split: Any, ctx: Any) -> dict[str, Any]:
        from sklearn.metrics import balanced_accuracy_score

        scores = super().evaluate(model, split, ctx)
        examples = scores["examples"]
        scores["balanced_accuracy"] = float(balanced_accuracy_score(examples["gold"], examples["prediction"]))
        return scores


TASK = BalancedClassification()
