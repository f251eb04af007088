"""Every module the checkpoint lacked is trained by every method, not only the head found by name.

A random, frozen `pre_classifier` or pooler under PEFT (while full fine-tuning trains it) is a
silent bias against PEFT. The tiny models are built from configs and saved without those
modules, so the real loading path reports them missing. (With peft 0.21 a `modules_to_save`
entry "classifier" also catches `pre_classifier`, by plain suffix match: by luck, not by design.)
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from peftlab.methods import REGISTRY, ModelContext, get_method
from peftlab.runtime.models import resolve_model_source
from peftlab.tasks.classification import TASK

LABELS = ("negative", "positive")


@pytest.fixture(scope="module")
def tiny_distilbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random DistilBERT encoder: its classifier has `pre_classifier` + `classifier`, both new."""
    from transformers import DistilBertConfig, DistilBertModel

    folder = tmp_path_factory.mktemp("tiny_distilbert")
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=64, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64)
    DistilBertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert_without_pooler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT saved without a pooler (as many encoder checkpoints are)."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("bert_no_pooler")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def prepared(name: str, folder: Path) -> torch.nn.Module:
    """The model as the runner prepares it: load (quantised where the method says), then `method.prepare`."""
    method = get_method(name)
    params = method.params()
    source = resolve_model_source(str(folder))
    data = SimpleNamespace(label_names=LABELS)
    keep = TASK.unquantized_modules(source, data) if method.load_kwargs else ()
    load_kwargs = method.load_kwargs(params, "cpu", keep) if method.load_kwargs else {}
    model = TASK.load_model(source, data, load_kwargs, None)
    ctx = ModelContext("SEQ_CLS", model.config.model_type, total_steps=4, head_modules=TASK.head_modules(model))
    return method.prepare(model, params, ctx)


def test_distilbert_pre_classifier_counts_as_fresh(tiny_distilbert: Path) -> None:
    model = TASK.load_model(resolve_model_source(str(tiny_distilbert)), SimpleNamespace(label_names=LABELS), {}, None)
    assert TASK.head_modules(model) == ("classifier", "pre_classifier")


def test_a_missing_pooler_is_fresh_as_a_whole_module(bert_without_pooler: Path) -> None:
    model = TASK.load_model(
        resolve_model_source(str(bert_without_pooler)), SimpleNamespace(label_names=LABELS), {}, None
    )
    assert TASK.head_modules(model) == ("bert.pooler", "classifier")


TRAINING_METHODS = sorted(name for name, method in REGISTRY.items() if method.trains)


@pytest.mark.parametrize("name", TRAINING_METHODS)
def test_every_method_trains_a_pooler_the_checkpoint_lacked(name: str, bert_without_pooler: Path) -> None:
    model = prepared(name, bert_without_pooler)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for module in ("pooler.", "classifier."):
        assert any(module in n for n in trainable), f"{name}: the fresh {module.rstrip('.')} is frozen"
