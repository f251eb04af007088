"""`balanced_classification`: classification whose primary score is balanced accuracy.

A task's declaration is torch-free (what config, planners and reports read); `runtime` names
the module whose `TASK` runs it, imported only by a run. Balanced accuracy (the mean recall over
classes) does not reward always answering the majority class of an imbalanced split.
"""

from peftlab.task_specs import MetricSpec, TaskSpec, get_task_spec, register

_classification = get_task_spec("classification")

SPEC = register(
    TaskSpec(
        name="balanced_classification",
        summary="classification scored by balanced accuracy (mean recall over the classes)",
        runtime="peftlab_demo.balanced_runtime",
        peft_task_type="SEQ_CLS",
        model_class="AutoModelForSequenceClassification",
        head="a fresh linear head, one output per class",
        metrics=(
            MetricSpec("balanced_accuracy", "max", "mean recall over the gold classes (sklearn)", short="bacc"),
            *(m for m in _classification.metrics if m.name in ("accuracy", "f1_macro", "loss")),
        ),
        primary="balanced_accuracy",
        per_example=("gold", "prediction", "correct"),
        predictions=_classification.predictions,
        targets="classes",
        learning_baseline="majority_rate",
    )
)
