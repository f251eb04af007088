"""Sequence (or sentence-pair) classification: a fresh head over the classes, scored by the argmax label.

`data.metric` picks the primary score the way GLUE reports each task: `accuracy` (the default),
`matthews` (Matthews correlation, CoLA) or `f1` (binary F1 of class 1, MRPC and QQP, with
accuracy beside it). Accuracy and macro-F1 are computed under every choice; Matthews and binary
F1 only when chosen. All are scikit-learn's (peftlab/metrics), never re-implemented.
"""

from peftlab.task_specs import MetricChoice, MetricSpec, TaskSpec, register

_OUTCOMES = ("gold", "prediction", "correct")

SPEC = register(
    TaskSpec(
        name="classification",
        summary="single texts or sentence pairs into one of the label column's classes",
        runtime="peftlab.tasks.classification",
        peft_task_type="SEQ_CLS",
        model_class="AutoModelForSequenceClassification",
        head="a fresh linear head, one output per class",
        metrics=(
            MetricSpec(
                "accuracy",
                "max",
                "share of examples whose argmax class is the gold class",
                short="acc",
                statistic="mean:correct",
                display=("acc", "Acc.", "Acc"),
                words="accuracy",
            ),
            MetricSpec(
                "f1_macro",
                "max",
                "macro-F1 over every class the head has",
                short="F1",
                statistic="macro_f1",
                display=("macro-F1", "Macro-F1", "FOne"),
            ),
            MetricSpec("loss", "min", "mean cross-entropy"),
            MetricSpec(
                "matthews",
                "max",
                "Matthews correlation of predicted and gold classes (sklearn; data.metric: matthews, CoLA)",
                short="MCC",
                statistic="matthews",
            ),
            MetricSpec(
                "f1",
                "max",
                "binary F1 of class 1 (sklearn, pos_label=1; data.metric: f1, MRPC/QQP)",
                short="F1(1)",
                statistic="f1_binary",
                display=("F1", "F1", "FOneBinary"),
            ),
        ),
        primary="accuracy",
        per_example=_OUTCOMES,
        predictions='{"split", "id", "gold": class id, "prediction": class id, "correct": bool}',
        targets="classes",
        pairs=True,
        learning_baseline="majority_rate",
        metric_choices=(
            MetricChoice("accuracy", "accuracy", _OUTCOMES),
            # learning under a chosen metric starts from the majority-class predictor's score in that metric
            MetricChoice("matthews", "matthews", _OUTCOMES, learning_baseline="majority_matthews"),
            MetricChoice("f1", "f1", _OUTCOMES, learning_baseline="majority_f1"),
        ),
    )
)
