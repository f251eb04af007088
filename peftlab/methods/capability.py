"""Can a method really run on a model class? Asked by doing it once, on a tiny twin of the class.

A signature can lie. transformers 5.24 renamed the encoders' `past_key_values` argument to
`cache` and kept the old name as a deprecated alias, which works but no longer shows in the
signature; a check that reads signatures then refuses a model that works, or (the other way
round) admits one whose forward drops the argument into `**kwargs`. So peftlab answers "does
prefix tuning run on this model?" by behaviour: it builds a tiny model of the same class from a
shrunken copy of the config, wraps it with the method, and runs one forward pass.

That computes with torch, and the experiment process must not before it forks its runs (an
OpenMP pool started in a parent hangs its forked children), so the trial runs in a forked child
of its own. Answers are cached per (model class, torch, transformers, peft), in memory and on
disk (`$XDG_CACHE_HOME/peftlab/capabilities.json`), so each class costs one trial per
environment.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

_MEMORY: dict[str, str | None] = {}


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "peftlab" / "capabilities.json"


@cache
def _versions() -> str:
    import importlib.metadata as md

    out = []
    for name in ("torch", "transformers", "peft"):
        try:
            out.append(f"{name}={md.version(name)}")
        except md.PackageNotFoundError:
            out.append(f"{name}=?")
    return ",".join(out)


def versions_text() -> str:
    """'transformers 5.23.0, peft 0.21.2': the releases an answer holds for, for messages."""
    return ", ".join(v.replace("=", " ") for v in _versions().split(",")[1:])


def tiny_twin(model: Any) -> Any:
    """A randomly initialised model of `model`'s class, one layer, two heads of width 8, on CPU.

    Only the sizes change; the architecture's switches (fused projections, cache classes,
    position kinds) stay, because they are what decides whether a method runs.
    """
    import torch

    config = copy.deepcopy(model.config)
    heads = getattr(config, "num_attention_heads", None)
    kv = getattr(config, "num_key_value_heads", None)
    sizes: dict[str, Any] = {"num_hidden_layers": 1}
    if heads:
        sizes["num_attention_heads"] = 2
        sizes["hidden_size"] = 16
        if kv:
            sizes["num_key_value_heads"] = 2 if kv == heads else 1
        if getattr(config, "head_dim", None):
            sizes["head_dim"] = 8
    for key in ("intermediate_size", "hidden_dim", "n_inner", "ffn_dim"):
        if getattr(config, key, None):
            sizes[key] = 32
    for key, value in sizes.items():
        with contextlib.suppress(AttributeError, ValueError):
            setattr(config, key, value)
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:1]
    with torch.device("cpu"):
        return type(model)(config).eval()


def _child(trial: Callable[[], None], write_fd: int) -> None:
    try:
        import torch

        torch.set_num_threads(1)
        trial()
        verdict: str | None = None
    except Exception as err:  # the answer is the error itself
        verdict = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".strip()
    with os.fdopen(write_fd, "wb") as pipe:
        pickle.dump(verdict, pipe)


def _run_forked(trial: Callable[[], None]) -> str | None:
    """The trial's error line, or None when it ran; in a forked child where fork exists."""
    if not hasattr(os, "fork"):
        try:
            trial()
            return None
        except Exception as err:
            return f"{type(err).__name__}: {err}"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        code = 0
        try:
            _child(trial, write_fd)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:
        return "the trial process died without an answer"
    return pickle.loads(data)


def works(question: str, model: Any, trial: Callable[[Any], None]) -> str | None:
    """None when `trial(tiny twin of model)` runs; otherwise its one-line error. Cached per class and versions."""
    cls = type(model)
    key = f"{question}|{cls.__module__}.{cls.__qualname__}|{_versions()}"
    if key in _MEMORY:
        return _MEMORY[key]
    path = _cache_file()
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    if key in stored:
        _MEMORY[key] = stored[key]
        return stored[key]

    def run() -> None:
        trial(tiny_twin(model))

    verdict = _run_forked(run)
    _MEMORY[key] = verdict
    if verdict is None or not verdict.startswith("the trial process died"):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            stored[key] = verdict
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
            tmp.replace(path)
        except OSError:
            pass  # a read-only home: the answer is kept for this process only
    return verdict
