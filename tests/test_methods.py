"""Every registered method prepares a tiny BERT, trains two steps in the one loop, and changes only
the parameters it is meant to train."""

from __future__ import annotations

import re

import pytest
import torch

from peftlab.config import TrainConfig
from peftlab.methods import REGISTRY, ModelContext, get_method
from peftlab.runtime.measure import count_parameters
from peftlab.runtime.models import head_modules, load_classifier, load_tokenizer, resolve_model_source
from peftlab.runtime.train import TrainSpec, train
from peftlab.tasks.classification import collate, tokenize_split, train_batches

# What each method may change: its own modules plus the fresh classification head.
INTENDED = {
    "full": r".*",
    "lora": r"lora_|classifier",
    "dora": r"lora_|classifier",
    "rslora": r"lora_|classifier",
    "qlora": r"lora_|classifier",
    "adalora": r"lora_|classifier",
    "ia3": r"ia3_|classifier",
    "prompt_tuning": r"prompt_encoder|classifier",
    "prefix_tuning": r"prompt_encoder|classifier",
    "pissa": r"lora_|classifier",
    "olora": r"lora_|classifier",
    "eva": r"lora_|classifier",
    "lora_ga": r"lora_|classifier",
    "loraplus": r"lora_|classifier",
    "lorafa": r"lora_B|classifier",  # A stays frozen at its initialisation
    "vera": r"vera_lambda_|classifier",  # the shared random projections stay frozen
    "loha": r"hada_|classifier",
    "lokr": r"lokr_|classifier",
    "oft": r"oft_|classifier",
    "miss": r"miss_|classifier",
    "gralora": r"gralora_|classifier",
    "hira": r"hira_|classifier",
    "peft": r"lora_|classifier",  # `method: peft` with its default config class, LoraConfig
}
# EVA's incremental SVD on a tiny random model (nearly equal singular values) converges slowly at
# peft's tau = 0.99 (tens of passes, seconds each on a loaded CPU); the tests loosen it
TEST_PARAMS: dict[str, dict] = {"eva": {"tau": 0.5, "rho": 1.0}}


def yaml_params(name: str) -> str:
    """A method entry's extra YAML lines for TEST_PARAMS (indented as a `methods:` item's keys)."""
    return "".join(f"    {k}: {v}\n" for k, v in TEST_PARAMS.get(name, {}).items())


# methods whose saved adapter is not compared on a fresh base: a full fine-tune saves the whole
# model, and QLoRA trained on 4-bit weights that a full-precision reload does not have
NO_ROUND_TRIP = {"full", "qlora"}


def test_every_registered_method_has_an_expectation():
    assert {name for name, method in REGISTRY.items() if method.trains} == set(INTENDED)


def prepare(name: str, folder, steps: int = 2, batches: list | None = None):
    """The model as the recipe prepares it: load, `prepare`, and a method's calibration pass over `batches`."""
    method = get_method(name)
    params = method.params(**TEST_PARAMS.get(name, {}))
    source = resolve_model_source(str(folder))
    tokenizer = load_tokenizer(source)
    labels = ("negative", "positive")
    probe = load_classifier(source, labels)
    load_kwargs = method.load_kwargs(params, "cpu", head_modules(probe)) if method.load_kwargs else {}
    torch.manual_seed(0)
    model = load_classifier(source, labels, load_kwargs)
    ctx = ModelContext("SEQ_CLS", model.config.model_type, total_steps=steps, head_modules=head_modules(model))
    model = method.prepare(model, params, ctx)
    if method.calibrate is not None and batches is not None:
        method.calibrate(model, batches, params, ctx)
    return model, tokenizer


def loop_spec(name: str, cfg: TrainConfig, lr: float) -> TrainSpec:
    """The loop's spec as the recipe builds it: the run's optimiser spec and the method's hooks."""
    method = get_method(name)
    own = None
    if method.make_optimizer is not None:
        own = lambda model, optimizer: method.make_optimizer(model, method.params(), optimizer)  # noqa: E731
    return TrainSpec.of(cfg, cfg.optimizer(lr), "cpu", own_optimizer=own, on_step=method.on_step)


def assert_adapter_round_trips(name: str, model, load_base, inputs: dict, folder) -> None:
    """Saved as the recipe saves it and loaded onto a freshly loaded base, the adapter computes what the model did."""
    from peft import PeftModel

    method = get_method(name)
    if method.save_adapter is not None:
        method.save_adapter(model, folder)
    else:
        model.save_pretrained(folder, safe_serialization=True)
    loaded = PeftModel.from_pretrained(load_base(), str(folder)).eval()
    model.eval()
    with torch.no_grad():
        expected, got = model(**inputs).logits, loaded(**inputs).logits
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), f"{name}: the reloaded adapter computes otherwise"


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_two_steps_change_only_intended_parameters(name, tiny_bert, tiny_dataset, tmp_path):
    """…and the adapter saved after them reloads onto the original base and computes the same."""
    import pandas as pd

    tokenizer = load_tokenizer(resolve_model_source(str(tiny_bert)))
    frame = pd.read_csv(tiny_dataset / "train.csv")
    split = tokenize_split(frame["text"].tolist(), frame["label"].to_numpy(), tokenizer, 32)
    batches = train_batches(split, 8, 2, seed=0)
    model, _ = prepare(name, tiny_bert, batches=[collate(split, idx, tokenizer.pad_token_id) for idx in batches])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(steps=2, batch_size=8, warmup_ratio=0.0, scheduler="constant")
    outcome = train(model, batches, lambda idx: collate(split, idx, tokenizer.pad_token_id), loop_spec(name, cfg, 1e-2))
    assert outcome.steps_done == 2 and outcome.final_train_loss is not None
    assert torch.isfinite(torch.tensor(outcome.final_train_loss))

    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed, f"{name}: nothing changed"
    assert changed <= trainable, f"{name}: frozen parameters changed: {sorted(changed - trainable)[:5]}"
    unintended = {n for n in trainable if not re.search(INTENDED[name], n)}
    assert not unintended, f"{name}: unintended trainable parameters: {sorted(unintended)[:5]}"
    assert any("classifier" in n for n in changed), f"{name}: the task head did not train"
    if name != "full":
        own = {n for n in changed if "classifier" not in n}
        assert own, f"{name}: only the head changed, the method's own parameters did not"
    if name not in NO_ROUND_TRIP:
        source = resolve_model_source(str(tiny_bert))
        inputs = {k: v for k, v in collate(split, batches[0], tokenizer.pad_token_id).items() if k != "labels"}
        base = lambda: load_classifier(source, ("negative", "positive"))  # noqa: E731
        assert_adapter_round_trips(name, model, base, inputs, tmp_path / "adapter")


def test_qlora_layers_are_4bit_and_counted_unhalved(tiny_bert):
    import bitsandbytes as bnb

    qmodel, _ = prepare("qlora", tiny_bert)
    lmodel, _ = prepare("lora", tiny_bert)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in qmodel.modules())
    assert not any(isinstance(m, bnb.nn.Linear4bit) for n, m in qmodel.named_modules() if "classifier" in n)
    assert count_parameters(qmodel) == count_parameters(lmodel)


@pytest.mark.parametrize("name", sorted(set(INTENDED) - {"full", "qlora"}))
def test_parameter_counts_match_peft(name, tiny_bert):
    model, _ = prepare(name, tiny_bert)
    trainable, total = model.get_nb_trainable_parameters()
    counted = count_parameters(model)
    pruned = counted.get("adalora_pruned", 0)  # AdaLoRA: peft counts init_r ranks, peftlab its target_r budget
    assert (name == "adalora") == (pruned > 0)
    assert (counted["trainable"], counted["total"]) == (trainable - pruned, total - pruned)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "    config: VeraConfig\n    kwargs: {rr: 4}\n",
            r"methods\.peft\.kwargs\.rr: not a field of VeraConfig; allowed: r, ",
        ),
        (
            "    config: VeraConfg\n",
            r"methods\.peft\.config: unknown peft config class 'VeraConfg'; allowed: .*VeraConfig",
        ),
        (
            "    config: LoHaConfig\n    kwargs: {target_modules: [nope]}\n",
            r"kwargs\.target_modules: 'nope' matches no",
        ),
    ],
)
def test_the_generic_peft_entry_is_checked_against_the_config_class_before_any_run(
    entry, message, experiment_file, tmp_path
):
    from peftlab.config import load_experiment
    from peftlab.errors import ConfigError
    from peftlab.runtime.workspace import prepare_workspace

    path = experiment_file("  - method: peft\n" + entry)
    with pytest.raises(ConfigError, match=message) as err:
        prepare_workspace(load_experiment(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "results" / "tiny" / "runs").exists() or not any(
        (tmp_path / "results" / "tiny" / "runs").iterdir()
    )


def test_the_generic_peft_entry_trains_a_method_without_a_module_of_its_own(experiment_file):
    """C3A has no peftlab module: `method: peft` runs it by its config class, with a target set resolved."""
    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    path = experiment_file(
        "  - method: peft\n    config: C3AConfig\n    kwargs: {block_size: 16, target_modules: qv}\n", steps=2
    )
    experiment = load_experiment(path)
    (spec,) = make_plan(experiment)
    record = execute_run(prepare_workspace(experiment), spec, quiet=True).as_json()  # the record as written
    assert record["status"] == "ok", record.get("error")
    assert record["hyperparameters"]["resolved_target_modules"] == ["query", "value"]
    assert 0 < record["params"]["trainable"] < record["params"]["total"]


def test_a_method_that_does_not_support_the_task_is_a_config_error_before_any_run(experiment_file, monkeypatch):
    """`MethodSpec.tasks` is checked with the model fit (methods/fit.py): one line naming the method and the task."""
    import dataclasses

    from peftlab import method_specs
    from peftlab.config import load_experiment
    from peftlab.errors import ConfigError
    from peftlab.runtime.workspace import prepare_workspace

    lora = method_specs.get_method_spec("lora")
    monkeypatch.setitem(method_specs.REGISTRY, "lora", dataclasses.replace(lora, tasks=("sft",)))
    path = experiment_file()
    with pytest.raises(ConfigError, match=r"methods\.lora\.method: 'lora' does not support task 'classification'"):
        prepare_workspace(load_experiment(path))
