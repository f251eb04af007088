"""Multiple choice: a context and its choices, the index of the correct one; scored by accuracy.

Two model shapes, chosen by the model (peftlab/tasks/multiple_choice.py):
- a causal LM scores each choice by the summed log-likelihood of `" " + choice` after the context,
  exactly as lm-evaluation-harness's `multiple_choice` output type does: `acc` is the argmax of
  the log-likelihoods, `acc_norm` the argmax of log-likelihood / the choice's length in characters
  (lm-eval's `len(choice)`; its byte-length variant is `acc_bytes`, equal on ASCII text). Training
  puts the loss on the correct continuation only, like sft's answer-only loss, so every method
  (prompt tuning included) trains the same objective;
- an encoder with a multiple-choice head (BERT, RoBERTa, DeBERTa, ...: transformers'
  `AutoModelForMultipleChoice`) encodes each (context, choice) pair, a fresh one-logit head
  scores it, cross-entropy over the choices. There is no per-token likelihood to normalise, so
  `acc_norm` is `acc` there.
"""

from peftlab.task_specs import MetricSpec, TaskSpec, register

SPEC = register(
    TaskSpec(
        name="multiple_choice",
        summary="a context and 2+ choices (data.choices_column), the correct one's index as label; "
        "causal LMs scored by log-likelihood (lm-eval acc / acc_norm), encoders by a multiple-choice head",
        runtime="peftlab.tasks.multiple_choice",
        # causal LMs: peft's CAUSAL_LM wrapper; an encoder's multiple-choice head takes SEQ_CLS's
        # (peft has no multiple-choice type; see the runtime's `model_task_type`)
        peft_task_type="CAUSAL_LM",
        model_class="AutoModelForMultipleChoice | AutoModelForCausalLM",
        head="causal LMs: none (the pretrained LM head scores each choice); encoders: a fresh one-logit "
        "multiple-choice head, trained by every method",
        metrics=(
            MetricSpec(
                "acc",
                "max",
                "share of examples whose highest-scoring choice is the correct one (lm-eval acc)",
                short="acc",
                statistic="mean:correct",
            ),
            MetricSpec(
                "acc_norm",
                "max",
                "the same with each choice's log-likelihood divided by its length in characters "
                "(lm-eval acc_norm; equals acc on encoders)",
                short="acc_norm",
                statistic="mean:correct_norm",
            ),
            MetricSpec("loss", "min", "mean NLL per token of the correct continuation (encoders: cross-entropy)"),
        ),
        primary="acc",
        per_example=("gold", "prediction", "correct", "correct_norm"),
        predictions='{"split", "id", "gold": choice index, "prediction": choice index, "correct": bool, '
        '"correct_norm": bool}',
        targets="choices",
    )
)
