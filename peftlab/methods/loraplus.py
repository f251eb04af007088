"""LoRA+: LoRA with B trained at a higher learning rate than A (Hayou et al., 2024).

The adapter is plain LoRA; the method is its optimiser (peft's `create_loraplus_optimizer`),
built through the registry's `make_optimizer` hook. The fresh head trains at the base rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.lora import LoraParams, lora_config
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


@dataclass
class LoraPlusParams(LoraParams):
    lr_ratio: float = 16.0  # η_B / η_A; the paper's default

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        super().__post_init__()
        check(self.lr_ratio >= 1, "lr_ratio", f"got {self.lr_ratio}, must be at least 1")


def _prepare(model: Any, params: LoraPlusParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, lora_config(params, ctx, model))


def _optimizer(model: Any, params: LoraPlusParams, lr: float, weight_decay: float) -> Any:
    import torch
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(
        model, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=params.lr_ratio, weight_decay=weight_decay
    )


register(
    Method(
        name="loraplus",
        summary="LoRA with B's learning rate a fixed multiple of A's (Hayou et al., 2024)",
        params=LoraPlusParams,
        default_lr=5e-4,
        prepare=_prepare,
        make_optimizer=_optimizer,
        check_model=targets_check("loraplus"),
        search_space={
            "lr_ratio": {"type": "categorical", "choices": [2.0, 4.0, 8.0, 16.0, 32.0]},
            "lr": {"type": "float", "low": 5e-5, "high": 2e-3, "log": True},
        },
    )
)
