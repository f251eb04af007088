"""AdaLoRA's trainable parameters are counted at its final budget (target_r ranks), not at init_r."""

from __future__ import annotations

from pathlib import Path

from peftlab.methods import ModelContext, get_method
from peftlab.runtime.measure import count_parameters
from peftlab.runtime.models import load_classifier, resolve_model_source


def _prepared(name: str, folder: Path, **params: object):
    method = get_method(name)
    model = load_classifier(resolve_model_source(str(folder)), ("negative", "positive"))
    ctx = ModelContext("SEQ_CLS", model.config.model_type, total_steps=20, head_modules=("classifier",))
    return method.prepare(model, method.params(**params), ctx)


def test_adalora_is_counted_at_target_r_like_a_lora_of_that_rank(tiny_bert: Path) -> None:
    lora = count_parameters(_prepared("lora", tiny_bert, r=8, target_modules=["query", "value"]))
    adalora = count_parameters(
        _prepared("adalora", tiny_bert, init_r=12, target_r=8, target_modules=["query", "value"])
    )
    matrices = 2 * 2  # query and value in each of the tiny BERT's 2 layers
    # the same A and B as LoRA r=8, plus AdaLoRA's 8 singular values per matrix
    assert adalora["trainable"] == lora["trainable"] + matrices * 8
    assert adalora["total"] == lora["total"] + matrices * 8 + matrices  # + AdaLoRA's frozen `ranknum` scalars
    hidden = 64
    assert adalora["adalora_pruned"] == matrices * (12 - 8) * (hidden + hidden + 1)
