"""Chat SFT of a causal LM: loss on the answer, greedy answers scored by normalised exact match."""

from peftlab.task_specs import MetricSpec, TaskSpec, register

SPEC = register(
    TaskSpec(
        name="sft",
        summary="chat-formatted supervised fine-tuning; generated answers scored against the references",
        runtime="peftlab.tasks.sft",
        peft_task_type="CAUSAL_LM",
        model_class="AutoModelForCausalLM",
        head="the pretrained LM head (no fresh module)",
        metrics=(
            MetricSpec("accuracy", "max", "normalised exact match of the greedy answer", short="acc"),
            MetricSpec("f1_macro", "max", "macro-F1 of answers that are label names", short="F1"),
            MetricSpec("loss", "min", "mean token loss of the reference answers"),
            MetricSpec("perplexity", "min", "exp(loss)", short="ppl", fmt=".2f", curve=False),
            MetricSpec(
                "label_mentioned_accuracy", "max", "answers naming exactly the gold label, leniently", curve=False
            ),
            MetricSpec("unparsed_fraction", "min", "answers that are no label name", curve=False),
        ),
        primary="accuracy",
        per_example=("gold", "prediction", "correct"),
        predictions='{"split", "id", "gold": reference answer, "prediction": generated answer, "correct": bool}',
        targets="answers",
    )
)
