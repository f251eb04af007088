"""`method: peft`: any method peft ships, by its config class, without a module of its own.

    - method: peft
      config: VeraConfig
      kwargs: {r: 128, target_modules: qv}

`kwargs` are the class's own keyword arguments. They are checked against the class's dataclass
fields, and the config is built once, before any run starts (the `check_model` hook, which runs
where torch is loaded anyway), so a misspelt field is a one-line config error naming the file,
the key and the allowed fields. Registry import stays torch-free: peft is imported only there
and in `prepare`. As everywhere, `target_modules` may be a set (q, qv, qkv, all-linear) resolved
against the loaded model, and the fresh task head trains whole (`modules_to_save`). A curated
module is still worth writing for a method worth comparing: it brings a default learning rate
and a search space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from peftlab.method_specs.peft_any import SPEC, PeftParams
from peftlab.methods.fit import Unfit
from peftlab.methods.registry import Method, ModelContext, register

# fields peftlab sets itself, or that describe a saved adapter rather than a method
_MANAGED = frozenset(
    {"task_type", "peft_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping", "peft_version"}
)


def _config_class(name: str) -> type:
    import peft

    classes = sorted(n for n in dir(peft) if n.endswith("Config") and _is_method_config(getattr(peft, n)))
    if name not in classes:
        from peftlab.config.schema import closest

        allowed = f"{', '.join(classes)}{closest(name, classes)}"
        raise Unfit("config", f"unknown peft config class {name!r}; allowed: {allowed}")
    return getattr(peft, name)


def _is_method_config(cls: Any) -> bool:
    from peft import PeftConfig

    dataclass = isinstance(cls, type) and hasattr(cls, "__dataclass_fields__")
    return dataclass and issubclass(cls, PeftConfig) and cls is not PeftConfig


def _build(params: Mapping[str, Any], model: Any, ctx_task_type: str | None, head_modules: tuple[str, ...]) -> Any:
    """The peft config object; every mistake is an `Unfit` naming the key."""
    from peftlab.methods.adapters import peft_config_fields
    from peftlab.methods.targets import resolve_for_method

    cls = _config_class(params["config"])
    allowed = [f for f in peft_config_fields(cls) if f not in _MANAGED]
    kwargs = dict(params.get("kwargs") or {})
    for key in kwargs:
        if key not in allowed:
            from peftlab.config.schema import closest

            names = f"{', '.join(allowed)}{closest(key, allowed)}"
            raise Unfit(f"kwargs.{key}", f"not a field of {cls.__name__}; allowed: {names}")
    fields = set(allowed)
    if "target_modules" in fields and not _is_prompt_learning(cls):
        kind = str(cls().peft_type.value).lower() if _default_constructible(cls) else "lora"
        spec = {"target_modules": kwargs.get("target_modules")}
        if "feedforward_modules" in fields:
            spec["feedforward_modules"] = kwargs.get("feedforward_modules")
        try:
            resolved = resolve_for_method(kind, spec, model)
        except Unfit as err:  # the key sits under `kwargs:` in this entry
            raise Unfit(f"kwargs.{err.key}", str(err)) from None
        kwargs["target_modules"] = resolved.target_modules
        if resolved.feedforward_modules is not None:
            kwargs["feedforward_modules"] = resolved.feedforward_modules
        if "fan_in_fan_out" in fields:
            kwargs.setdefault("fan_in_fan_out", resolved.fan_in_fan_out)
    if "modules_to_save" in fields and head_modules:
        kwargs.setdefault("modules_to_save", list(head_modules))
    if ctx_task_type is not None:
        kwargs["task_type"] = ctx_task_type
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Unfit("kwargs", f"{cls.__name__} rejects these arguments: {first}") from None


def _is_prompt_learning(cls: type) -> bool:
    from peft import PromptLearningConfig

    return issubclass(cls, PromptLearningConfig)


def _default_constructible(cls: type) -> bool:
    try:
        cls()
    except Exception:  # a class with required fields: fall back to LoRA's target table
        return False
    return True


def _prepare(model: Any, params: PeftParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    config = _build({"config": params.config, "kwargs": params.kwargs}, model, ctx.task_type, ctx.head_modules)
    return get_peft_model(model, config)


def _check(params: Mapping[str, Any], model: Any) -> None:
    _build(params, model, None, ())


register(Method(SPEC, prepare=_prepare, check_model=_check))
