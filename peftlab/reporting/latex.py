"""LaTeX text escaping and `\\newcommand` macro naming.

Method labels are identifiers (`prompt_tuning`, `lora[r=4]`), not prose: one unescaped underscore
stops pdflatex, so every string that reaches a .tex file goes through `escape`.
"""

from __future__ import annotations

import re

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    # a cell that starts with `[` right after `\\` would be read as the row's optional spacing argument
    "[": "{[}",
    "]": "{]}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_DIGITS = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]


def escape(text: object) -> str:
    """Plain text → LaTeX text mode (also the characters that are special only in some fonts)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def camel(text: object) -> str:
    """Any label → letters only, CamelCase: `prompt_tuning` → `PromptTuning`, `lora[r=16]` → `LoraROneSix`.

    TeX control words are letters only; digits become words so that `r=4` and `r=8` stay distinct.
    """
    spelled = "".join(f" {_DIGITS[int(ch)]} " if ch.isdigit() else ch for ch in str(text))
    words = re.split(r"[^A-Za-z]+", spelled)
    return "".join(w[:1].upper() + w[1:] for w in words if w)


def tag(experiment: object) -> str:
    """Experiment name → lowercase macro prefix: `bert_cls` → `bertcls`."""
    return camel(experiment).lower() or "exp"


def newcommand(name: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"macro name must be letters only: {name!r}")
    return f"\\newcommand{{\\{name}}}{{{value}}}"
