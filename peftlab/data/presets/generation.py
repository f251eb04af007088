"""Scored generation (task sft): GSM8K and MetaMathQA as peft's `method_comparison` uses them, E2E as the LoRA paper.

The adapters turn hub rows into conversational `prompt`/`completion` rows (peftlab/data/
instructions.py reads those as SFT data):

- `gsm8k` (openai/gsm8k, "main"; train and test, no validation: it is carved off train) and
  `metamath_qa` (meta-math/MetaMathQA, train only): the prompt is method_comparison's
  `query_template`, "Question: {query} Think step by step.\nAnswer:", the completion the reference
  solution. Scored by exact match of the final number (`answer_extractor: gsm8k_final_number`:
  the number after GSM8K's `####`, else the last number, as method_comparison does). The paper
  setup trains on MetaMathQA and tests on GSM8K: `data.source: metamath_qa` with
  `data.test_source: gsm8k`.
- `e2e_nlg` (tuetschek/e2e_nlg, read from the hub's parquet conversion because the repository
  holds only a loading script): the meaning representation is the prompt, one human reference the
  completion, scored by sacrebleu's corpus BLEU (`metric: bleu`). The E2E test set has several
  references per meaning representation, one row each; this scores each row against its own
  reference (single-reference BLEU), lower than the official multi-reference script's numbers.
"""

from __future__ import annotations

from typing import Any

from peftlab.data.presets import Preset, register

QUERY_TEMPLATE = "Question: {query} Think step by step.\nAnswer:"
MATH_CONFIG = {"metric": "exact_match", "answer_extractor": "gsm8k_final_number"}


def _conversations(prompts: list[str], completions: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame({"prompt": prompts, "completion": completions})


def gsm8k(df: Any) -> Any:
    return _conversations(
        [QUERY_TEMPLATE.format(query=q) for q in df["question"].tolist()], [str(a) for a in df["answer"].tolist()]
    )


def metamath(df: Any) -> Any:
    return _conversations(
        [QUERY_TEMPLATE.format(query=q) for q in df["query"].tolist()], [str(a) for a in df["response"].tolist()]
    )


def e2e(df: Any) -> Any:
    return _conversations(
        [str(m) for m in df["meaning_representation"].tolist()], [str(r) for r in df["human_reference"].tolist()]
    )


register(
    Preset(
        name="gsm8k",
        hub_id="openai/gsm8k",
        hub_config="main",
        task="sft",
        title="GSM8K (grade-school math word problems)",
        citation="Cobbe et al., Training Verifiers to Solve Math Word Problems, arXiv:2110.14168 (2021)",
        splits={"train": "train", "test": "test"},
        config=MATH_CONFIG,
        adapter=gsm8k,
        note="method_comparison's query template; exact match of the final number",
        also_for=("grpo",),  # RL with rl.reward: final_number (the completion is the reference solution)
    ),
    Preset(
        name="metamath_qa",
        hub_id="meta-math/MetaMathQA",
        hub_config=None,
        task="sft",
        title="MetaMathQA (augmented GSM8K/MATH questions with solutions)",
        citation="Yu et al., MetaMath: Bootstrap Your Own Mathematical Questions for LLMs, ICLR 2024",
        splits={"train": "train"},
        config=MATH_CONFIG,
        adapter=metamath,
        note="train only; test with data.test_source: gsm8k (peft's method_comparison)",
    ),
    Preset(
        name="e2e_nlg",
        hub_id="tuetschek/e2e_nlg",
        hub_config=None,
        task="sft",
        title="E2E NLG Challenge (restaurant meaning representations to text)",
        citation="Novikova et al., The E2E Dataset: New Challenges For End-to-End Generation, SIGDIAL 2017",
        splits={"train": "train", "validation": "validation", "test": "test"},
        config={"metric": "bleu"},
        adapter=e2e,
        revision="refs/convert/parquet",
        note="single-reference BLEU per row (the official script is multi-reference)",
    ),
)
