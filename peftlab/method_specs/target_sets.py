"""The architecture-independent target sets a method's `target_modules` may name: q, qv, qkv, ..., all-linear.

What a set means on a loaded model is resolved at run time (peftlab/methods/targets.py); which
names are sets is a declaration the config checks torch-free (a search's `target_modules` choices).
This module registers no method.
"""

from __future__ import annotations

import re
from typing import Any

TARGET_SET_HELP = "a combination of q, k, v (e.g. q, qv, qkv) or all-linear"


def is_target_set(name: Any) -> bool:
    """Whether `name` is one of the architecture-independent set names (q, qv, qkv, …, all-linear)."""
    return isinstance(name, str) and (name == "all-linear" or re.fullmatch(r"q?k?v?", name) is not None) and name != ""
