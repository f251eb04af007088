"""Which lm-evaluation-harness task names exist, found without importing lm-eval (the config is a leaf).

lm-eval's own index (`TaskManager`) imports `datasets` and parses ~14,000 YAML files (8 s here).
The config only needs the names, so it reads the `task:`, `group:` and `tag:` lines of the task
files (0.5 s); a name that scan misses (a typo, or one of the few names lm-eval generates) is
asked of lm-eval's `TaskManager` in a subprocess, so an existing task is never refused and a
misspelt one is one line naming the closest ones.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

_KEY = re.compile(r"""^[ \t]*(?:-[ \t]*)?["']?(task|group|tag)["']?:[ \t]*(.*)$""", re.M)
_ITEM = re.compile(r"""^\s*-\s*["']?([^\s:"']+)["']?\s*$""")


def lm_eval_installed() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


def builtin_tasks_dir() -> Path:
    spec = importlib.util.find_spec("lm_eval")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


@functools.lru_cache(maxsize=8)
def scanned_names(folder: str) -> frozenset[str]:
    """Task, group and tag names declared in the YAML files under `folder` (a fast, slightly short scan)."""
    names: set[str] = set()
    for dirpath, _, files in os.walk(folder):
        for file in files:
            if not file.endswith((".yaml", ".yml")):
                continue
            text = Path(dirpath, file).read_text(encoding="utf-8", errors="replace")
            for match in _KEY.finditer(text):
                value = match.group(2).split(" #")[0].strip()
                if value.startswith("["):
                    names.update(v.strip().strip("'\"") for v in value.strip("[]").split(",") if v.strip())
                elif value:
                    names.add(value.strip("'\""))
                else:  # a block list on the following lines
                    for line in text[match.end() :].splitlines()[1:]:
                        item = _ITEM.match(line)
                        if item is None:
                            break
                        names.add(item.group(1))
    return frozenset(names)


@functools.lru_cache(maxsize=8)
def indexed_names(include_path: Path | None) -> frozenset[str] | None:
    """Every name lm-eval's `TaskManager` knows, asked in a subprocess (None if that fails)."""
    script = (
        "import json, sys\n"
        "from lm_eval.tasks import TaskManager\n"
        "print(json.dumps(sorted(TaskManager(include_path=sys.argv[1] or None).all_tasks)))\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    arg = str(include_path) if include_path is not None else ""
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, arg], capture_output=True, text=True, timeout=300, env=env, check=False
        )
        return frozenset(json.loads(done.stdout.strip().splitlines()[-1])) if done.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def unknown_tasks(names: list[str], include_path: Path | None) -> dict[str, list[str]]:
    """{unknown name: up to three closest known names}; empty when every name exists."""
    known = set(scanned_names(str(builtin_tasks_dir())))
    if include_path is not None:
        known |= scanned_names(str(include_path))
    missing = [n for n in names if n not in known]
    if not missing:
        return {}
    indexed = indexed_names(include_path)
    if indexed is not None:
        missing = [n for n in missing if n not in indexed]
        known |= indexed
    return {n: difflib.get_close_matches(n, known, n=3, cutoff=0.6) for n in missing}
