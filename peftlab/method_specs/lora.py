"""LoRA and its family (DoRA, rsLoRA, QLoRA): one peft `LoraConfig`, different switches.

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/lora.py.
The methods initialised otherwise (PiSSA, OLoRA, EVA, LoRA-GA, LoRA+, LoRA-FA) extend `LoraParams`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from peftlab.method_specs import MethodSpec, register_method_spec

LORA_SPACE = {
    "r": {"type": "categorical", "choices": [1, 2, 4, 8, 16, 32, 64]},
    "alpha_ratio": {"type": "categorical", "choices": [0.5, 1.0, 2.0, 4.0]},
    "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
}


@dataclass
class LoraParams:
    r: int = 8
    alpha: float = 16
    dropout: float = 0.05
    # a set (q, qv, qkv, all-linear) resolved against the loaded model, layer names, or None: peft's
    # default for the architecture, else the attention projections found (peftlab.methods.targets)
    target_modules: list[str] | str | None = None
    bias: Literal["none", "all", "lora_only"] = "none"
    use_rslora: bool = False
    use_dora: bool = False

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.r >= 1, "r", f"got {self.r}, must be at least 1")
        check(self.alpha > 0, "alpha", f"got {self.alpha}, must be positive")
        check(0 <= self.dropout < 1, "dropout", f"got {self.dropout}, must be in [0, 1)")


@dataclass
class QLoraParams(LoraParams):
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True


def _lora(name: str, summary: str, params: type = LoraParams, **extra: bool) -> MethodSpec:
    return register_method_spec(
        MethodSpec(
            name=name,
            summary=summary,
            params=params,
            default_lr=1e-3,
            runtime="peftlab.methods.lora",
            search_space=LORA_SPACE,
            **extra,
        )
    )


LORA = _lora("lora", "low-rank adapters on attention projections (Hu et al., 2021)")
DORA = _lora("dora", "weight-decomposed low-rank adaptation (Liu et al., 2024)")
RSLORA = _lora("rslora", "LoRA with rank-stabilised alpha/sqrt(r) scaling (Kalajdzievski, 2023)")
# a 4-bit base is not sharded by FSDP here
QLORA = _lora(
    "qlora", "LoRA on a 4-bit NF4 base model via bitsandbytes (Dettmers et al., 2023)", QLoraParams, fsdp=False
)
