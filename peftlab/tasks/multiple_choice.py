"""Multiple choice (peftlab/task_specs/multiple_choice.py): log-likelihood scoring on causal LMs, a head on encoders.

Which shape a run takes is the model's: a config that transformers' `AutoModelForMultipleChoice`
maps (BERT, RoBERTa, DeBERTa, ...) gets that class, a fresh one-logit head over each
(context, choice) pair; any other model is loaded as a causal LM and scores choices by their
log-likelihood, as lm-evaluation-harness does:

- each choice is the continuation `" " + choice` of the context (lm-eval's default
  `target_delimiter`); trailing spaces of the context move to the continuation, the pair is
  tokenised whole and the context's tokens are cut off the front (lm-eval's `_encode_pair`, no
  special tokens); an over-long pair loses tokens from the left, as lm-eval truncates;
- the score of a choice is the sum of its continuation tokens' log-probabilities; `acc` takes the
  argmax, `acc_norm` the argmax of score / `len(choice)` in characters (lm-eval's
  `process_results` for `multiple_choice`; `multiple_choice_predictions` is that code's twin);
- training puts the loss on the correct continuation's tokens only (labels -100 on the context),
  as sft's answer-only loss does, so that every method trains the same objective.

peft has no multiple-choice task type: a causal LM takes CAUSAL_LM (prompt and prefix tuning
need its wrapper), an encoder SEQ_CLS, whose wrapper passes the (batch, choices, length) inputs
through to the model and trains the fresh head (`modules_to_save`). Prompt-learning methods
cannot prepend to those three-dimensional inputs and fail on encoders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from peftlab.task_specs import get_task_spec
from peftlab.tasks.batching import attention_mask, pad_rows
from peftlab.tasks.splits import prepare_data, split_limits

IGNORE = -100  # label of tokens that carry no loss
TARGET_DELIMITER = " "  # lm-eval's default between context and choice


@dataclass
class ChoiceSplit:
    """A tokenised split. Causal: one sequence per choice, the last `continuation_lengths` tokens scored.

    Encoder: one (context, choice) pair encoding per choice. `input_ids[i]` is the correct
    choice's sequence (causal: what training sees) or all of row i's sequences (encoder);
    `lengths` is what batches are length-grouped by.
    """

    mode: str  # "causal" or "encoder"
    choice_ids: list[list[list[int]]]  # example -> choice -> token ids
    continuation_lengths: list[list[int]]  # causal: example -> choice -> scored tokens (encoder: unused)
    choices: list[list[str]]  # the choice texts (acc_norm divides by their length)
    labels: np.ndarray  # the correct choice's index
    ids: list[str] = field(default_factory=list)  # stable example ids (text, choices, answer)
    token_type_ids: list[list[list[int]]] | None = None  # encoder: segment ids per choice

    def __len__(self) -> int:
        return len(self.choice_ids)

    @property
    def lengths(self) -> np.ndarray:
        if self.mode == "causal":
            sizes = (len(seqs[g]) for seqs, g in zip(self.choice_ids, self.labels, strict=True))
        else:
            sizes = (max(len(s) for s in seqs) * len(seqs) for seqs in self.choice_ids)
        return np.fromiter(sizes, dtype=np.int64, count=len(self.choice_ids))


# ---------------------------------------------------------------- tokenisation


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's `_encode_pair` for causal models: the pair encoded whole, the context's tokens cut off.

    An empty context is conditioned on the tokenizer's BOS (else EOS) token, as lm-eval's
    `prefix_token_id`.
    """
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    if not context:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return [prefix], encode(continuation)
    whole, context_ids = encode(context + continuation), encode(context)
    return context_ids, whole[len(context_ids) :]


def tokenize_causal(frame: Any, tokenizer: Any, max_length: int) -> ChoiceSplit:
    """Every (context, choice) pair as one sequence, kept to its last `max_length` tokens."""
    from peftlab.records.predictions import example_ids

    texts, choice_lists, labels = frame["text"].tolist(), [list(c) for c in frame["choices"]], frame["label"]
    all_ids, all_lengths = [], []
    for text, choices in zip(texts, choice_lists, strict=True):
        seqs, lengths = [], []
        for choice in choices:
            context_ids, continuation_ids = encode_pair(tokenizer, text, TARGET_DELIMITER + choice)
            seq = (context_ids + continuation_ids)[-max_length:]
            seqs.append(seq)
            lengths.append(min(len(continuation_ids), len(seq) - 1))  # the first token is never predicted
        all_ids.append(seqs)
        all_lengths.append(lengths)
    return ChoiceSplit(
        mode="causal",
        choice_ids=all_ids,
        continuation_lengths=all_lengths,
        choices=choice_lists,
        labels=np.asarray(labels, dtype=np.int64),
        ids=example_ids(zip(texts, choice_lists, labels.tolist(), strict=True)),
    )


def tokenize_encoder(frame: Any, tokenizer: Any, max_length: int) -> ChoiceSplit:
    """Each (context, choice) as the tokenizer's pair encoding, truncated longest-first to `max_length`."""
    from peftlab.records.predictions import example_ids

    texts, choice_lists, labels = frame["text"].tolist(), [list(c) for c in frame["choices"]], frame["label"]
    flat_texts = [t for t, choices in zip(texts, choice_lists, strict=True) for _ in choices]
    flat_choices = [c for choices in choice_lists for c in choices]
    encoded = tokenizer(flat_texts, flat_choices, truncation="longest_first", max_length=max_length, padding=False)
    segments = encoded.get("token_type_ids")
    ids, types, start = [], [] if segments is not None else None, 0
    for choices in choice_lists:
        ids.append(encoded["input_ids"][start : start + len(choices)])
        if types is not None:
            types.append(segments[start : start + len(choices)])
        start += len(choices)
    return ChoiceSplit(
        mode="encoder",
        choice_ids=ids,
        continuation_lengths=[[0] * len(c) for c in choice_lists],
        choices=choice_lists,
        labels=np.asarray(labels, dtype=np.int64),
        ids=example_ids(zip(texts, choice_lists, labels.tolist(), strict=True)),
        token_type_ids=types,
    )


# ---------------------------------------------------------------- batches


def collate(split: ChoiceSplit, indices: Any, pad_id: int, padding_side: str = "right") -> dict[str, Any]:
    """Causal: the correct continuations, labels -100 on context and padding. Encoder: (batch, choices, length).

    Encoder rows with fewer choices than the batch's widest are padded with one-token choices
    (the pad token) that are never correct: at evaluation their logits are masked out
    (`evaluate_encoder`); in training they are extra wrong options, as easy to learn as a
    one-token sequence is to tell from a text.
    """
    import torch

    if split.mode == "causal":
        seqs = [split.choice_ids[i][split.labels[i]] for i in indices]
        scored = [split.continuation_lengths[i][split.labels[i]] for i in indices]
        labels = [[IGNORE] * (len(s) - n) + s[len(s) - n :] for s, n in zip(seqs, scored, strict=True)]
        return {
            "input_ids": pad_rows(seqs, pad_id, padding_side),
            "attention_mask": attention_mask(seqs, padding_side),
            "labels": pad_rows(labels, IGNORE, padding_side),
        }
    width = max(len(split.choice_ids[i]) for i in indices)
    seqs, types = [], []
    for i in indices:
        rows = split.choice_ids[i]
        seqs.extend(rows + [[pad_id]] * (width - len(rows)))
        if split.token_type_ids is not None:
            types.extend(split.token_type_ids[i] + [[0]] * (width - len(rows)))
    batch = {
        "input_ids": pad_rows(seqs, pad_id, padding_side).view(len(indices), width, -1),
        "attention_mask": attention_mask(seqs, padding_side).view(len(indices), width, -1),
        "labels": torch.as_tensor(split.labels[np.asarray(indices)]),
    }
    if split.token_type_ids is not None:
        batch["token_type_ids"] = pad_rows(types, 0, padding_side).view(len(indices), width, -1)
    return batch


# ---------------------------------------------------------------- scoring


def multiple_choice_predictions(logliks: list[np.ndarray], choices: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(argmax of the scores, argmax of score / len(choice)) per example: lm-eval's `pred` and `pred_norm`."""
    pred = np.array([int(np.argmax(ll)) for ll in logliks], dtype=np.int64)
    lengths = [np.array([float(len(c)) for c in cs]) for cs in choices]
    pred_norm = np.array([int(np.argmax(ll / n)) for ll, n in zip(logliks, lengths, strict=True)], dtype=np.int64)
    return pred, pred_norm


def continuation_logliks(model: Any, split: ChoiceSplit, ctx: Any) -> list[np.ndarray]:
    """Summed log-probability of every choice's continuation tokens, batched over all (example, choice) pairs."""
    import torch

    flat = [(i, j) for i, seqs in enumerate(split.choice_ids) for j in range(len(seqs))]
    order = sorted(range(len(flat)), key=lambda k: len(split.choice_ids[flat[k][0]][flat[k][1]]))
    scores = [np.zeros(len(seqs)) for seqs in split.choice_ids]
    for start in range(0, len(order), ctx.batch_size):
        chunk = [flat[k] for k in order[start : start + ctx.batch_size]]
        seqs = [split.choice_ids[i][j] for i, j in chunk]
        ids = pad_rows(seqs, ctx.pad_id, "right").to(ctx.device)
        out = model(input_ids=ids, attention_mask=attention_mask(seqs, "right").to(ctx.device))
        # the last positions are the input's (prompt tuning puts its virtual tokens first)
        logprobs = torch.log_softmax(out.logits[:, -ids.shape[1] :].float(), dim=-1)
        for row, ((i, j), seq) in enumerate(zip(chunk, seqs, strict=True)):
            n = split.continuation_lengths[i][j]
            positions = torch.arange(len(seq) - n - 1, len(seq) - 1, device=logprobs.device)
            targets = ids[row, len(seq) - n : len(seq)]
            scores[i][j] = float(logprobs[row, positions, targets].sum())
    return scores


def encoder_logits(model: Any, split: ChoiceSplit, ctx: Any) -> tuple[list[np.ndarray], float]:
    """Each example's choice logits (its own choices only) and the mean cross-entropy over choices."""
    import torch

    order = np.argsort(split.lengths, kind="stable")
    logits: list[np.ndarray] = [np.zeros(0)] * len(split)
    loss_sum = 0.0
    for start in range(0, len(order), ctx.batch_size):
        idx = order[start : start + ctx.batch_size]
        batch = {k: v.to(ctx.device) for k, v in collate(split, idx, ctx.pad_id, ctx.padding_side).items()}
        labels = batch.pop("labels")
        out = model(**batch).logits.float()
        counts = torch.tensor([len(split.choice_ids[i]) for i in idx], device=out.device)
        out = out.masked_fill(torch.arange(out.shape[1], device=out.device)[None, :] >= counts[:, None], -1e9)
        loss_sum += float(torch.nn.functional.cross_entropy(out, labels, reduction="sum"))
        for row, i in enumerate(idx):
            logits[i] = out[row, : len(split.choice_ids[i])].cpu().numpy()
    return logits, loss_sum / max(len(split), 1)


def evaluate_split(model: Any, split: ChoiceSplit, ctx: Any) -> dict[str, Any]:
    """acc, acc_norm and the loss, with `examples`: gold, prediction, correct and correct_norm per example."""
    import torch

    from peftlab.records.predictions import outcomes

    was_training = model.training
    model.eval()
    started = time.perf_counter()
    with torch.inference_mode(), ctx.autocast():
        if split.mode == "causal":
            scores = continuation_logliks(model, split, ctx)
            pred, pred_norm = multiple_choice_predictions(scores, split.choices)
            gold_ll = sum(float(s[g]) for s, g in zip(scores, split.labels, strict=True))
            gold_tokens = sum(n[g] for n, g in zip(split.continuation_lengths, split.labels, strict=True))
            loss = -gold_ll / max(gold_tokens, 1)
        else:
            scores, loss = encoder_logits(model, split, ctx)
            pred = np.array([int(np.argmax(s)) for s in scores], dtype=np.int64)
            pred_norm = pred  # a head's logit scores a whole pair: no per-token likelihood to normalise
    elapsed = time.perf_counter() - started
    model.train(was_training)
    correct, correct_norm = pred == split.labels, pred_norm == split.labels
    n = len(split)
    tokens = sum(len(s) for seqs in split.choice_ids for s in seqs)
    ids = split.ids or [f"row{i}" for i in range(n)]
    return {
        "acc": float(correct.mean()) if n else float("nan"),
        "acc_norm": float(correct_norm.mean()) if n else float("nan"),
        "loss": loss,
        # always answering the most frequent answer position: the learning baseline of a split
        "majority_rate": float(np.bincount(split.labels).max() / n) if n else None,
        "samples_per_s": n / elapsed if elapsed > 0 else None,
        "tokens_per_s": tokens / elapsed if elapsed > 0 else None,
        "n": n,
        "examples": {
            **outcomes(ids, split.labels, pred, correct),
            "correct_norm": [bool(c) for c in correct_norm],
        },
    }


# ---------------------------------------------------------------- the task


def auto_class(location: str) -> Any:
    """The first of the declared auto classes whose mapping has the model's config (as `methods.fit` builds it)."""
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(location)
    classes = [getattr(transformers, name) for name in get_task_spec("multiple_choice").model_classes]
    return next((c for c in classes if type(config) in c._model_mapping), classes[-1])


def has_choice_head(model: Any) -> bool:
    """Whether a loaded model is an encoder with a multiple-choice head (`BertForMultipleChoice`, ...)."""
    return type(model).__name__.endswith("ForMultipleChoice")


def is_encoder(location: str) -> bool:
    from transformers import AutoModelForMultipleChoice

    return auto_class(location) is AutoModelForMultipleChoice


class MultipleChoiceTask:
    """See the module docstring."""

    spec = get_task_spec("multiple_choice")
    name = spec.name
    peft_task_type = spec.peft_task_type
    latency_examples = 8  # batch-size-1 forwards timed per run

    def model_task_type(self, model: Any) -> str:
        """CAUSAL_LM for a causal LM; SEQ_CLS (a pass-through wrapper that trains the fresh head) for an encoder."""
        return "SEQ_CLS" if has_choice_head(model) else self.peft_task_type

    def prepare_data(self, experiment: Any, tokenizer: Any, base_dir: Any) -> tuple[Any, dict[str, Any]]:
        from peftlab.data.choices import load_choice_data
        from peftlab.runtime.models import resolve_model_source

        cfg = experiment.data
        data = load_choice_data(
            cfg.source,
            text_column=cfg.text_column,
            choices_column=cfg.choices_column,
            label_column=cfg.label_column,
            base_dir=base_dir,
            limits=split_limits(cfg),
        )
        source = resolve_model_source(experiment.model, experiment.search_dirs())
        tokenize = tokenize_encoder if is_encoder(source.location) else tokenize_causal
        return prepare_data(data, lambda frame: tokenize(frame, tokenizer, cfg.max_length))

    def load_model(self, source: Any, data: Any, load_kwargs: dict[str, Any], pad_token_id: int | None) -> Any:
        from peftlab.runtime.models import load_causal_lm

        if not is_encoder(source.location):
            return load_causal_lm(source, load_kwargs, pad_token_id=pad_token_id)
        return _load_encoder(source, load_kwargs, pad_token_id)

    def head_modules(self, model: Any) -> tuple[str, ...]:
        """Encoders: every module the checkpoint lacked (the head, a missing pooler). Causal LMs: none."""
        from peftlab.runtime.models import fresh_modules

        return fresh_modules(model) if has_choice_head(model) else ()

    def unquantized_modules(self, source: Any, data: Any) -> tuple[str, ...]:
        from peftlab.runtime.models import fresh_modules

        if not is_encoder(source.location):
            return ("lm_head",)  # as sft: quantising the output projection costs accuracy for little memory
        return fresh_modules(_load_encoder(source, {"device_map": {"": "meta"}}, None))

    def collate(self, split: ChoiceSplit, indices: Any, pad_id: int, padding_side: str) -> dict[str, Any]:
        return collate(split, indices, pad_id, padding_side)

    def evaluate(self, model: Any, split: ChoiceSplit, ctx: Any) -> dict[str, Any]:
        return evaluate_split(model, split, ctx)

    def preload(self) -> None:
        """Nothing to load: the scores are computed here."""


def _load_encoder(source: Any, load_kwargs: dict[str, Any], pad_token_id: int | None) -> Any:
    """`AutoModelForMultipleChoice` with its fresh head recorded as the modules every method trains."""
    from transformers import AutoModelForMultipleChoice

    from peftlab.runtime.models import FRESH_MODULES_ATTR, _hub_error, newly_initialised_modules

    try:
        model, info = AutoModelForMultipleChoice.from_pretrained(
            source.location, output_loading_info=True, **load_kwargs
        )
    except OSError as err:
        if source.kind == "hub":
            raise _hub_error(source, err) from None
        raise
    setattr(model, FRESH_MODULES_ATTR, newly_initialised_modules(model, info["missing_keys"]))
    if pad_token_id is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = pad_token_id
    return model


TASK = MultipleChoiceTask()
