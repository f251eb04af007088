"""EVA: LoRA initialised from the activations' principal directions, ranks redistributed (Paischer et al., 2024).

Data-aware: a calibration pass over the run's first training batches (the registry's `calibrate`
hook) runs an incremental SVD of each target layer's inputs; A starts as the top right-singular
vectors and the rank budget (r per layer) goes where the explained variance is. B starts at zero,
so the base model is untouched and the adapter saves as is.
"""

from __future__ import annotations

from typing import Any

from peftlab.method_specs.eva import SPEC, EvaParams
from peftlab.methods.lora import lora_config
from peftlab.methods.registry import Method, ModelContext, register
from peftlab.methods.targets import targets_check

# peft cycles over the batches until every layer's SVD converges; a layer whose batches hold fewer
# token rows than the components it needs never does, so the pass is bounded
MAX_PASSES = 50


class NotConverged(RuntimeError):
    """EVA's incremental SVD did not converge within MAX_PASSES passes over the calibration batches."""


def _prepare(model: Any, params: EvaParams, ctx: ModelContext) -> Any:
    from peft import EvaConfig, get_peft_model

    # every non-padding token, not only the labelled ones: an sft answer is a few tokens per row (too
    # few rows for the SVD), a classifier's label is per row, and the layers see the prompt tokens too
    eva = EvaConfig(rho=params.rho, tau=params.tau, whiten=params.whiten, use_label_mask=False)
    return get_peft_model(model, lora_config(params, ctx, model, init_lora_weights="eva", eva_config=eva))


def _calibrate(model: Any, batches: list[dict[str, Any]], params: EvaParams, ctx: ModelContext) -> None:
    from peft import initialize_lora_eva_weights

    chosen = batches[: params.calibration_batches]
    calls = 0

    def forward(model: Any, inputs: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        if calls > MAX_PASSES * len(chosen):
            raise NotConverged(
                f"EVA's SVD did not converge in {MAX_PASSES} passes over {len(chosen)} batches; "
                "lower tau, or raise batch_size or calibration_batches"
            )
        return model(**inputs)

    initialize_lora_eva_weights(model, dataloader=chosen, forward_fn=forward, show_progress_bar=False)


register(Method(SPEC, prepare=_prepare, calibrate=_calibrate, check_model=targets_check("eva")))
