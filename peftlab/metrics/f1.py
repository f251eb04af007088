"""F1 (macro by default), shipped with peftlab as an `evaluate` metric module so that it loads offline."""

from sklearn.metrics import f1_score

from peftlab.metrics import label_metric


def _f1(predictions, references, average="macro", labels=None):
    return {"f1": float(f1_score(references, predictions, average=average, labels=labels, zero_division=0))}


F1 = label_metric(
    "F1",
    description="Harmonic mean of precision and recall; 'macro' averages the per-class F1 scores equally.",
    inputs="predictions: list of int; references: list of int; average: 'macro'|'micro'|'weighted'.",
    score=_f1,
)
