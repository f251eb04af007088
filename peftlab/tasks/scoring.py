"""Scores of generated text (task sft's `data.metric`): answer extraction, exact match, BLEU, ROUGE-L.

Every scorer returns the corpus score and the per-example columns the predictions file keeps, so
that the statistics engine (peftlab/stats/crossed.py) can resample examples and recompute the score:

- `exact_match`: `correct` per example; the score is their mean (`crossed.ACCURACY`).
- `bleu`: sacrebleu's corpus BLEU (its defaults: 13a tokenisation, exp smoothing), divided by 100
  so that it sits on 0..1 beside accuracy. Per example: sacrebleu's sentence statistics
  (`matches`, `totals` per n-gram order, `hyp_len`, `ref_len`), whose sums are exactly the corpus
  statistics, so `crossed.corpus_bleu()` of the columns is the corpus score.
- `rouge`: rouge-score's ROUGE-L F-measure per example (`rouge_l`, its default tokeniser, no
  stemming); the score is their mean, as `evaluate`'s rouge and most papers aggregate it.

The metrics themselves are the packages' (sacrebleu, rouge-score), never re-implemented here.
Nothing here imports torch: the config validates names against `EXTRACTORS` and `METRICS`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

METRICS = ("exact_match", "bleu", "rouge")
DEFAULT_METRIC = "exact_match"

# a number as GSM8K writes it: optional sign, digits with thousands commas, optional decimals
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalize(text: str) -> str:
    """Lower case, surrounding punctuation and repeated spaces removed ("Positive." == "positive")."""
    text = " ".join(text.lower().split())
    return text.strip(string.punctuation + " ")


def gsm8k_final_number(text: str) -> str | None:
    """GSM8K's answer in `text`, as peft's method_comparison scores it; None when there is no number.

    The number after the last `####` when the text has one (GSM8K's references end in `#### 72`),
    else the last number in the text; thousands commas removed and the value written canonically
    (`1,000.00` → `1000`), so equal values compare equal as strings.
    """
    marked = text.rsplit("####", 1)[1] if "####" in text else ""
    found = _NUMBER.findall(marked)
    number = found[0] if found else (_NUMBER.findall(text) or [None])[-1]
    if number is None:
        return None
    number = number.replace(",", "")
    try:
        return format(Decimal(number).normalize(), "f")
    except InvalidOperation:  # pragma: no cover - the pattern only matches decimal numbers
        return number


# answer extractors for exact match: text -> the answer compared (None: no answer found, never correct)
EXTRACTORS: dict[str, Callable[[str], str | None]] = {"gsm8k_final_number": gsm8k_final_number}


def exact_match(
    hypotheses: Sequence[str], references: Sequence[str], extractor: str | None = None
) -> tuple[float, dict[str, list[Any]]]:
    """Exact match of normalised whole answers, or of the answers an extractor finds in both texts."""
    if extractor is None:
        correct = [normalize(h) == normalize(r) for h, r in zip(hypotheses, references, strict=True)]
    else:
        extract = EXTRACTORS[extractor]
        pairs = [(extract(h), extract(r)) for h, r in zip(hypotheses, references, strict=True)]
        correct = [h is not None and h == r for h, r in pairs]
    score = sum(correct) / len(correct) if correct else float("nan")
    return score, {"correct": correct}


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, dict[str, list[Any]]]:
    """sacrebleu's corpus BLEU / 100 and each example's n-gram statistics (one reference per example)."""
    from sacrebleu.metrics import BLEU

    score = BLEU().corpus_score(list(hypotheses), [list(references)]).score / 100
    sentence = BLEU(effective_order=True)  # changes sentence scores only, not the counts kept here
    columns: dict[str, list[Any]] = {"matches": [], "totals": [], "hyp_len": [], "ref_len": []}
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        stats = sentence.sentence_score(hypothesis, [reference])
        columns["matches"].append(list(stats.counts))
        columns["totals"].append(list(stats.totals))
        columns["hyp_len"].append(stats.sys_len)
        columns["ref_len"].append(stats.ref_len)
    return score, columns


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, dict[str, list[Any]]]:
    """Mean of rouge-score's per-example ROUGE-L F-measure, and those F-measures."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"])
    values = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hypotheses, references, strict=True)]
    score = sum(values) / len(values) if values else float("nan")
    return score, {"rouge_l": values}


def score_generations(
    metric: str | None, hypotheses: Sequence[str], references: Sequence[str], extractor: str | None = None
) -> tuple[dict[str, float], dict[str, list[Any]]]:
    """({declared metric name: score}, per-example columns) for `data.metric` (None: exact match).

    Exact match is always computed (the `accuracy` every sft record carries, and `correct` per
    example); `bleu` adds `bleu` and its n-gram statistics, `rouge` adds `rouge_l`.
    """
    accuracy, columns = exact_match(hypotheses, references, extractor)
    scores = {"accuracy": accuracy}
    if metric == "bleu":
        scores["bleu"], extra = bleu(hypotheses, references)
        columns.update(extra)
    elif metric == "rouge":
        scores["rouge_l"], extra = rouge_l(hypotheses, references)
        columns.update(extra)
    return scores, columns
