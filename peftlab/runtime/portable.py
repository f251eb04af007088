"""A saved adapter names its base model by a name that means the same on every machine.

peft writes the base model's `name_or_path` into `adapter_config.json` and the README's
metadata: for a model loaded from a folder, that is this machine's path (a builtin's package
folder inside the virtual environment), which `PeftModel.from_pretrained` cannot find anywhere
else and the hub refuses as a `base_model`. The save phase rewrites both to the portable name
(`ModelSource.portable_name`: the hub id, or the user's own id or path as given); the local path
stays in the record (`model.location`) only.
"""

from __future__ import annotations

import json
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_TAG = "base_model:adapter:"


def name_base_model(folder: Path, base_model: str) -> None:
    """Point the adapter in `folder` (config and peft's README metadata) at `base_model`."""
    config_file = Path(folder) / ADAPTER_CONFIG
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = base_model
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    readme = Path(folder) / "README.md"
    if readme.is_file():
        from huggingface_hub import ModelCard

        card = ModelCard.load(readme)
        card.data.base_model = base_model
        tags = [t for t in (card.data.tags or []) if not str(t).startswith(ADAPTER_TAG)]
        card.data.tags = [*tags, f"{ADAPTER_TAG}{base_model}"]
        card.save(readme)
