"""Every registered method on every architecture the seeds fine-tune, for both tasks.

The tutorials this project grew from fine-tune BERT, GPT-2, Phi-3 and Llama; a name table of
target modules broke GPT-2 (Conv1D, fused `c_attn`) and Phi-3 (fused `qkv_proj`, no peft
default). Here tiny random models of BERT, RoBERTa, DistilBERT (classification) and GPT-2, Llama,
Phi-3 (classification as sequence classifiers, and sft as causal LMs) are built from their
config classes, and every method runs 2 steps on each. A cell either trains (status ok) or is a
one-line config error before training; nothing fails inside a run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from peftlab.methods import REGISTRY

ENCODERS = ("bert", "roberta", "distilbert")
DECODERS = ("gpt2", "llama", "phi3")
# the matrix's fast part: one method per architecture and task (the fused/defaultless cases
# where they exist); the rest is marked slow
FAST = {("gpt2", "lora"), ("phi3", "lora"), ("phi3", "ia3"), ("distilbert", "lora"), ("roberta", "ia3")}
FAST |= {("bert", "adalora"), ("llama", "dora"), ("gpt2", "ia3"), ("distilbert", "prefix_tuning")}
# the methods registered before the method zoo run on every architecture; each later one (PiSSA,
# EVA, VeRA, ...) on GPT-2's sft cell only: its Conv1D layers and fused c_attn are where adapters
# break (the classification cell adapts the same layers), and BERT (tests/test_methods.py), Llama
# (tests/test_sft.py) and MiniLM (experiments/methods_zoo.yaml) cover the rest, which keeps the
# matrix within CI's time
MATRIX_METHODS = {"full", "lora", "dora", "rslora", "qlora", "adalora", "ia3", "prompt_tuning", "prefix_tuning"}
MATRIX_METHODS |= {"zero_shot"}
# (EVA's incremental SVD over GPT-2 classification's 2-row batches of short texts here does not
# converge: the run fails with EVA's NotConverged, which names the fix, larger batches or lower tau)
ZOO_CELLS = {("gpt2", "sft")}
# (arch, method, task) -> what the one-line config error says
EXPECTED_CONFIG_ERRORS = {
    ("distilbert", "prefix_tuning", "classification"): "failed a one-token forward pass.*use prompt_tuning"
}
# peft 0.21 has no Conv1D layer for these (and OLoRA's initialisation ignores Conv1D's transposed layout)
for _method in ("loha", "lokr", "oft", "miss"):
    EXPECTED_CONFIG_ERRORS[("gpt2", _method, "sft")] = rf"methods\.{_method}\.method: {_method} has no peft layer"
EXPECTED_CONFIG_ERRORS[("gpt2", "olora", "sft")] = r"methods\.olora\.method: olora initialises from W"


def _encoder_config(arch: str, vocab_size: int):
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    common = {"vocab_size": vocab_size, "max_position_embeddings": 128}
    if arch == "bert":
        return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **common)
    if arch == "roberta":  # pad 0 is the BERT tokenizer's [PAD]; positions start after it
        return RobertaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, pad_token_id=0, **common
        )
    return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, pad_token_id=0, **common)


def _decoder_config(arch: str, tokenizer):
    from transformers import GPT2Config, LlamaConfig, Phi3Config

    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    if arch == "gpt2":
        return GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=128, **ids)
    shape = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 128,
    }
    if arch == "llama":
        return LlamaConfig(tie_word_embeddings=True, **shape, **ids)
    return Phi3Config(pad_token_id=tokenizer.eos_token_id, **shape, **ids)


@pytest.fixture(scope="module")
def arch_models(tmp_path_factory, tiny_bert: Path, tiny_llama: Path) -> dict[str, Path]:
    """arch → a saved tiny model folder (with the tokenizer the conftest fixtures use)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    folders = {}
    encoder_tok = AutoTokenizer.from_pretrained(tiny_bert)
    decoder_tok = AutoTokenizer.from_pretrained(tiny_llama)
    for arch in (*ENCODERS, *DECODERS):
        folder = tmp_path_factory.mktemp(f"tiny_{arch}")
        torch.manual_seed(0)
        if arch in ENCODERS:
            AutoModel.from_config(_encoder_config(arch, len(encoder_tok))).save_pretrained(folder)
            encoder_tok.save_pretrained(folder)
        else:
            AutoModelForCausalLM.from_config(_decoder_config(arch, decoder_tok)).save_pretrained(folder)
            decoder_tok.save_pretrained(folder)
        folders[arch] = folder
    return folders


def _cells() -> list:
    out = []
    for arch in (*ENCODERS, *DECODERS):
        for task in ("classification",) if arch in ENCODERS else ("classification", "sft"):
            for method in sorted(REGISTRY):
                if method not in MATRIX_METHODS and (arch, task) not in ZOO_CELLS:
                    continue
                marks = () if (arch, method) in FAST else (pytest.mark.slow,)
                out.append(pytest.param(arch, task, method, marks=marks, id=f"{arch}-{task}-{method}"))
    return out


def _experiment(folder: Path, model: Path, data: Path, task: str, method: str) -> Path:
    from tests.test_methods import yaml_params

    lr = "1.0e-3" if method == "full" else "1.0e-2"
    path = folder / "exp.yaml"
    path.write_text(
        f"name: arch\nmodel: {model}\ntask: {task}\ndata:\n  source: {data}\n  max_length: 32\n"
        "  train_limit: 16\n  validation_limit: 4\n  test_limit: 4\n"
        "train:\n  steps: 2\n  batch_size: 2\n  eval_every: 2\n  eval_batch_size: 4\n  warmup_ratio: 0.0\n"
        f"seeds: [0]\noutput_dir: {folder / 'results'}\nmethods:\n  - method: {method}\n    lr: {lr}\n"
        + yaml_params(method)
    )
    return path


@pytest.mark.parametrize(("arch", "task", "method"), _cells())
def test_every_method_trains_or_is_a_config_error_on_every_architecture(
    arch, task, method, arch_models, tiny_dataset, tmp_path
):
    from peftlab.config import load_experiment
    from peftlab.errors import ConfigError
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    experiment = load_experiment(_experiment(tmp_path, arch_models[arch], tiny_dataset, task, method))
    expected = EXPECTED_CONFIG_ERRORS.get((arch, method, task))
    if expected is not None:
        with pytest.raises(ConfigError, match=expected) as err:
            prepare_workspace(experiment)
        assert "\n" not in str(err.value)
        return
    ws = prepare_workspace(experiment)
    (spec,) = make_plan(experiment)
    record = execute_run(ws, spec, quiet=True).as_json()  # the record as written
    assert record["status"] == "ok", f"{arch}/{task}/{method}: {record.get('error')}\n{record.get('traceback', '')}"
    if REGISTRY[method].trains:
        assert record["time"]["steps"] == 2
    shutil.rmtree(tmp_path / "results", ignore_errors=True)


# ---------------------------------------------------------------- resolution on weightless skeletons

# what each set resolves to, per architecture (None: peft's own default for the model type)
RESOLVED = {
    "bert": {"q": ["query"], "qv": ["query", "value"], "qkv": ["key", "query", "value"], None: None},
    "roberta": {"q": ["query"], "qv": ["query", "value"], "qkv": ["key", "query", "value"], None: None},
    "distilbert": {
        "q": ["q_lin"],
        "qv": ["q_lin", "v_lin"],
        "qkv": ["k_lin", "q_lin", "v_lin"],
        None: ["q_lin", "v_lin"],
    },
    "gpt2": {"q": ["c_attn"], "qv": ["c_attn"], "qkv": ["c_attn"], None: None},
    "llama": {"q": ["q_proj"], "qv": ["q_proj", "v_proj"], "qkv": ["k_proj", "q_proj", "v_proj"], None: None},
    "phi3": {"q": ["qkv_proj"], "qv": ["qkv_proj"], "qkv": ["qkv_proj"], None: ["qkv_proj"]},
}
# every linear layer outside the task head, by the shortest names that say so (RoBERTa's head has
# a `dense` too, so its encoder layers need two name parts; DistilBERT's pre_classifier is head)
ALL_LINEAR = {
    "bert": ["dense", "key", "query", "value"],
    "roberta": ["intermediate.dense", "output.dense", "self.key", "self.query", "self.value"],
    "distilbert": ["k_lin", "lin1", "lin2", "out_lin", "q_lin", "v_lin"],
    "gpt2": ["c_attn", "c_fc", "c_proj"],
    "llama": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
    "phi3": ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"],
}
IA3_NULL = {  # where peft has no IA3 default: k, v (or the fused projection) and the MLP down projection
    "distilbert": (["k_lin", "lin2", "v_lin"], ["lin2"]),
    "phi3": (["down_proj", "qkv_proj"], ["down_proj"]),
}
IA3_ALL_LINEAR_FF = {"distilbert": ["lin2"], "gpt2": ["mlp.c_proj"], "llama": ["down_proj"], "phi3": ["down_proj"]}


@pytest.fixture(scope="module")
def skeletons(arch_models) -> dict[str, object]:
    from peftlab.methods.fit import meta_skeleton

    return {arch: meta_skeleton(str(folder), "classification") for arch, folder in arch_models.items()}


@pytest.mark.parametrize("arch", [*ENCODERS, *DECODERS])
def test_target_sets_resolve_by_inspecting_each_architecture(arch, skeletons):
    from peftlab.methods.targets import resolve_for_method

    model = skeletons[arch]
    for spec, expected in RESOLVED[arch].items():
        resolved = resolve_for_method("lora", {"target_modules": spec}, model)
        assert resolved.target_modules == expected, (arch, spec)
        fused = bool(expected) and expected[0] in ("c_attn", "qkv_proj")
        assert resolved.fused == ((expected[0],) if fused else ()), (arch, spec)
    assert resolve_for_method("lora", {"target_modules": "all-linear"}, model).target_modules == ALL_LINEAR[arch]
    ia3 = resolve_for_method("ia3", {"target_modules": None, "feedforward_modules": None}, model)
    if arch in IA3_NULL:
        assert (ia3.target_modules, ia3.feedforward_modules) == IA3_NULL[arch]
    else:
        assert ia3.target_modules is None  # peft's IA3 default, which names its feedforward modules too
    if arch in IA3_ALL_LINEAR_FF:
        all_linear = resolve_for_method("ia3", {"target_modules": "all-linear", "feedforward_modules": None}, model)
        assert all_linear.feedforward_modules == IA3_ALL_LINEAR_FF[arch]


def test_a_name_that_matches_nothing_says_what_the_model_has(skeletons):
    from peftlab.methods.fit import Unfit
    from peftlab.methods.targets import resolve_for_method

    with pytest.raises(
        Unfit, match=r"'query_key_value' matches no layer; the model's linear layers: c_attn, c_proj, c_fc"
    ):
        resolve_for_method("lora", {"target_modules": ["query_key_value"]}, skeletons["gpt2"])
    with pytest.raises(Unfit, match=r"'q_proj', 'k_proj' match no layer.*: o_proj, qkv_proj, gate_up_proj, down_proj"):
        resolve_for_method("lora", {"target_modules": ["q_proj", "k_proj", "o_proj"]}, skeletons["phi3"])
    with pytest.raises(Unfit, match="'down_proj' must also be among target_modules") as err:
        resolve_for_method("ia3", {"target_modules": "qv", "feedforward_modules": ["down_proj"]}, skeletons["llama"])
    assert err.value.key == "feedforward_modules"


@pytest.mark.parametrize(
    ("arch", "spec", "fused"), [("gpt2", "qv", ["c_attn"]), ("phi3", None, ["qkv_proj"]), ("llama", "qv", None)]
)
def test_the_record_says_when_a_fused_projection_was_adapted(arch, spec, fused, arch_models, tiny_dataset, tmp_path):
    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    path = _experiment(tmp_path, arch_models[arch], tiny_dataset, "sft", "lora")
    path.write_text(path.read_text() + f"    target_modules: {'null' if spec is None else spec}\n")
    experiment = load_experiment(path)
    (spec_run,) = make_plan(experiment)
    record = execute_run(prepare_workspace(experiment), spec_run, quiet=True).as_json()  # the record as written
    assert record["status"] == "ok", record.get("error")
    hyper = record["hyperparameters"]
    assert hyper["fused_projections"] == fused
    assert ("target_note" in hyper) == bool(fused)
    if fused:
        assert hyper["resolved_target_modules"] == fused and "q, k and v in one layer" in hyper["target_note"]


ALL_LINEAR_FAST = {("distilbert", "lora"), ("roberta", "lora"), ("gpt2", "ia3")}


@pytest.mark.parametrize(
    ("arch", "method"),
    [
        pytest.param(a, m, marks=() if (a, m) in ALL_LINEAR_FAST else (pytest.mark.slow,), id=f"{a}-{m}")
        for a in (*ENCODERS, *DECODERS)
        for m in ("lora", "ia3")
    ],
)
def test_all_linear_trains_and_leaves_the_fresh_head_to_modules_to_save(
    arch, method, arch_models, tiny_dataset, tmp_path
):
    """peft's own all-linear reached into RoBERTa's and DistilBERT's fresh heads (which are trained whole)."""
    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    path = _experiment(tmp_path, arch_models[arch], tiny_dataset, "classification", method)
    path.write_text(path.read_text() + "    target_modules: all-linear\n")
    experiment = load_experiment(path)
    (spec,) = make_plan(experiment)
    record = execute_run(prepare_workspace(experiment), spec, quiet=True).as_json()  # the record as written
    assert record["status"] == "ok", f"{arch}/{method}: {record.get('error')}\n{record.get('traceback', '')}"
    resolved = record["hyperparameters"]["resolved_target_modules"]
    if method == "lora":
        assert resolved == ALL_LINEAR[arch]
    else:  # IA3 adds its feedforward names (spelled as peft compares them) to the same layers
        assert set(ALL_LINEAR[arch]) <= set(resolved)
