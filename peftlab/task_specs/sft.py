"""Chat SFT of a causal LM: loss on the answer, greedy answers scored against the references.

`data.metric` picks the primary score (peftlab/tasks/scoring.py): `exact_match` (the default,
`accuracy`: normalised whole answers, or the answers `data.answer_extractor` finds, e.g. GSM8K's
final number), `bleu` (sacrebleu's corpus BLEU) or `rouge` (rouge-score's ROUGE-L), the last two
on 0..1 like accuracy. Exact match is computed under every choice.
"""

from peftlab.task_specs import MetricChoice, MetricSpec, TaskSpec, register

_EXACT = ("gold", "prediction", "correct")

SPEC = register(
    TaskSpec(
        name="sft",
        summary="chat-formatted supervised fine-tuning; generated answers scored against the references",
        runtime="peftlab.tasks.sft",
        peft_task_type="CAUSAL_LM",
        model_class="AutoModelForCausalLM",
        head="the pretrained LM head (no fresh module)",
        metrics=(
            MetricSpec(
                "accuracy",
                "max",
                "normalised exact match of the greedy answer",
                short="acc",
                statistic="mean:correct",
                display=("acc", "Acc.", "Acc"),
                words="accuracy",
            ),
            MetricSpec(
                "f1_macro",
                "max",
                "macro-F1 of answers that are label names",
                short="F1",
                display=("macro-F1", "Macro-F1", "FOne"),
            ),
            MetricSpec("loss", "min", "mean token loss of the reference answers"),
            MetricSpec("perplexity", "min", "exp(loss)", short="ppl", fmt=".2f", curve=False),
            MetricSpec(
                "label_mentioned_accuracy", "max", "answers naming exactly the gold label, leniently", curve=False
            ),
            MetricSpec("unparsed_fraction", "min", "answers that are no label name", curve=False),
            MetricSpec(
                "bleu",
                "max",
                "sacrebleu corpus BLEU / 100 (data.metric: bleu)",
                short="BLEU",
                statistic="corpus_bleu",
                display=("BLEU", "BLEU", "Bleu"),
            ),
            MetricSpec(
                "rouge_l",
                "max",
                "mean rouge-score ROUGE-L F-measure (data.metric: rouge)",
                short="ROUGE-L",
                statistic="mean:rouge_l",
                display=("ROUGE-L", "ROUGE-L", "RougeL"),
            ),
        ),
        primary="accuracy",
        per_example=_EXACT,
        predictions=(
            '{"split", "id", "gold": reference answer, "prediction": generated answer, "correct": bool'
            ' (exact match), + bleu: "matches", "totals" (per n-gram order), "hyp_len", "ref_len";'
            ' + rouge: "rouge_l"}'
        ),
        targets="answers",
        metric_choices=(
            MetricChoice("exact_match", "accuracy", _EXACT),
            MetricChoice("bleu", "bleu", (*_EXACT, "matches", "totals", "hyp_len", "ref_len")),
            MetricChoice("rouge", "rouge_l", (*_EXACT, "rouge_l")),
        ),
        answer_extractors=("gsm8k_final_number",),
    )
)
