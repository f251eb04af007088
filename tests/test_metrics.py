"""Macro-F1 averages over every class of the task, whatever a method happens to predict."""

from __future__ import annotations

import pytest

from peftlab.metrics import classification_scores


def test_macro_f1_averages_over_every_class_not_only_those_seen() -> None:
    # a 3-class task whose small test split holds no class 2; method A never predicts it
    references = [0, 0, 1, 1]
    a = classification_scores([0, 0, 1, 0], references, num_labels=3)
    # class 0: P 2/3 R 1 → 0.8; class 1: P 1 R 1/2 → 2/3; class 2: absent and never predicted → 0
    assert a["f1_macro"] == pytest.approx((0.8 + 2 / 3 + 0.0) / 3)
    # method B errs once by predicting class 2: same errors count, same class set in the average
    b = classification_scores([0, 0, 1, 2], references, num_labels=3)
    assert b["f1_macro"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    assert a["accuracy"] == b["accuracy"] == 0.75


def test_classification_evaluation_f1_covers_every_class_of_the_head(tiny_bert, tiny_dataset) -> None:
    import contextlib

    import pandas as pd
    import torch

    from peftlab.runtime.models import load_classifier, load_tokenizer, resolve_model_source
    from peftlab.tasks.classification import evaluate_split, tokenize_split

    source = resolve_model_source(str(tiny_bert))
    tokenizer = load_tokenizer(source)
    model = load_classifier(source, ("a", "b", "c"))
    with torch.no_grad():  # a head that always answers "a"
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    frame = pd.read_csv(tiny_dataset / "test.csv").head(16)  # labels 0 and 1, half each: class "c" is absent
    split = tokenize_split(frame["text"].tolist(), frame["label"].to_numpy(), tokenizer, 32)
    scores = evaluate_split(model, split, 8, "cpu", tokenizer.pad_token_id, contextlib.nullcontext)
    assert scores["accuracy"] == 0.5
    # "a": P 1/2 R 1 → 2/3; "b" and "c": 0 — averaged over all three classes, not the two seen
    assert scores["f1_macro"] == pytest.approx(2 / 3 / 3)


def test_each_shipped_metric_loads_by_path_and_scores_as_sklearn_does() -> None:
    """The modules share one `evaluate.Metric` (`label_metric`); each still loads by path as its own metric."""
    from sklearn.metrics import accuracy_score, f1_score

    from peftlab.metrics import SHIPPED, load_metric

    predictions, references = [0, 2, 1, 1, 0], [0, 1, 1, 2, 0]
    accuracy, f1 = (load_metric(name) for name in SHIPPED)
    assert (type(accuracy).__name__, type(f1).__name__) == ("Accuracy", "F1")
    assert accuracy.compute(predictions=predictions, references=references) == {
        "accuracy": accuracy_score(references, predictions)
    }
    scored = f1.compute(predictions=predictions, references=references, average="macro", labels=[0, 1, 2, 3])
    assert scored["f1"] == pytest.approx(f1_score(references, predictions, average="macro", labels=[0, 1, 2, 3]))
    with pytest.raises(KeyError, match="available: accuracy, f1"):
        load_metric("f2")
