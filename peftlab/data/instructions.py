"""Data for supervised fine-tuning (task `sft`): prompts with the completions a causal LM should write.

Two kinds of source, one fixed and fingerprinted result:

- `labels`: any classification source (builtin, local csv, hub) becomes instruction following.
  Each row is asked through an instruction template, and the label name is the answer, so the
  very same rows and splits as a classification experiment are used and the generated answer
  can be scored as a label (accuracy, macro-F1).
- `conversations`: rows of `{prompt, completion}` (strings, or trl's conversational lists of
  messages) or `{messages: [...]}` (the last assistant turn is the completion), from a local
  JSONL/JSON/parquet file or folder, or a hub dataset, or a generated builtin
  (`builtin:arithmetic`, ...: peftlab/data/procedural.py) at level `difficulty` (`data.difficulty`).

Rows are kept in the classification frame shape (`text`, `label`), with a conversation stored as
canonical JSON in `text` and label -1: the split carving, limits and fingerprint code of
`loading.py` then apply unchanged, so both kinds get the same guarantees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from peftlab.data.frames import BUILTIN_PREFIX, DataSourceError, make_frame
from peftlab.data.loading import (
    apply_limit,
    carve_missing,
    check_limits,
    compute_fingerprint,
    default_carve_sizes,
    hub_dataset_dict,
    local_path,
    read_raw_table,
    reference,
    shuffle_splits,
    split_files,
    test_split,
)
from peftlab.data.procedural import difficulty_problem, is_procedural, procedural_splits, resolve_level
from peftlab.data.procedural import reference as procedural_reference
from peftlab.data.sources import ClassificationData, load_classification_data

# What a builtin classification set is asked; `{text}` is the example, `{labels}` the label names.
DEFAULT_INSTRUCTIONS: dict[str, str] = {
    "rotten_tomatoes": "Review: {text}\nIs this movie review positive or negative? Answer with one word.",
    "bbc_news": "Article: {text}\nWhich topic is this news article about: {labels}? Answer with one word.",
}
GENERIC_INSTRUCTION = "Text: {text}\nWhich label fits this text: {labels}? Answer with the label only."
CONVERSATION_COLUMNS = "{prompt, completion} or {messages: [...]}"


@dataclass(frozen=True, repr=False)
class InstructionData(ClassificationData):
    """Fixed splits for SFT. `kind` says how `text` is read: a raw text to ask about, or a conversation."""

    kind: Literal["labels", "conversations"] = "labels"
    instruction: str | None = None  # the template, for kind "labels"

    def conversation(self, text: str) -> tuple[list[dict[str, str]], str]:
        """(prompt messages, completion) of a `conversations` row."""
        row = json.loads(text)
        return row["messages"], row["completion"]

    def prompt_text(self, text: str) -> str:
        """The user turn of a `labels` row (the template filled in)."""
        assert self.instruction is not None
        return self.instruction.format(text=text, labels=", ".join(self.label_names))


def default_instruction(source: str) -> str:
    return DEFAULT_INSTRUCTIONS.get(source.removeprefix(BUILTIN_PREFIX), GENERIC_INSTRUCTION)


def check_instruction(template: str, where: str = "data.instruction") -> None:
    """A template must contain `{text}` and no other placeholder than `{labels}`."""
    import string

    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise DataSourceError(f"{where}: not a valid template ({err}); write literal braces as {{{{ and }}}}") from None
    unknown = fields - {"text", "labels"}
    if "text" not in fields or unknown:
        raise DataSourceError(
            f"{where}: got {template!r}; must contain {{text}}, allowed placeholders: {{text}}, {{labels}}"
        )


def load_instruction_data(
    source: str,
    *,
    instruction: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    base_dir: Path | None = None,
    limits: Mapping[str, int | None] | None = None,
    test_source: str | None = None,
    completion_column: str = "completion",
    difficulty: int | None = None,
) -> InstructionData:
    """Resolve `source` into SFT splits: conversations when the rows have them, else labelled texts.

    `test_source` (`data.test_source`) supplies the test split from another source: train on
    MetaMathQA, score GSM8K's test (peft's method_comparison). `completion_column` names the column
    holding the answers when it is not `completion` (task grpo's `rl.answer_column`: trl-style rows of
    `{prompt, answer}`); a column the rows lack is one line naming the columns they have.
    `difficulty` (`data.difficulty`) is the level of a generated builtin (null: its default); for any
    other source it is an error.
    """
    spec = source.strip()
    checked = check_limits(spec, limits)
    raw: dict[str, pd.DataFrame] | None = None
    generated: tuple[str, int] | None = None  # (generator, level) of a generated builtin
    problem = difficulty_problem(spec, difficulty)
    if problem is not None:
        raise DataSourceError(f"{spec}: data.difficulty: {problem}")
    if is_procedural(spec):
        name = spec[len(BUILTIN_PREFIX) :]
        generated = (name, resolve_level(name, difficulty))
        raw = procedural_splits(*generated)
        if test_source is not None:
            raw["test"] = test_split(test_source, base_dir, lambda s, p: _local_frames(p) if p else _hub_frames(s))
    elif not spec.startswith(BUILTIN_PREFIX):
        path = local_path(spec, base_dir)
        raw = _local_frames(path) if path is not None else _hub_frames(spec)
        if completion_column != "completion":
            raw = {n: _answers_as_completion(f"{spec}[{n}]", frame, completion_column) for n, frame in raw.items()}
        if not _is_conversational(raw["train"]):
            raw = None  # a classification table: read it again through the classification path
        elif test_source is not None:
            raw["test"] = test_split(test_source, base_dir, lambda s, p: _local_frames(p) if p else _hub_frames(s))
    if raw is None:
        template = instruction or default_instruction(spec)
        check_instruction(template)
        base = load_classification_data(
            spec,
            text_column=text_column,
            label_column=label_column,
            base_dir=base_dir,
            limits=checked,
            test_source=test_source,
        )
        return InstructionData(
            train=base.train,
            validation=base.validation,
            test=base.test,
            label_names=base.label_names,
            source=source,
            fingerprint=compute_fingerprint([*base.label_names, template], _splits(base)),
            name=base.name,
            citation=base.citation,
            kind="labels",
            instruction=template,
        )
    splits = {name: _conversation_frame(f"{spec}[{name}]", frame) for name, frame in raw.items()}
    splits = shuffle_splits(splits)
    splits = carve_missing(spec, splits, default_carve_sizes(spec, splits))
    splits = {name: apply_limit(df, checked.get(name)) for name, df in splits.items()}
    title, citation = reference(spec) if generated is None else procedural_reference(*generated)
    # a generated builtin's generator and level head its fingerprint (where labels would be), so that
    # two levels never share one, not even when the limits leave a row or two that both could generate
    header = [] if generated is None else [f"procedural:{generated[0]}:level {generated[1]}"]
    return InstructionData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        label_names=(),
        source=source,
        fingerprint=compute_fingerprint(header, splits),
        name=title if test_source is None else f"{title}; test: {test_source}",
        citation=citation,
        kind="conversations",
        instruction=None,
    )


def _splits(data: ClassificationData) -> dict[str, pd.DataFrame]:
    return {"train": data.train, "validation": data.validation, "test": data.test}


def _local_frames(path: Path) -> dict[str, pd.DataFrame]:
    files = split_files(path) if path.is_dir() else {"train": path}
    return {split: read_raw_table(file) for split, file in files.items()}


def _hub_frames(spec: str) -> dict[str, pd.DataFrame]:
    from peftlab.data.loading import SPLIT_ALIASES

    dataset_dict = hub_dataset_dict(spec)
    frames: dict[str, pd.DataFrame] = {}
    for split, aliases in SPLIT_ALIASES.items():
        hub_split = next((a for a in aliases if a in dataset_dict), None)
        if hub_split is not None:
            frames[split] = dataset_dict[hub_split].to_pandas()
    if "train" not in frames:
        raise DataSourceError(f"{spec}: hub dataset has no train split (splits: {', '.join(dataset_dict)})")
    return frames


def _answers_as_completion(where: str, frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """`frame` with its answer column read as the completion (`rl.answer_column`); one line when it lacks it."""
    if column not in frame.columns:
        raise DataSourceError(
            f"{where}: rl.answer_column {column!r} is not a column of the rows; "
            f"they have: {', '.join(map(str, frame.columns))}"
        )
    out = frame.drop(columns=[c for c in ("completion",) if c in frame.columns]).rename(columns={column: "completion"})
    out["completion"] = [v if isinstance(v, (str, list)) or not _present(v) else str(v) for v in out["completion"]]
    return out  # answers that are numbers (GSM8K-style integer columns) are compared as their text


def _is_conversational(frame: pd.DataFrame) -> bool:
    return "messages" in frame.columns or {"prompt", "completion"} <= set(frame.columns)


def _content(value: Any) -> str:
    """A completion: a string, or trl's conversational form (a list with one assistant message)."""
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list) and value and isinstance(value[-1], Mapping) and "content" in value[-1]:
        return str(value[-1]["content"])
    raise ValueError(f"expected a string or a list of messages, got {type(value).__name__}")


def _messages(value: Any, allow_string: bool = True) -> list[dict[str, str]]:
    """A prompt: a string (one user turn) or a list of {role, content} messages."""
    if isinstance(value, str) and allow_string:
        return [{"role": "user", "content": value}]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list) and value and all(_is_message(m) for m in value):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    raise ValueError(f"expected a string or a non-empty list of {{role, content}} messages, got {value!r:.80}")


def _present(value: Any) -> bool:
    """Not a missing cell (pandas fills a column that some JSONL rows lack with NaN)."""
    return value is not None and not (isinstance(value, float) and value != value)


def _is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and {"role", "content"} <= set(value)


def _conversation_frame(where: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical JSON conversations in the (text, label=-1) frame shape; one-line errors naming the row."""
    if not _is_conversational(frame):
        raise DataSourceError(
            f"{where}: columns are {', '.join(map(str, frame.columns))}; "
            f"conversational rows need {CONVERSATION_COLUMNS}"
        )
    texts: list[str] = []
    for i, row in enumerate(frame.to_dict("records")):
        try:
            if _present(row.get("messages")):
                turns = _messages(row["messages"], allow_string=False)
                if turns[-1]["role"] != "assistant" or len(turns) < 2:
                    raise ValueError("the last message must be the assistant's answer, after at least one other")
                prompt, completion = turns[:-1], turns[-1]["content"]
            else:
                prompt, completion = _messages(row["prompt"]), _content(row["completion"])
        except (ValueError, KeyError, TypeError) as err:
            raise DataSourceError(f"{where}: row {i}: {err}; rows need {CONVERSATION_COLUMNS}") from None
        if not completion.strip():
            raise DataSourceError(f"{where}: row {i}: empty completion; every row needs an answer to train on")
        texts.append(json.dumps({"messages": prompt, "completion": completion}, ensure_ascii=False, sort_keys=True))
    if not texts:
        raise DataSourceError(f"{where}: no rows")
    return make_frame(texts, [-1] * len(texts))
