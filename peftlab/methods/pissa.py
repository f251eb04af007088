"""PiSSA: LoRA initialised from the principal singular vectors of each weight (Meng et al., 2024).

A·B starts as the top-r part of W and the base keeps the residual, so training moves the
principal directions first; saved as a plain LoRA on the original base (`base_moving`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.methods.base_moving import remember_initial_adapter, save_as_plain_lora
from peftlab.methods.lora import LoraParams, lora_config
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check


@dataclass
class PissaParams(LoraParams):
    alpha: float = 8  # PiSSA's scale is alpha = r: A·B reproduces W's top-r part exactly
    dropout: float = 0.0  # dropout on the principal part would perturb W itself at step 0
    # fast randomised SVD with this many subspace iterations; 0: the exact (slow) SVD
    svd_niter: int = 4

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        super().__post_init__()
        check(self.svd_niter >= 0, "svd_niter", f"got {self.svd_niter}, must be 0 (exact SVD) or more")


def _prepare(model: Any, params: PissaParams, ctx: ModelContext) -> Any:
    from peft import get_peft_model

    init = "pissa" if params.svd_niter == 0 else f"pissa_niter_{params.svd_niter}"
    peft_model = get_peft_model(model, lora_config(params, ctx, model, init_lora_weights=init))
    remember_initial_adapter(peft_model)
    return peft_model


register(
    Method(
        name="pissa",
        summary="LoRA initialised from the principal singular vectors of W (Meng et al., 2024)",
        params=PissaParams,
        default_lr=5e-4,
        prepare=_prepare,
        check_model=targets_check("pissa"),
        save_adapter=save_as_plain_lora,
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32]},
            "lr": {"type": "float", "low": 5e-5, "high": 2e-3, "log": True},
        },
    )
)
