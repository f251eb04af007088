"""Sequence (or sentence-pair) classification: a fresh head over the classes, scored by the argmax label."""

from peftlab.task_specs import MetricSpec, TaskSpec, register

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
            ),
            MetricSpec("f1_macro", "max", "macro-F1 over every class the head has", short="F1", statistic="macro_f1"),
            MetricSpec("loss", "min", "mean cross-entropy"),
        ),
        primary="accuracy",
        per_example=("gold", "prediction", "correct"),
        predictions='{"split", "id", "gold": class id, "prediction": class id, "correct": bool}',
        targets="classes",
        pairs=True,
        learning_baseline="majority_rate",
    )
)
