"""PiSSA: LoRA initialised from the principal singular vectors of each weight (Meng et al., 2024).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/pissa.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec
from peftlab.method_specs.lora import LoraParams


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


SPEC = register_method_spec(
    MethodSpec(
        name="pissa",
        summary="LoRA initialised from the principal singular vectors of W (Meng et al., 2024)",
        params=PissaParams,
        default_lr=5e-4,
        runtime="peftlab.methods.pissa",
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32]},
            "lr": {"type": "float", "low": 5e-5, "high": 2e-3, "log": True},
        },
    )
)
