"""Which layers an adapter targets, found by inspecting the model rather than read from a name table.

An experiment names target sets that mean the same thing on every architecture: `q`, `qv`,
`qkv` (attention projections), `all-linear`, or null (the method's usual default). A name table
alone breaks on the seeds' own models: GPT-2 has Conv1D layers and one fused `c_attn`, Phi-3 a
fused `qkv_proj` and no peft default at all. So the attention and MLP projections are found in
the loaded model: an attention block is a module whose class name contains "Attention", its
projections are its direct linear children (nn.Linear, transformers' Conv1D, bitsandbytes'
Linear4bit, or a peft layer wrapping one), named q/k/v separately or, when none is, one fused
projection wider than its input. MLP projections are found by shape: up projections widen the
hidden size, down projections narrow it back.

A fused projection is an explicit choice: `qv` on GPT-2 adapts `c_attn`, which also computes k;
`describe_targets` puts that in the run's record (`fused_projections`, `target_note`).

Names that match nothing are a config error before any run starts, listing the layers that could
be targeted: resolving is the methods' `check_model` hook, which `peftlab.methods.fit` runs on a
meta-device skeleton of the model.
torch and transformers are imported inside functions: the method registry stays torch-free.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from peftlab.method_specs.target_sets import TARGET_SET_HELP, is_target_set
from peftlab.methods.fit import Unfit

HEAD_NAMES = frozenset({"classifier", "pre_classifier", "score", "lm_head"})  # task heads: trained whole, never adapted
_LETTER = {
    "q": re.compile(r"(q|query|wq)(_proj|_lin)?"),
    "k": re.compile(r"(k|key|wk)(_proj|_lin)?"),
    "v": re.compile(r"(v|value|wv)(_proj|_lin)?"),
}
_OUTPUT = re.compile(r"o|wo|o_proj|out_proj|out_lin|dense|c_proj|output")


# ---------------------------------------------------------------- inspection


def _base(module: Any) -> Any:
    """The layer a peft tuner layer wraps (a LoRA/IA3 Linear has `base_layer`), else the module itself."""
    return module.get_base_layer() if hasattr(module, "get_base_layer") else module


def _shape(module: Any) -> tuple[int, int] | None:
    """(in, out) features of a targetable linear layer, or None for anything else."""
    import torch
    from transformers.pytorch_utils import Conv1D

    layer = _base(module)
    if isinstance(layer, torch.nn.Linear):  # bitsandbytes' Linear4bit is a subclass
        return int(layer.in_features), int(layer.out_features)
    if isinstance(layer, Conv1D):  # GPT-2: weight is (in, out)
        return int(layer.weight.shape[0]), int(layer.weight.shape[1])
    return None


def _walk(module: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """named_modules() that stops inside peft wrappers (their lora_A/base_layer are not model layers)."""
    yield prefix, module
    if hasattr(module, "base_layer") or type(module).__name__ == "ModulesToSaveWrapper":
        return
    for name, child in module.named_children():
        yield from _walk(child, f"{prefix}.{name}" if prefix else name)


def _is_head(name: str) -> bool:
    return any(part in HEAD_NAMES for part in name.split("."))


@dataclass
class Layout:
    """The model's targetable layers by role, as full module names."""

    linear: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (in, out), heads excluded
    head: set[str] = field(default_factory=set)  # linear layers of the task head (never adapter targets)
    conv1d: set[str] = field(default_factory=set)  # those stored (in, out) as transformers' Conv1D (GPT-2)
    attention: dict[str, list[str]] = field(default_factory=lambda: {"q": [], "k": [], "v": [], "o": []})
    fused: list[str] = field(default_factory=list)  # one projection computing q, k and v together
    mlp_up: list[str] = field(default_factory=list)
    mlp_down: list[str] = field(default_factory=list)

    def leaf_names(self) -> list[str]:
        """Distinct layer names a user can write, in model order (what an error message lists)."""
        return list(dict.fromkeys(n.rsplit(".", 1)[-1] for n in self.linear))


def inspect_model(model: Any) -> Layout:
    """Sort the model's linear layers into attention q/k/v/o, fused qkv and MLP up/down projections."""
    layout = Layout()
    attention_children: set[str] = set()
    for name, module in _walk(model):
        shape = _shape(module)
        if shape is not None and name and _is_head(name):
            layout.head.add(name)
        elif shape is not None and name:
            layout.linear[name] = shape
            if type(_base(module)).__name__ == "Conv1D":
                layout.conv1d.add(name)
        if "Attention" not in type(module).__name__ or shape is not None:
            continue
        children = [(n, c) for n, c in module.named_children() if _shape(c) is not None]
        found: dict[str, list[str]] = {letter: [] for letter in "qkvo"}
        rest = []
        for leaf, child in children:
            full = f"{name}.{leaf}" if name else leaf
            attention_children.add(full)
            letter = next((x for x, rx in _LETTER.items() if rx.fullmatch(leaf)), None)
            if letter is not None:
                found[letter].append(full)
            elif _OUTPUT.fullmatch(leaf):
                found["o"].append(full)
            else:
                rest.append((full, child))
        if not any(found[x] for x in "qkv"):  # no separate q/k/v: a projection wider than its input computes all three
            fused = [full for full, child in rest if _shape(child)[1] > _shape(child)[0]]
            layout.fused += fused
        for letter, names in found.items():
            layout.attention[letter] += names
    hidden = _hidden_size(model)
    for name, (fan_in, fan_out) in layout.linear.items():
        if name in attention_children or hidden is None:
            continue
        if fan_in == hidden and fan_out > hidden:
            layout.mlp_up.append(name)
        elif fan_out == hidden and fan_in > hidden:
            layout.mlp_down.append(name)
    return layout


def _hidden_size(model: Any) -> int | None:
    config = getattr(model, "config", None)
    for key in ("hidden_size", "n_embd", "dim", "d_model"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


# ---------------------------------------------------------------- names peft can match


def _matches(name: str, target: str) -> bool:
    """peft's rule for a list entry: the module's full name, or a suffix of it at a dot."""
    return name == target or name.endswith("." + target)


def short_names(selected: list[str], layout: Layout) -> list[str]:
    """The shortest dotted suffixes that match exactly `selected` among the model's layers.

    `c_attn` is enough for GPT-2; its `c_proj` exists in attention and MLP, so the MLP one is
    `mlp.c_proj`. Where no suffix without a layer index separates them, full names are used.
    """
    wanted = set(selected)
    if not wanted:
        return []
    depth = max(n.count(".") for n in wanted) + 1
    for k in range(1, depth + 1):
        suffixes = {".".join(n.split(".")[-k:]) for n in wanted}
        if any(part.isdigit() for s in suffixes for part in s.split(".")):
            break
        if {n for n in (*layout.linear, *layout.head) if any(_matches(n, s) for s in suffixes)} == wanted:
            return sorted(suffixes)
    return sorted(wanted)


# ---------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Resolved:
    """What a method hands peft, and what the record says about it."""

    target_modules: list[str] | str | None  # None: peft's own default for this architecture
    feedforward_modules: list[str] | None = None  # IA3 only
    fused: tuple[str, ...] = ()  # names among target_modules that are fused q/k/v projections
    fan_in_fan_out: bool = False  # the targets are Conv1D layers (LoRA must transpose; peft warns otherwise)


def _attention_modules(letters: str, layout: Layout) -> tuple[list[str], list[str]]:
    """(full names, fused full names) for a set such as "qv"; a missing letter falls back to the fused projection."""
    names: list[str] = []
    fused_used = False
    for letter in letters:
        if layout.attention[letter]:
            names += layout.attention[letter]
        elif layout.fused:
            fused_used = True
        else:
            raise Unfit("target_modules", f"no {letter} projection found in any attention block")
    if fused_used:
        names += layout.fused
    return list(dict.fromkeys(names)), (list(layout.fused) if fused_used else [])


def _check_names(spec: Any, layout: Layout) -> None:
    """Every explicit name (or a regex string) must match at least one targetable layer."""
    if isinstance(spec, str):
        if not any(re.fullmatch(spec, n) for n in layout.linear):
            raise Unfit("target_modules", f"{spec!r} matches no layer")
        return
    missing = [t for t in spec if not any(_matches(n, t) for n in layout.linear)]
    if missing:
        verb = "matches" if len(missing) == 1 else "match"
        raise Unfit("target_modules", f"{', '.join(map(repr, missing))} {verb} no layer")


def _fallback(kind: str, layout: Layout) -> tuple[list[str], list[str], list[str]]:
    """(targets, feedforward, fused) by inspection where peft has no default: q and v (IA3: k, v and MLP down)."""
    if kind == "ia3":
        attention, fused = _attention_modules("kv", layout)
        return attention + layout.mlp_down, list(layout.mlp_down), fused
    attention, fused = _attention_modules("qv", layout)
    return attention, [], fused


def resolve_targets(
    spec: Any,
    model: Any,
    *,
    kind: str = "lora",
    peft_defaults: Mapping[str, Any] | None = None,
    feedforward: Any = None,
) -> Resolved:
    """Turn a target spec into what peft is given, for this model.

    `kind` is "lora" (also DoRA, rsLoRA, QLoRA, AdaLoRA) or "ia3" (which also needs
    `feedforward_modules`: the targets whose input, not output, is rescaled: the MLP down projections).
    `peft_defaults` is peft's table for the method; where it has this model type, null keeps
    peft's default, otherwise null falls back to the projections found by inspection.
    """
    layout = inspect_model(model)
    try:
        return _resolve(spec, layout, model, kind, peft_defaults, feedforward)
    except Unfit as err:
        layers = ", ".join(layout.leaf_names()) or "none"
        sets = f"or a set: {TARGET_SET_HELP}; or null"
        raise Unfit(err.key, f"{err}; the model's linear layers: {layers} ({sets})") from None


def _resolve(
    spec: Any, layout: Layout, model: Any, kind: str, peft_defaults: Mapping[str, Any] | None, feedforward: Any
) -> Resolved:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if not layout.linear:
        raise Unfit("target_modules", "the model has no linear layers to adapt")
    fused: list[str] = []
    ff_names: list[str] | None = None
    if spec is None:
        if peft_defaults and peft_defaults.get(model_type):
            defaults = list(peft_defaults[model_type])
            return Resolved(None, _explicit_ff(feedforward, layout, kind, None), (), _targets_conv1d(defaults, layout))
        try:
            full, ff_full, fused = _fallback(kind, layout)
        except Unfit as err:
            raise Unfit("target_modules", f"null: peft has no default for {model_type!r}, and {err}") from None
        targets: list[str] | str = short_names(full, layout)
        ff_names = short_names(ff_full, layout) if kind == "ia3" else None
    elif spec == "all-linear":  # listed here rather than left to peft, whose expansion reaches into task heads
        targets = short_names(list(layout.linear), layout)
        ff_names = short_names(layout.mlp_down, layout) if kind == "ia3" else None
        if ff_names:  # peft wants feedforward names among the targets, spelled the same
            targets = sorted(set(targets) | set(ff_names))
    elif is_target_set(spec):
        try:
            full, fused = _attention_modules(spec, layout)
        except Unfit as err:
            raise Unfit("target_modules", f"{spec!r}: {err}") from None
        targets = short_names(full, layout)
        ff_names = [] if kind == "ia3" else None
    else:
        _check_names(spec, layout)
        targets = spec
        fused = [n for n in layout.fused if any(_matches(n, t) for t in spec)] if isinstance(spec, list) else []
    ff = _explicit_ff(feedforward, layout, kind, ff_names)
    if ff and isinstance(targets, list) and not set(ff) <= set(targets):  # peft's rule, raised before any run
        outside = ", ".join(repr(f) for f in ff if f not in targets)
        raise Unfit("feedforward_modules", f"{outside} must also be among target_modules ({', '.join(targets)})")
    fused_short = tuple(short_names(fused, layout)) if fused else ()
    return Resolved(targets, ff, fused_short, _targets_conv1d(targets, layout))


def _targets_conv1d(targets: list[str] | str, layout: Layout) -> bool:
    chosen = [n for n in layout.linear if any(_matches(n, t) for t in targets)] if isinstance(targets, list) else []
    return bool(chosen) and all(n in layout.conv1d for n in chosen)


def _explicit_ff(feedforward: Any, layout: Layout, kind: str, resolved: list[str] | None) -> list[str] | None:
    if kind != "ia3":
        return None
    if feedforward is None:
        return resolved
    if isinstance(feedforward, str):
        feedforward = [feedforward]
    try:
        _check_names(feedforward, layout)
    except Unfit as err:
        raise Unfit("feedforward_modules", str(err)) from None
    return list(feedforward)


def describe_targets(model: Any) -> dict[str, Any]:
    """The record's account of a prepared peft model's targets: names, fused projections, a note."""
    config = getattr(model, "peft_config", {}).get("default") if hasattr(model, "peft_config") else None
    targets = getattr(config, "target_modules", None) if config is not None else None
    if not targets:
        return {"resolved_target_modules": None}
    names = sorted(targets) if not isinstance(targets, str) else [targets]
    layout = inspect_model(model)
    fused = sorted({n.rsplit(".", 1)[-1] for n in layout.fused if any(_matches(n, t) for t in names)})
    out: dict[str, Any] = {"resolved_target_modules": names, "fused_projections": fused or None}
    if fused:
        out["target_note"] = f"fused projection {', '.join(fused)} (q, k and v in one layer) adapted as a whole"
    return out


def resolve_for_method(method: str, params: Mapping[str, Any], model: Any) -> Resolved:
    """Resolve a method's target hyperparameters against `model`, with the defaults peft keeps for it.

    peft names its tables after the method (`..._TO_IA3_TARGET_MODULES_MAPPING`); the LoRA
    variants (DoRA, rsLoRA, QLoRA) use LoRA's. A method with `feedforward_modules` is IA3-like.
    """
    from peft.utils import constants

    lora = constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    table = getattr(constants, f"TRANSFORMERS_MODELS_TO_{method.upper()}_TARGET_MODULES_MAPPING", lora)
    ia3_like = "feedforward_modules" in params
    return resolve_targets(
        params.get("target_modules"),
        model,
        kind="ia3" if ia3_like else "lora",
        peft_defaults=table,
        feedforward=params.get("feedforward_modules"),
    )


def targets_check(method: str) -> Callable[[Mapping[str, Any], Any], None]:
    """The registry's `check_model` hook for a method with target layers: resolving them is the check."""

    def check(params: Mapping[str, Any], model: Any) -> None:
        resolve_for_method(method, params, model)

    return check
