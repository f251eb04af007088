"""EVA: LoRA initialised from the activations' principal directions, ranks redistributed (Paischer et al., 2024).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/eva.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec
from peftlab.method_specs.lora import LoraParams


@dataclass
class EvaParams(LoraParams):
    rho: float = 2.0  # a layer may get up to rho × r ranks; 1.0: every layer keeps r
    tau: float = 0.99  # cosine similarity at which a singular vector counts as converged
    whiten: bool = False
    calibration_batches: int = 8  # training batches the SVD sees (cycled until it converges)

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        super().__post_init__()
        check(self.rho >= 1.0, "rho", f"got {self.rho}, must be at least 1")
        check(0 < self.tau <= 1, "tau", f"got {self.tau}, must be in (0, 1]")
        check(self.calibration_batches >= 1, "calibration_batches", "must be at least 1")


SPEC = register_method_spec(
    MethodSpec(
        name="eva",
        summary="LoRA from the SVD of the layers' input activations, ranks redistributed (Paischer et al., 2024)",
        params=EvaParams,
        default_lr=1e-3,
        runtime="peftlab.methods.eva",
        search_space={
            "r": {"type": "categorical", "choices": [4, 8, 16, 32]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
