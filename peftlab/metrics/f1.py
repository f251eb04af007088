"""F1 (macro by default), shipped with peftlab as an `evaluate` metric module so that it loads offline."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = "Harmonic mean of precision and recall; 'macro' averages the per-class F1 scores equally."
_CITATION = ""
_KWARGS_DESCRIPTION = "predictions: list of int; references: list of int; average: 'macro'|'micro'|'weighted'."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, average="macro", labels=None):
        score = f1_score(references, predictions, average=average, labels=labels, zero_division=0)
        return {"f1": float(score)}
