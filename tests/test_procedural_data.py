"""Generated verifiable problems (peftlab/data/procedural.py): fixed, disjoint, checkable, levelled splits.

An RL task rewards answers a program can check, so every reference answer here is recomputed from
its question; the splits must be the same on every machine and never share a question.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.config import load_experiment
from peftlab.config.identity import computed_config
from peftlab.data import DataSourceError, describe_builtin_sources, load_classification_data, load_instruction_data
from peftlab.data.procedural import GENERATORS, SPLIT_SIZES, procedural_splits, split_sizes
from peftlab.data.procedural import _problems as cached_problems
from peftlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
LEVELS = [(name, level) for name, gen in GENERATORS.items() for level in gen.levels]
EXPRESSION = re.compile(r"What is (\d+(?: [+-] \d+)+)\? Reply with the number only\.")
COMPARISON = re.compile(r"Which number is larger, (\d+) or (\d+)\? Reply with the number only\.")


def _rows(name: str, level: int) -> dict[str, list[tuple[str, str]]]:
    """(question, answer) per split, read back out of the conversational frames."""
    return {
        split: [(p[0]["content"], c[0]["content"]) for p, c in zip(frame["prompt"], frame["completion"], strict=True)]
        for split, frame in procedural_splits(name, level).items()
    }


def _solve(name: str, level: int, question: str) -> int:
    """The answer recomputed from the question alone, checking that it is of its level's shape."""
    if name == "compare":
        match = COMPARISON.fullmatch(question)
        assert match, question
        a, b = int(match[1]), int(match[2])
        assert a != b and max(a, b) < 10**level
        return max(a, b)
    match = EXPRESSION.fullmatch(question)
    assert match, question
    tokens = match[1].split(" ")
    operands = [int(t) for t in tokens[::2]]
    if name == "chain_sum":
        assert len(operands) == level + 1 and max(operands) <= 9 and set(tokens[1::2]) == {"+"}
    else:
        top = {1: 5, 2: 9, 3: 20, 4: 99, 5: 99}[level]
        assert len(operands) == (3 if level == 5 else 2) and max(operands) <= top
        assert level == 5 or set(tokens[1::2]) == {"+"}
    total = operands[0]
    for op, value in zip(tokens[1::2], operands[1:], strict=True):
        total = total + value if op == "+" else total - value
    return total


@pytest.mark.parametrize(("name", "level"), LEVELS)
def test_every_answer_is_recomputed_from_its_question(name, level):
    for rows in _rows(name, level).values():
        for question, answer in rows:
            assert answer == str(_solve(name, level, question)), question


@pytest.mark.parametrize(("name", "level"), LEVELS)
def test_splits_are_disjoint_without_duplicates_and_sized_to_the_space(name, level):
    rows = _rows(name, level)
    questions = {split: [q for q, _ in r] for split, r in rows.items()}
    assert all(len(set(q)) == len(q) for q in questions.values())
    assert not set(questions["train"]) & set(questions["test"])
    assert not set(questions["train"]) & set(questions["validation"])
    assert not set(questions["validation"]) & set(questions["test"])
    sizes = {split: len(q) for split, q in questions.items()}
    total = sum(sizes.values())
    assert sizes == (SPLIT_SIZES if total == sum(SPLIT_SIZES.values()) else split_sizes(total))
    assert all(n >= 1 for n in sizes.values())
    if GENERATORS[name].space(level) >= 10 * sum(SPLIT_SIZES.values()):
        assert sizes == SPLIT_SIZES


def test_a_tiny_space_is_carved_whole_into_disjoint_splits():
    rows = _rows("arithmetic", 1)
    everything = {q for r in rows.values() for q, _ in r}
    assert len(everything) == 36  # every a + b with a, b in 0..5, each in exactly one split
    assert {split: len(r) for split, r in rows.items()} == split_sizes(36) == {"test": 6, "validation": 2, "train": 28}
    assert sum(len(r) for r in _rows("compare", 1).values()) == 90  # 10 × 9 ordered pairs of distinct numbers


def test_generation_is_deterministic_within_and_across_processes():
    first = {level: _rows("arithmetic", level) for level in (2, 5)}
    cached_problems.cache_clear()
    assert {level: _rows("arithmetic", level) for level in (2, 5)} == first
    here = load_instruction_data("builtin:compare", difficulty=3).fingerprint
    code = (
        "from peftlab.data import load_instruction_data\n"
        "print(load_instruction_data('builtin:compare', difficulty=3).fingerprint)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # str hashes differ from this process's
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == here


def test_the_rows_of_a_level_never_move():
    """The data a record names must come back on any machine and Python: these pin the generator itself."""
    rows = _rows("arithmetic", 5)
    assert rows["test"][0] == ("What is 55 + 56 - 59? Reply with the number only.", "52")
    assert rows["train"][0] == ("What is 73 + 84 - 86? Reply with the number only.", "71")
    assert _rows("arithmetic", 1)["test"][0] == ("What is 4 + 3? Reply with the number only.", "7")


def test_load_instruction_data_gives_conversation_rows_with_limits_and_a_title():
    data = load_instruction_data("builtin:arithmetic", difficulty=4, limits={"train": 50, "test": 20})
    assert data.kind == "conversations" and data.label_names == ()
    assert data.sizes() == {"train": 50, "validation": 200, "test": 20}
    messages, completion = data.conversation(data.train["text"][0])
    assert messages == [{"role": "user", "content": messages[0]["content"]}]
    assert completion == str(_solve("arithmetic", 4, messages[0]["content"]))
    assert data.name == "procedural arithmetic (level 4: two operands 0..99), generated by peftlab"
    assert data.citation == "generated by peftlab (peftlab/data/procedural.py)"
    default = load_instruction_data("builtin:arithmetic")
    assert default.name.startswith("procedural arithmetic (level 2: two operands 0..9)")
    assert default.fingerprint == load_instruction_data("builtin:arithmetic", difficulty=2).fingerprint


def test_the_level_changes_the_rows_and_the_fingerprint():
    fingerprints = {load_instruction_data("builtin:arithmetic", difficulty=level).fingerprint for level in range(1, 6)}
    assert len(fingerprints) == 5
    first_rows = [load_instruction_data("builtin:chain_sum", difficulty=level).train["text"][0] for level in (1, 2)]
    assert first_rows[0] != first_rows[1]
    one_row = {"train": 1, "validation": 1, "test": 1}
    tiny = {load_instruction_data("builtin:compare", difficulty=lv, limits=one_row).fingerprint for lv in (1, 2, 3)}
    assert len(tiny) == 3


def test_bad_difficulty_in_the_loader_is_one_line():
    with pytest.raises(DataSourceError) as err:
        load_instruction_data("builtin:compare", difficulty=4)
    assert "\n" not in str(err.value) and "3 (two distinct numbers 0..999)" in str(err.value)
    with pytest.raises(DataSourceError) as err:
        load_instruction_data("builtin:rotten_tomatoes", difficulty=1)
    assert "builtin:arithmetic" in str(err.value) and "not generated" in str(err.value)


def test_a_generated_builtin_is_refused_as_classification_data_naming_the_tasks_it_fits():
    for load in (load_classification_data, lambda s: load_classification_data(s, targets="numbers")):
        with pytest.raises(DataSourceError) as err:
            load("builtin:arithmetic")
        message = str(err.value)
        assert "\n" not in message and "not usable as" in message and "tasks it fits: grpo, sft" in message
    with pytest.raises(DataSourceError) as err:
        load_classification_data("builtin:aritmetic")
    assert "did you mean builtin:arithmetic?" in str(err.value)


def test_generated_builtins_are_described_with_their_levels():
    described = describe_builtin_sources()
    assert {"builtin:arithmetic", "builtin:compare", "builtin:chain_sum", "builtin:rotten_tomatoes"} <= set(described)
    assert "5 (three operands 0..99 with + and -)" in described["builtin:arithmetic"]
    assert all("\n" not in line for line in described.values())


# --------------------------------------------------------------------------- config


def _experiment(tmp_path: Path, data: str, task: str = "sft") -> Path:
    path = tmp_path / "rl.yaml"
    path.write_text(
        f"name: procedural\nmodel: builtin:smollm2-135m\ntask: {task}\ndata:\n{data}"
        f"output_dir: {tmp_path / 'results'}\nmethods: [{{method: lora, r: 4}}]\n"
    )
    return path


def test_bad_difficulty_is_one_line_exit_2_through_the_cli(tmp_path):
    path = _experiment(tmp_path, "  source: builtin:arithmetic\n  difficulty: 9\n")
    command = [sys.executable, "-m", "peftlab.run", str(path), "--dry-run"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "data.difficulty: got 9" in line and "1 (two operands 0..5)" in line and "null: 2" in line
    assert "Traceback" not in result.stderr


def test_difficulty_is_checked_against_the_source_and_the_task(tmp_path):
    def error(data: str, task: str = "sft") -> str:
        with pytest.raises(ConfigError) as err:
            load_experiment(_experiment(tmp_path, data, task))
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "data.difficulty: got 0" in error("  source: builtin:chain_sum\n  difficulty: 0\n")
    assert "not generated" in error("  source: builtin:rotten_tomatoes\n  difficulty: 2\n")
    assert "data.difficulty: got True" in error("  source: builtin:compare\n  difficulty: true\n")
    message = error("  source: builtin:compare\n", task="classification")
    assert "data.source" in message and "tasks it fits: grpo, sft" in message


def test_difficulty_enters_the_run_id_only_when_set(tmp_path):
    unset = load_experiment(_experiment(tmp_path, "  source: builtin:arithmetic\n"))
    assert "difficulty" not in computed_config(unset)["data"]
    level = load_experiment(_experiment(tmp_path, "  source: builtin:arithmetic\n  difficulty: 3\n"))
    assert computed_config(level)["data"]["difficulty"] == 3
    assert json.dumps(computed_config(unset), default=str) != json.dumps(computed_config(level), default=str)
