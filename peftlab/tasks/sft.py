"""Supervised fine-tuning of a causal LM: chat-formatted examples, loss on the answer only.

Each example is rendered with the tokenizer's chat template (user turn(s), then the assistant's
answer). The loss covers the answer tokens only (labels -100 on the prompt and on padding), as
trl's completion-only loss does, so the model learns to answer rather than to copy the prompt.
Evaluation is generative: greedy answers to held-out prompts, scored by normalised exact match
(`accuracy`, the number every table reports; `data.answer_extractor` compares e.g. GSM8K final
numbers instead) and, when the answers are label names, macro-F1; `data.metric: bleu | rouge`
adds corpus BLEU or ROUGE-L as the primary score (peftlab/tasks/scoring.py); plus the loss /
perplexity of the reference answers and a few samples to read.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from peftlab.errors import ModelSourceError
from peftlab.task_specs import get_task_spec
from peftlab.tasks.batching import attention_mask, pad_rows
from peftlab.tasks.scoring import normalize, score_generations
from peftlab.tasks.splits import prepare_data, split_limits

IGNORE = -100  # label of tokens that carry no loss (prompt, padding)
SAMPLES_KEPT = 8  # generated answers stored in each record, for reading


@dataclass
class SftSplit:
    """Tokenised prompt + answer sequences; the first `prompt_lengths[i]` tokens of row i are the prompt."""

    input_ids: list[list[int]]
    prompt_lengths: list[int]
    references: list[str]  # the answers as text, for exact match
    label_ids: np.ndarray  # label id per row, or -1 when answers are not labels
    prompts: list[str] = field(default_factory=list)  # last user turn, for the stored samples
    ids: list[str] = field(default_factory=list)  # stable example ids (conversation + answer), for paired statistics
    # tokens generated per answer: the longest TRAIN answer + 1 (set by `prepare_data`), so that
    # evaluation never reads the lengths of the answers it is scored against
    max_new_tokens: int | None = None

    def answer_budget(self) -> int:
        """The longest answer of this split (with its end-of-turn tokens) + 1: a generation budget."""
        lengths = [len(ids) - p for ids, p in zip(self.input_ids, self.prompt_lengths, strict=True)]
        return max(lengths) + 1 if lengths else 8

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def _render(tokenizer: Any, messages: list[dict[str, str]], answer: str | None) -> str:
    if answer is None:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}], tokenize=False)


def tokenize_conversations(
    conversations: list[tuple[list[dict[str, str]], str]],
    tokenizer: Any,
    max_length: int,
    label_ids: Any = None,
) -> SftSplit:
    """Chat-format and tokenise (prompt messages, answer) pairs; the prompt part is masked out of the loss.

    The prompt (rendered with the generation prompt) and the full conversation are tokenised
    separately; where the prompt's tokens are a prefix of the full conversation's, the answer is
    the rest (with the template's end-of-turn tokens, so the model learns to stop). Where a
    template breaks that prefix property, the answer is tokenised on its own and EOS appended.
    Over-long rows keep their answer (up to half the budget, its end-of-turn tokens always) and
    lose prompt tokens from the middle of the last message: the chat template's header (system
    turn, earlier turns, the role header) and the end of the message with the generation prompt
    stay, so the model still sees the instruction's format and the question at the end.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ModelSourceError(
            "task sft needs a tokenizer with a chat template; this model's tokenizer has none "
            "(use an instruct/chat model, e.g. builtin:smollm2-135m)"
        )
    prompts_text = [_render(tokenizer, m, None) for m, _ in conversations]
    full_text = [_render(tokenizer, m, a) for m, a in conversations]
    encode = lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt_ids, full_ids = encode(prompts_text), encode(full_text)
    ids_out, prompt_lengths = [], []
    for (messages, answer), prompt, full in zip(conversations, prompt_ids, full_ids, strict=True):
        templated = full[: len(prompt)] == prompt
        completion = full[len(prompt) :] if templated else encode([answer])[0] + [tokenizer.eos_token_id]
        if len(prompt) + len(completion) > max_length:
            # the answer's closing tokens (end-of-turn): what the template adds after its content
            closing = _shared_ends(full, _render_ids(tokenizer, messages, answer, drop="answer"))[1] if templated else 1
            closing = min(closing, len(completion))
            completion = _cut_middle(completion, max(max_length // 2, max_length - len(prompt)), 0, closing)
            empty = _render_ids(tokenizer, messages, None, drop="last message")
            head, tail = _shared_ends(prompt, empty)
            prompt = _cut_middle(prompt, max_length - len(completion), head, tail)
        ids_out.append(list(prompt) + list(completion))
        prompt_lengths.append(len(prompt))
    from peftlab.records.predictions import example_ids

    labels = np.full(len(conversations), -1, dtype=np.int64) if label_ids is None else np.asarray(label_ids)
    return SftSplit(
        ids=example_ids(conversations),
        input_ids=ids_out,
        prompt_lengths=prompt_lengths,
        references=[a for _, a in conversations],
        label_ids=labels.astype(np.int64),
        prompts=[m[-1]["content"] for m, _ in conversations],
    )


def _render_ids(tokenizer: Any, messages: list[dict[str, str]], answer: str | None, drop: str) -> list[int]:
    """Token ids of a conversation with one content emptied: the answer, or the last prompt message.

    Comparing them with the full rendering shows which tokens are the template's own (header,
    role markers, end-of-turn) and which are the content, for any chat template.
    """
    if drop == "answer":
        text = _render(tokenizer, messages, "")
    else:
        text = _render(tokenizer, [*messages[:-1], {**messages[-1], "content": ""}], answer)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _shared_ends(ids: list[int], other: list[int]) -> tuple[int, int]:
    """Lengths of the common prefix and the common suffix of two token lists (not overlapping)."""
    head = 0
    while head < min(len(ids), len(other)) and ids[head] == other[head]:
        head += 1
    tail = 0
    while tail < min(len(ids), len(other)) - head and ids[-1 - tail] == other[-1 - tail]:
        tail += 1
    return head, tail


def _cut_middle(ids: list[int], keep: int, head: int, tail: int) -> list[int]:
    """`ids` shortened to `keep` tokens by dropping a stretch in the middle.

    The last `tail` tokens stay first (end-of-turn, generation prompt), then the first `head`
    (chat header); what budget is left is shared between the content's start and its end.
    """
    if len(ids) <= keep:
        return list(ids)
    tail = min(tail, keep)
    head = min(head, keep - tail)
    spare = keep - head - tail
    head += spare - spare // 2
    tail += spare // 2
    return list(ids[:head]) + list(ids[len(ids) - tail :])


def _truncate_texts(texts: list[str], tokenizer: Any, budget: int) -> list[str]:
    """Cut each text to `budget` tokens, so that an instruction around it survives truncation whole."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [t if len(ids) <= budget else tokenizer.decode(ids[:budget]) for t, ids in zip(texts, encoded, strict=True)]


def with_system(messages: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    """Put the experiment's system message first, unless there is none or the row brings its own."""
    if system is None or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system}, *messages]


def labelled_conversations(
    data: Any, frame: Any, tokenizer: Any, max_length: int, system: str | None = None
) -> list[tuple[list[dict], str]]:
    """(prompt, label name) pairs of a classification frame, the text shortened to fit `max_length`."""
    longest_answer = max(data.label_names, key=lambda n: len(tokenizer(n, add_special_tokens=False)["input_ids"]))
    empty = [{"role": "user", "content": data.prompt_text("")}]
    overhead = tokenizer(_render(tokenizer, with_system(empty, system), longest_answer), add_special_tokens=False)
    budget = max(1, max_length - len(overhead["input_ids"]))
    texts = _truncate_texts(frame["text"].tolist(), tokenizer, budget)
    return [
        (with_system([{"role": "user", "content": data.prompt_text(text)}], system), data.label_names[label])
        for text, label in zip(texts, frame["label"].tolist(), strict=True)
    ]


def instruction_data(cfg: Any, base_dir: Any, completion_column: str = "completion") -> Any:
    """The `data:` section's source as instruction data (prompts with reference answers): tasks sft and grpo."""
    from peftlab.data import load_instruction_data

    return load_instruction_data(
        cfg.source,
        instruction=cfg.instruction,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        base_dir=base_dir,
        limits=split_limits(cfg),
        test_source=cfg.test_source,
        difficulty=cfg.difficulty,
        completion_column=completion_column,
    )


def collate(split: SftSplit, indices: Any, pad_id: int, padding_side: str = "right") -> dict[str, Any]:
    """Padded ids and mask, labels -100 on prompt and padding (HF causal LMs shift labels themselves)."""
    seqs = [split.input_ids[i] for i in indices]
    labels = [[IGNORE] * split.prompt_lengths[i] + split.input_ids[i][split.prompt_lengths[i] :] for i in indices]
    return {
        "input_ids": pad_rows(seqs, pad_id, padding_side),
        "attention_mask": attention_mask(seqs, padding_side),
        "labels": pad_rows(labels, IGNORE, padding_side),
    }


# ---------------------------------------------------------------- evaluation


def label_of(answer: str, names: tuple[str, ...]) -> tuple[int, int]:
    """(exact label id or -1, lenient label id or -1): lenient accepts an answer naming exactly one label."""
    norm = normalize(answer)
    normalized = [normalize(n) for n in names]
    exact = normalized.index(norm) if norm in normalized else -1
    words = set(re.findall(r"[\w'-]+", norm))
    mentioned = [i for i, n in enumerate(normalized) if n in words or (" " in n and n in norm)]
    return exact, (mentioned[0] if len(mentioned) == 1 else exact)


def _unwrap(model: Any) -> Any:
    return getattr(model, "_orig_mod", model)  # torch.compile wrapper: generate lives on the module


def evaluate_split(
    model: Any,
    split: SftSplit,
    ctx: Any,
    label_names: tuple[str, ...],
    max_new_tokens: int | None,
    metric: str | None = None,
    answer_extractor: str | None = None,
) -> dict[str, Any]:
    """Loss/perplexity of the reference answers, then greedy answers scored against them.

    `metric` (`data.metric`; None: exact match) adds `bleu` or `rouge_l` beside the exact match
    (`accuracy`, of the answers `answer_extractor` finds, or of the normalised whole answers).
    `examples` holds the per-example outcomes (id, reference, generated answer, exact match and
    the metric's own columns, peftlab/tasks/scoring.py) in split order; the runner moves them into
    the run's predictions file (peftlab/records/predictions.py).
    """
    import torch

    from peftlab.metrics import load_metric
    from peftlab.records.predictions import outcomes

    was_training = model.training
    model.eval()
    started = time.perf_counter()
    order = np.argsort(split.lengths, kind="stable")
    loss_sum, loss_tokens, tokens = 0.0, 0, 0
    generated: list[str] = [""] * len(split)
    new_tokens = max_new_tokens or split.max_new_tokens or 32  # never from this split's own answers
    gen_model = _unwrap(model)
    with torch.inference_mode(), ctx.autocast():
        for start in range(0, len(order), ctx.batch_size):
            idx = order[start : start + ctx.batch_size]
            batch = {k: v.to(ctx.device) for k, v in collate(split, idx, ctx.pad_id, "right").items()}
            n = int((batch["labels"][:, 1:] != IGNORE).sum())  # tokens the (shifted) loss averages over
            loss_sum += float(model(**batch).loss) * n
            loss_tokens += n
            tokens += int(batch["attention_mask"].sum())
            prompts = [split.input_ids[i][: split.prompt_lengths[i]] for i in idx]
            inputs = {
                "input_ids": pad_rows(prompts, ctx.pad_id, "left").to(ctx.device),
                "attention_mask": attention_mask(prompts, "left").to(ctx.device),
            }
            out = gen_model.generate(
                **inputs,
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=ctx.pad_id,
                eos_token_id=ctx.tokenizer.eos_token_id,
            )
            texts = ctx.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, text in zip(idx, texts, strict=True):
                generated[i] = text.strip()
    elapsed = time.perf_counter() - started
    model.train(was_training)

    generation_scores, columns = score_generations(metric, generated, split.references, answer_extractor)
    mean_loss = loss_sum / max(loss_tokens, 1)
    scores: dict[str, Any] = {k: float(v) for k, v in generation_scores.items()}
    if label_names and (split.label_ids >= 0).all():
        exact_ids, lenient_ids = zip(*(label_of(g, label_names) for g in generated), strict=True)
        refs = split.label_ids.tolist()
        f1 = load_metric("f1").compute(
            predictions=list(exact_ids), references=refs, average="macro", labels=list(range(len(label_names)))
        )
        scores["f1_macro"] = float(f1["f1"])
        scores["label_mentioned_accuracy"] = float(np.mean([p == r for p, r in zip(lenient_ids, refs, strict=True)]))
        scores["unparsed_fraction"] = float(np.mean([p < 0 for p in exact_ids]))
    scores.update(
        {
            "loss": mean_loss,
            "perplexity": float(np.exp(min(mean_loss, 50.0))),
            "max_new_tokens": new_tokens,
            "samples_per_s": len(split) / elapsed if elapsed > 0 else None,
            "tokens_per_s": tokens / elapsed if elapsed > 0 else None,
            "n": len(split),
            "samples": [
                {"prompt": split.prompts[i], "expected": split.references[i], "generated": generated[i]}
                for i in range(min(SAMPLES_KEPT, len(split)))
            ],
            "examples": {
                **outcomes(
                    split.ids or [f"row{i}" for i in range(len(split))],
                    split.references,
                    generated,
                    columns.pop("correct"),
                ),
                **columns,
            },
        }
    )
    return scores


class SftTask:
    """Causal-LM SFT on chat-formatted data; see the module docstring."""

    spec = get_task_spec("sft")
    name = spec.name
    peft_task_type = spec.peft_task_type
    latency_examples = 8  # batch-size-1 forwards timed per run: a 135M LM on CPU takes ~0.5 s each

    def prepare_data(self, experiment: Any, tokenizer: Any, base_dir: Any) -> tuple[Any, dict[str, Any]]:
        cfg = experiment.data
        data = instruction_data(cfg, base_dir)

        def tokenize(frame: Any) -> SftSplit:
            if data.kind == "labels":
                pairs = labelled_conversations(data, frame, tokenizer, cfg.max_length, cfg.system)
                return tokenize_conversations(pairs, tokenizer, cfg.max_length, frame["label"].to_numpy())
            pairs = [data.conversation(text) for text in frame["text"]]
            pairs = [(with_system(messages, cfg.system), answer) for messages, answer in pairs]
            return tokenize_conversations(pairs, tokenizer, cfg.max_length)

        data, splits = prepare_data(data, tokenize)
        budget = splits["train"].answer_budget()  # the TRAIN answers, not those being evaluated
        for split in splits.values():
            split.max_new_tokens = budget
        return data, splits

    def load_model(self, source: Any, data: Any, load_kwargs: dict[str, Any], pad_token_id: int | None) -> Any:
        from peftlab.runtime.models import load_causal_lm

        return load_causal_lm(source, load_kwargs, pad_token_id=pad_token_id)

    def head_modules(self, model: Any) -> tuple[str, ...]:
        return ()  # the LM head is pretrained (and tied to the embeddings in SmolLM2): no fresh head

    def unquantized_modules(self, source: Any, data: Any) -> tuple[str, ...]:
        return ("lm_head",)  # quantising the output projection costs accuracy for little memory

    def collate(self, split: SftSplit, indices: Any, pad_id: int, padding_side: str) -> dict[str, Any]:
        return collate(split, indices, pad_id, padding_side)

    def evaluate(self, model: Any, split: SftSplit, ctx: Any) -> dict[str, Any]:
        return evaluate_split(model, split, ctx, ctx.label_names, ctx.max_new_tokens, ctx.metric, ctx.answer_extractor)

    def preload(self) -> None:
        from peftlab.metrics import load_metric

        for name in ("accuracy", "f1"):
            load_metric(name)


TASK = SftTask()
