"""Adapters whose initialisation moves the base weights (PiSSA, OLoRA, LoRA-GA): saved as plain LoRA.

PiSSA puts the principal components of W into A·B and trains on W_res = W − A₀B₀; OLoRA and
LoRA-GA do the same with other factors. The adapter alone is then wrong on the untouched base
model that anyone else loads. peft's remedy is to save ΔW = AB − A₀B₀ as a LoRA of twice the rank
(`path_initial_model_for_weight_conversion`), which needs the adapter as initialised: it is kept
in memory (CPU) right after initialisation and written to a temporary folder only when saving.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

_INITIAL = "_peftlab_initial_adapter"


def remember_initial_adapter(model: Any) -> None:
    """Keep the freshly initialised adapter weights (CPU copies) on the model for `save_as_plain_lora`."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model)
    setattr(model, _INITIAL, {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()})


def save_as_plain_lora(model: Any, folder: Any) -> None:
    """The registry's `save_adapter` hook: ΔW since initialisation as a LoRA that loads on the original base."""
    from safetensors.torch import save_file

    initial = getattr(model, _INITIAL, None)
    if initial is None:
        raise RuntimeError("the adapter's initial weights were not kept; call remember_initial_adapter after init")
    with tempfile.TemporaryDirectory(prefix="peftlab-initial-") as tmp:
        initial_dir = Path(tmp) / "initial"  # peft loads it as an adapter named after the folder, then deletes it
        initial_dir.mkdir()
        save_file(initial, str(initial_dir / "adapter_model.safetensors"))
        model.save_pretrained(
            str(folder), safe_serialization=True, path_initial_model_for_weight_conversion=str(initial_dir)
        )
    _put_back_trained_modules(model, Path(folder) / "adapter_model.safetensors")


def _put_back_trained_modules(model: Any, file: Path) -> None:
    """peft 0.21's conversion keeps only the LoRA factors and drops `modules_to_save` (the trained head),
    though the saved config still lists them, so the adapter would not load; add them back."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(file))
    extra = {k: v for k, v in get_peft_model_state_dict(model).items() if "lora_" not in k and k not in tensors}
    if extra:
        extra = {k: v.detach().cpu().contiguous() for k, v in extra.items()}
        save_file({**tensors, **extra}, str(file), metadata={"format": "pt"})
