"""Regression on single texts or sentence pairs (STS-B's shape): one output, MSE loss, correlations.

Pearson is primary because it is the number the field reports for STS-B (the LoRA paper's
Table 2 and GLUE's leaderboard list Pearson first; Spearman is reported beside it). It rewards a
linear fit of the ratings, which an MSE-trained head is; Spearman, rank order only, is kept as
the check that a high Pearson is not carried by a few extreme examples.
"""

from peftlab.task_specs import MetricSpec, TaskSpec, register

SPEC = register(
    TaskSpec(
        name="regression",
        summary="single texts or sentence pairs to one number (MSE), scored by Pearson and Spearman correlation",
        runtime="peftlab.tasks.regression",
        peft_task_type="SEQ_CLS",
        model_class="AutoModelForSequenceClassification",
        head="a fresh linear head with one output (num_labels=1, problem_type regression)",
        metrics=(
            MetricSpec(
                "pearson",
                "max",
                "Pearson correlation of predictions and gold (scipy)",
                short="pearson",
                statistic="pearson",
                display=("Pearson r", "Pearson $r$", "Pearson"),
            ),
            MetricSpec(
                "spearman",
                "max",
                "Spearman rank correlation of predictions and gold (scipy)",
                short="spearman",
                statistic="spearman",
                display=("Spearman ρ", r"Spearman $\rho$", "Spearman"),
            ),
            MetricSpec("mse", "min", "mean squared error", short="MSE", display=("MSE", "MSE", "MSE")),
            MetricSpec("loss", "min", "mean MSE loss of the model's forward pass", curve=True),
        ),
        primary="pearson",
        per_example=("gold", "prediction"),
        predictions='{"split", "id", "gold": number, "prediction": number}',
        targets="numbers",
        pairs=True,
    )
)
