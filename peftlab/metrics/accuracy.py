"""Accuracy, shipped with peftlab as an `evaluate` metric module so that it loads offline."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = "Proportion of predictions equal to the reference labels."
_CITATION = ""
_KWARGS_DESCRIPTION = "predictions: list of int; references: list of int. Returns {'accuracy': float}."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
