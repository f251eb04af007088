"""The verifiable rewards of task grpo: an answer checked against the row's reference, plus a format term.

Each reward is (completion, reference) -> (correct, in_format). The reward a completion earns is
`correct + format_weight × in_format` (`rl.format_weight`, 0 by default: correctness only, as
"LoRA Without Regret" and trl's math examples reward). Torch-free and pure, so that the tests
check them on strings and the config names them (peftlab/task_specs/grpo.py `REWARDS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation

from peftlab.tasks.scoring import gsm8k_final_number, normalize

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

Check = Callable[[str, str], tuple[bool, bool]]


def _canonical(number: str | None) -> str | None:
    """A number written canonically (`1,000.0` → `1000`), so equal values compare equal as strings."""
    if number is None:
        return None
    try:
        return format(Decimal(number.replace(",", "")).normalize(), "f")
    except InvalidOperation:
        return None


def first_number(text: str) -> str | None:
    """The first number in `text` (the answer a "reply with the number only" prompt asks for); None: none."""
    found = _NUMBER.search(text)
    return _canonical(found.group()) if found else None


def check_first_number(completion: str, reference: str) -> tuple[bool, bool]:
    """Right when the completion's first number is the reference's; in format when it is that number alone."""
    got, want = first_number(completion), first_number(reference)
    return got is not None and got == want, _NUMBER.fullmatch(completion.strip()) is not None


def check_final_number(completion: str, reference: str) -> tuple[bool, bool]:
    """GSM8K's final number of both (peftlab/tasks/scoring.py); in format when the answer marks it with ####."""
    got, want = gsm8k_final_number(completion), gsm8k_final_number(reference)
    return got is not None and got == want, "####" in completion


def check_exact(completion: str, reference: str) -> tuple[bool, bool]:
    """The normalised whole answer; in format when it is one line."""
    return normalize(completion) == normalize(reference), "\n" not in completion.strip()


CHECKS: dict[str, Check] = {
    "first_number": check_first_number,
    "final_number": check_final_number,
    "exact": check_exact,
}


def score(
    reward: str, completions: Sequence[str], references: Sequence[str], format_weight: float
) -> tuple[list[float], list[bool], list[bool]]:
    """(rewards, correct, in_format) of each completion against its reference."""
    check = CHECKS[reward]
    outcomes = [check(c, r) for c, r in zip(completions, references, strict=True)]
    correct = [c for c, _ in outcomes]
    in_format = [f for _, f in outcomes]
    rewards = [float(c) + format_weight * float(f) for c, f in outcomes]
    return rewards, correct, in_format
