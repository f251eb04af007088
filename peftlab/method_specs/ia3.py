"""IA3: learned rescaling vectors on keys, values and feed-forward activations (Liu et al., 2022).

The declaration: hyperparameters, default lr and search space. The runtime (peft) is peftlab/methods/ia3.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.method_specs import MethodSpec, register_method_spec


@dataclass
class IA3Params:
    target_modules: list[str] | str | None = None  # None: peft's default for the architecture
    # the targets whose input is rescaled (the MLP down projections); None: found with the targets
    feedforward_modules: list[str] | str | None = None


SPEC = register_method_spec(
    MethodSpec(
        name="ia3",
        summary="learned activation rescaling vectors (Liu et al., 2022)",
        params=IA3Params,
        default_lr=5e-3,
        runtime="peftlab.methods.ia3",
        search_space={"lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}},
    )
)
