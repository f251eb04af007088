"""The commonsense reasoning sets of DoRA's Table 1 as multiple choice, in lm-evaluation-harness's convention.

Each adapter turns hub rows into `text` (the context, written exactly as lm-eval's `doc_to_text`
writes it), `choices` (list of answer strings, lm-eval's `doc_to_choice`) and `label` (0-based
index of the right choice), so the multiple_choice task's `acc`/`acc_norm` are lm-eval's. The hub
ids and split names are lm-eval 0.4's task yamls' (`dataset_path`/`dataset_name`).

Splits: where the hub's test labels are hidden (BoolQ, PIQA, SIQA, HellaSwag, WinoGrande) the
hub's validation split is peftlab's test and validation is carved off train, as DoRA and lm-eval
report them; ARC and OpenBookQA have labelled test splits and use them.

Conventions that differ from a plain reading:
- BoolQ is two-way multiple choice ["no", "yes"] over "passage / Question: question?" (lm-eval's
  super_glue/boolq), not binary classification.
- WinoGrande: lm-eval scores only the words after the blank given each option ("partial
  scoring"), which needs a context per choice. Here the context is the sentence up to the blank
  and each choice is the option followed by the rest of the sentence ("full" scoring of the
  continuation, one shared context), which the one-context multiple-choice shape can express.
"""

from __future__ import annotations

import re
from typing import Any

from peftlab.data.presets import Preset, register

MC_CONFIG = {"text_column": "text", "choices_column": "choices", "label_column": "label"}
DEV_AS_TEST = {"train": "train", "test": "validation"}
ALL_THREE = {"train": "train", "validation": "validation", "test": "test"}
TASK = "multiple_choice"


def _frame(texts: list[str], choices: list[list[str]], labels: list[int]) -> Any:
    import pandas as pd

    return pd.DataFrame({"text": texts, "choices": choices, "label": labels})


def _rows(df: Any) -> list[dict[str, Any]]:
    return df.to_dict("records")


def _listed(value: Any) -> list[Any]:
    return list(value.tolist() if hasattr(value, "tolist") else value)


def boolq(df: Any) -> Any:
    rows = _rows(df)
    return _frame(
        [f"{r['passage']}\nQuestion: {r['question']}?\nAnswer:" for r in rows],
        [["no", "yes"] for _ in rows],
        [int(r["label"]) for r in rows],
    )


def piqa(df: Any) -> Any:
    rows = _rows(df)
    return _frame(
        [f"Question: {r['goal']}\nAnswer:" for r in rows],
        [[r["sol1"], r["sol2"]] for r in rows],
        [int(r["label"]) for r in rows],
    )


def siqa(df: Any) -> Any:
    rows = _rows(df)  # labels are the strings "1", "2", "3"
    return _frame(
        [f"Q: {r['context']} {r['question']}\nA:" for r in rows],
        [[r["answerA"], r["answerB"], r["answerC"]] for r in rows],
        [int(r["label"]) - 1 for r in rows],
    )


def _hellaswag_clean(text: str) -> str:
    """lm-eval's hellaswag `preprocess`: WikiHow's bracketed artefacts removed."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag(df: Any) -> Any:
    rows = _rows(df)  # labels are strings "0".."3"
    return _frame(
        [_hellaswag_clean(f"{r['activity_label']}: {r['ctx_a']} {r['ctx_b'].capitalize()}") for r in rows],
        [[_hellaswag_clean(e) for e in _listed(r["endings"])] for r in rows],
        [int(r["label"]) for r in rows],
    )


def winogrande(df: Any) -> Any:
    rows = _rows(df)  # answer is "1" or "2"
    texts, choices = [], []
    for r in rows:
        blank = r["sentence"].index("_")
        texts.append(r["sentence"][:blank].rstrip())
        rest = r["sentence"][blank + 1 :]
        choices.append([f"{r['option1']}{rest}", f"{r['option2']}{rest}"])
    return _frame(texts, choices, [int(r["answer"]) - 1 for r in rows])


def _lettered(choices: Any, key: str) -> tuple[list[str], int]:
    labels = [str(x) for x in _listed(choices["label"])]
    return [str(x) for x in _listed(choices["text"])], labels.index(key.strip())


def arc(df: Any) -> Any:
    rows = _rows(df)
    parsed = [_lettered(r["choices"], r["answerKey"]) for r in rows]
    return _frame([f"Question: {r['question']}\nAnswer:" for r in rows], [c for c, _ in parsed], [i for _, i in parsed])


def openbookqa(df: Any) -> Any:
    rows = _rows(df)
    parsed = [_lettered(r["choices"], r["answerKey"]) for r in rows]
    return _frame([r["question_stem"] for r in rows], [c for c, _ in parsed], [i for _, i in parsed])


def _mc(name: str, hub_id: str, config: str | None, adapter: Any, title: str, citation: str, splits: dict) -> Preset:
    return Preset(
        name=name,
        hub_id=hub_id,
        hub_config=config,
        task=TASK,
        title=title,
        citation=citation,
        splits=splits,
        config=MC_CONFIG,
        adapter=adapter,
        note="lm-evaluation-harness's context and choices",
    )


ARC_CITE = "Clark et al., Think you have Solved Question Answering? Try ARC, arXiv:1803.05457 (2018)"
register(
    _mc(
        "boolq",
        "aps/super_glue",
        "boolq",
        boolq,
        "BoolQ (yes/no questions, as 2-way multiple choice)",
        "Clark et al., BoolQ: Exploring the Surprising Difficulty of Natural Yes/No Questions, NAACL 2019",
        DEV_AS_TEST,
    ),
    _mc(
        "piqa",
        "baber/piqa",
        None,
        piqa,
        "PIQA (physical commonsense)",
        "Bisk et al., PIQA: Reasoning about Physical Commonsense in Natural Language, AAAI 2020",
        DEV_AS_TEST,
    ),
    _mc(
        "siqa",
        "lighteval/siqa",
        None,
        siqa,
        "Social IQa (social commonsense)",
        "Sap et al., Social IQa: Commonsense Reasoning about Social Interactions, EMNLP 2019",
        DEV_AS_TEST,
    ),
    _mc(
        "hellaswag",
        "Rowan/hellaswag",
        None,
        hellaswag,
        "HellaSwag (sentence completion)",
        "Zellers et al., HellaSwag: Can a Machine Really Finish Your Sentence?, ACL 2019",
        DEV_AS_TEST,
    ),
    _mc(
        "winogrande",
        "allenai/winogrande",
        "winogrande_xl",
        winogrande,
        "WinoGrande (XL, pronoun resolution)",
        "Sakaguchi et al., WinoGrande: An Adversarial Winograd Schema Challenge at Scale, AAAI 2020",
        DEV_AS_TEST,
    ),
    _mc("arc_easy", "allenai/ai2_arc", "ARC-Easy", arc, "ARC-Easy (grade-school science)", ARC_CITE, ALL_THREE),
    _mc(
        "arc_challenge",
        "allenai/ai2_arc",
        "ARC-Challenge",
        arc,
        "ARC-Challenge (grade-school science)",
        ARC_CITE,
        ALL_THREE,
    ),
    _mc(
        "openbookqa",
        "allenai/openbookqa",
        "main",
        openbookqa,
        "OpenBookQA (main)",
        "Mihaylov et al., Can a Suit of Armor Conduct Electricity?, EMNLP 2018",
        ALL_THREE,
    ),
)
