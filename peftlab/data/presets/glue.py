"""GLUE (nyu-mll/glue, parquet, one config per task) as the LoRA paper and most encoder PEFT papers use it.

GLUE's test labels are hidden (-1 on the hub), so papers report the dev set: here the hub's
`validation` split is peftlab's **test** split, and peftlab's validation split (model selection,
the tuned protocol) is carved off train by content hash, 10% (peftlab/data/sources.py). This is
how the LoRA paper's Table 2 numbers are dev-set numbers; set `validation_limit` to keep
intermediate validations of MNLI/QQP (tens of thousands of carved rows) short.

Metrics follow GLUE: Matthews correlation for CoLA, F1 (binary, positive class 1) with accuracy
beside it for MRPC and QQP, Pearson (Spearman beside it) for STS-B, accuracy for the rest. MNLI's
test is `validation_matched`; `validation_mismatched` is evaluated beside it into the record's
`metrics.validation_mismatched`.
"""

from __future__ import annotations

from peftlab.data.presets import Preset, register

HUB_ID = "nyu-mll/glue"
CITATION = (
    "Wang et al., GLUE: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding, "
    "ICLR 2019 (https://gluebenchmark.com); hub copy nyu-mll/glue"
)


def _glue(
    task_name: str,
    columns: tuple[str, ...],
    labels: tuple[str, ...],
    metric: str | None,
    title: str,
    task: str = "classification",
    test: str = "validation",
    extra: dict[str, str] | None = None,
) -> Preset:
    config: dict[str, str] = {"text_column": columns[0], "label_column": "label"}
    if len(columns) == 2:
        config["text_pair_column"] = columns[1]
    if metric is not None:
        config["metric"] = metric
    return Preset(
        name=f"glue/{task_name}",
        hub_id=HUB_ID,
        hub_config=task_name,
        task=task,
        title=title,
        citation=CITATION,
        splits={"train": "train", "test": test},
        config=config,
        label_names=labels,
        extra_splits=extra or {},
        note="GLUE dev set as test (test labels are hidden); validation carved from train",
    )


register(
    _glue("cola", ("sentence",), ("unacceptable", "acceptable"), "matthews", "GLUE CoLA (linguistic acceptability)"),
    _glue("sst2", ("sentence",), ("negative", "positive"), "accuracy", "GLUE SST-2 (sentiment)"),
    _glue("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "f1", "GLUE MRPC (paraphrase)"),
    _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "f1", "GLUE QQP (question pairs)"),
    _glue("stsb", ("sentence1", "sentence2"), (), None, "GLUE STS-B (semantic similarity, 0-5)", task="regression"),
    _glue(
        "mnli",
        ("premise", "hypothesis"),
        ("entailment", "neutral", "contradiction"),
        "accuracy",
        "GLUE MNLI (natural language inference; test = matched dev)",
        test="validation_matched",
        extra={"validation_mismatched": "validation_mismatched"},
    ),
    _glue("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "accuracy", "GLUE QNLI"),
    _glue("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "accuracy", "GLUE RTE"),
    _glue("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), "accuracy", "GLUE WNLI"),
)
