"""trl as the oracle for the sft task's completion-only loss.

Users who fine-tune causal LMs reach for trl's `SFTTrainer`; peftlab builds its own labels (loss
on the answer only, `peftlab/tasks/sft.py`). On the same rows, peftlab's token ids and its
loss mask must be exactly what `SFTTrainer` builds for a prompt-completion dataset with
`completion_only_loss=True`: otherwise a comparison between the two would compare different
objectives.
"""

from __future__ import annotations

import pytest

CONVERSATIONS = [
    ([{"role": "user", "content": "which label fits this review : the film was good"}], "positive"),
    (
        [
            {"role": "system", "content": "answer with only positive or negative"},
            {"role": "user", "content": "which label fits this review : a dull plot and flat acting"},
        ],
        "negative",
    ),
    (  # two user turns and an earlier assistant turn: only the last answer carries loss
        [
            {"role": "user", "content": "text : the story was warm"},
            {"role": "assistant", "content": "positive"},
            {"role": "user", "content": "text : it was boring and stale , answer with only one label"},
        ],
        "negative",
    ),
    ([{"role": "user", "content": "label this : very funny"}], "positive , positive"),
]


def test_completion_only_labels_equal_the_masks_trl_builds(tiny_llama, tmp_path):
    pytest.importorskip("trl", reason="trl is the oracle (pip install -e '.[trl]')")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from peftlab.tasks.sft import IGNORE, collate, tokenize_conversations

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    ours = tokenize_conversations(CONVERSATIONS, tokenizer, max_length=256)
    batch = collate(ours, list(range(len(CONVERSATIONS))), pad_id=tokenizer.eos_token_id)

    rows = [{"prompt": m, "completion": [{"role": "assistant", "content": a}]} for m, a in CONVERSATIONS]
    args = SFTConfig(
        output_dir=str(tmp_path / "trl"),
        completion_only_loss=True,
        max_length=256,
        report_to=[],
        use_cpu=True,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_llama),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])

    for i in range(len(CONVERSATIONS)):
        n = int(theirs["attention_mask"][i].sum())
        assert int(batch["attention_mask"][i].sum()) == n, f"row {i}: lengths differ"
        assert batch["input_ids"][i, :n].tolist() == theirs["input_ids"][i, :n].tolist(), f"row {i}: token ids"
        assert batch["labels"][i, :n].tolist() == theirs["labels"][i, :n].tolist(), f"row {i}: loss mask"
        assert (batch["labels"][i, :n] != IGNORE).sum() > 0  # an answer carries loss in every row
