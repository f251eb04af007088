"""Task sft: over-long rows keep the chat template's header and the answer's end-of-turn token, and
the generation budget comes from the train answers, never from the answers being scored."""

from __future__ import annotations

import json
from pathlib import Path

from peftlab.runtime.models import load_tokenizer, resolve_model_source
from peftlab.tasks.sft import TASK, _render, tokenize_conversations

SYSTEM = {"role": "system", "content": "answer with one word"}


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_an_over_long_prompt_loses_its_middle_not_the_chat_header(tiny_llama: Path) -> None:
    tokenizer = load_tokenizer(resolve_model_source(str(tiny_llama)))
    messages = [SYSTEM, {"role": "user", "content": "review : " + "good " * 100 + "positive or negative ?"}]
    split = tokenize_conversations([(messages, "positive")], tokenizer, max_length=32)
    ids, n_prompt = split.input_ids[0], split.prompt_lengths[0]
    assert len(ids) == 32
    prompt = ids[:n_prompt]
    header = _ids(tokenizer, "<|im_start|>system\nanswer with one word<|im_end|>\n<|im_start|>user\nreview :")
    assert prompt[: len(header)] == header, "the system turn and the user header were cut"
    question = _ids(tokenizer, "positive or negative ?<|im_end|>\n<|im_start|>assistant\n")
    assert prompt[-len(question) :] == question, "the question or the generation prompt was cut"
    assert tokenizer.decode(ids[n_prompt:], skip_special_tokens=True).strip() == "positive"


def test_a_truncated_answer_keeps_its_end_of_turn_token(tiny_llama: Path) -> None:
    tokenizer = load_tokenizer(resolve_model_source(str(tiny_llama)))
    conversation = ([{"role": "user", "content": "review : " + "dull " * 30}], "good " * 40)
    split = tokenize_conversations([conversation], tokenizer, max_length=24)
    ids, n_prompt = split.input_ids[0], split.prompt_lengths[0]
    assert len(ids) == 24
    answer = ids[n_prompt:]
    assert tokenizer.eos_token_id in answer, "the model would never learn to stop on a long answer"
    full = _ids(tokenizer, _render(tokenizer, conversation[0], conversation[1]))
    closing = full[full.index(tokenizer.eos_token_id, len(full) - 3) :]  # <|im_end|> and what follows it
    assert answer[-len(closing) :] == closing
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")  # the prompt still opens its turn


def test_generation_budget_comes_from_the_train_answers(tmp_path: Path, tiny_llama: Path) -> None:
    import contextlib

    from peftlab.config import load_experiment
    from peftlab.runtime.models import load_causal_lm
    from peftlab.tasks import EvalContext

    short = [{"prompt": f"review : it was {w}", "completion": w} for w in ("good", "bad")] * 10
    long = [{"prompt": "review : it was good", "completion": "good " * 12}] * 4  # test answers: 13+ tokens
    (tmp_path / "data").mkdir()
    for split, rows in (("train", short), ("validation", short[:4]), ("test", long)):
        (tmp_path / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "sft.yaml"
    path.write_text(
        f"name: budget\nmodel: {tiny_llama}\ntask: sft\ndata:\n  source: {tmp_path / 'data'}\n  max_length: 64\n"
        f"seeds: [0]\noutput_dir: {tmp_path / 'results'}\nmethods:\n  - method: zero_shot\n"
    )
    experiment = load_experiment(path)
    source = resolve_model_source(str(tiny_llama))
    tokenizer = load_tokenizer(source)
    _, splits = TASK.prepare_data(experiment, tokenizer, None)

    def longest_answer(split) -> int:
        return max(len(ids) - p for ids, p in zip(split.input_ids, split.prompt_lengths, strict=True))

    train_budget = longest_answer(splits["train"]) + 1
    assert longest_answer(splits["test"]) + 1 > train_budget  # the bias would show
    model = load_causal_lm(source, pad_token_id=tokenizer.pad_token_id)
    ctx = EvalContext(
        batch_size=4,
        device="cpu",
        pad_id=tokenizer.pad_token_id,
        autocast=contextlib.nullcontext,
        padding_side="right",
        tokenizer=tokenizer,
    )
    scores = TASK.evaluate(model, splits["test"], ctx)
    assert scores["max_new_tokens"] == train_budget
