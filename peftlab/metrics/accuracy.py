"""Accuracy, shipped with peftlab as an `evaluate` metric module so that it loads offline."""

from sklearn.metrics import accuracy_score

from peftlab.metrics import label_metric


def _accuracy(predictions, references, normalize=True, sample_weight=None):
    return {
        "accuracy": float(accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight))
    }


Accuracy = label_metric(
    "Accuracy",
    description="Proportion of predictions equal to the reference labels.",
    inputs="predictions: list of int; references: list of int. Returns {'accuracy': float}.",
    score=_accuracy,
)
