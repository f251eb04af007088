"""OFT: an orthogonal block-diagonal rotation of each weight's input space (Qiu et al., 2023).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/oft.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class OftParams:
    block_size: int = 32
    target_modules: list[str] | str | None = None  # a set (q, qv, qkv, all-linear), layer names, or null
    module_dropout: float = 0.0
    coft: bool = False  # constrained OFT: the rotation stays within eps of the identity
    eps: float = 6e-5
    block_share: bool = False  # one rotation block shared by all blocks of a layer

    def __post_init__(self) -> None:
        from peftlab.config.schema import check

        check(self.block_size >= 1, "block_size", f"got {self.block_size}, must be at least 1")


SPEC = register_method_spec(
    MethodSpec(
        name="oft",
        summary="orthogonal block-diagonal rotation of each weight (Qiu et al., 2023)",
        params=OftParams,
        default_lr=1e-3,
        runtime="peftlab.methods.oft",
        search_space={
            "block_size": {"type": "categorical", "choices": [8, 16, 32, 64]},
            "lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        },
    )
)
