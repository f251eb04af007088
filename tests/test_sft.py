"""Task `sft` on a tiny random Llama shaped like SmolLM2: chat formatting, completion-only loss,
every method training on a causal LM, QLoRA in 4 bit, and the generative evaluation in records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from peftlab.config import TrainConfig
from peftlab.methods import REGISTRY, ModelContext, get_method
from peftlab.runtime.measure import count_parameters
from peftlab.runtime.models import load_tokenizer, resolve_model_source
from peftlab.runtime.train import train
from peftlab.tasks.batching import train_batches
from peftlab.tasks.sft import IGNORE, TASK, collate, label_of, normalize, tokenize_conversations

# What each method may change on a causal LM (no fresh head: the LM head is pretrained and tied).
INTENDED = {
    "full": r".*",
    "lora": r"lora_",
    "dora": r"lora_",
    "rslora": r"lora_",
    "qlora": r"lora_",
    "adalora": r"lora_",
    "ia3": r"ia3_",
    "prompt_tuning": r"prompt_encoder",
    "prefix_tuning": r"prompt_encoder",
    "pissa": r"lora_",
    "olora": r"lora_",
    "eva": r"lora_",
    "lora_ga": r"lora_",
    "loraplus": r"lora_",
    "lorafa": r"lora_B",
    "vera": r"vera_lambda_",
    "loha": r"hada_",
    "lokr": r"lokr_",
    "oft": r"oft_",
    "miss": r"miss_",
    "gralora": r"gralora_",
    "hira": r"hira_",
    "peft": r"lora_",
}
CONVERSATIONS = [
    ([{"role": "user", "content": "review : the film was good . positive or negative ?"}], "positive"),
    ([{"role": "user", "content": "review : dull plot"}], "negative"),
    ([{"role": "system", "content": "answer with one word"}, {"role": "user", "content": "it was bad"}], "negative"),
]


def test_every_training_method_has_an_expectation():
    assert set(INTENDED) == {name for name, m in REGISTRY.items() if m.trains}


def test_chat_formatting_masks_the_prompt_out_of_the_loss(tiny_llama):
    tokenizer = load_tokenizer(resolve_model_source(str(tiny_llama)))
    split = tokenize_conversations(CONVERSATIONS, tokenizer, max_length=64)
    batch = collate(split, list(range(len(split))), tokenizer.pad_token_id)
    for row, (messages, answer) in enumerate(CONVERSATIONS):
        ids, n_prompt = split.input_ids[row], split.prompt_lengths[row]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert ids[:n_prompt] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
        labels = batch["labels"][row]
        assert (labels[:n_prompt] == IGNORE).all(), "a prompt token carries loss"
        assert (labels[len(ids) :] == IGNORE).all(), "a padding token carries loss"
        trained = labels[n_prompt : len(ids)].tolist()
        assert trained == ids[n_prompt:] and IGNORE not in trained
        assert tokenizer.decode(trained, skip_special_tokens=True).strip() == answer
        assert tokenizer.eos_token_id in trained, "the end-of-turn token is not learned"
    assert (batch["attention_mask"].sum(1) == torch.tensor(split.lengths)).all()


def test_over_long_rows_keep_their_answer(tiny_llama):
    tokenizer = load_tokenizer(resolve_model_source(str(tiny_llama)))
    long = [([{"role": "user", "content": "good " * 100}], "positive")]
    split = tokenize_conversations(long, tokenizer, max_length=16)
    assert len(split.input_ids[0]) == 16
    answer = split.input_ids[0][split.prompt_lengths[0] :]
    assert tokenizer.decode(answer, skip_special_tokens=True).strip() == "positive"


def test_answers_are_normalised_and_parsed_as_labels():
    assert normalize("  Positive. ") == "positive"
    assert label_of("Negative!", ("negative", "positive")) == (0, 0)
    assert label_of("The review is positive.", ("negative", "positive")) == (-1, 1)
    assert label_of("positive or negative", ("negative", "positive")) == (-1, -1)


def prepare(name: str, folder, steps: int = 2, batches: list | None = None):
    """The causal LM as the recipe prepares it: load, `prepare`, and a method's calibration pass over `batches`."""
    from tests.test_methods import TEST_PARAMS

    method = get_method(name)
    params = method.params(**TEST_PARAMS.get(name, {}))
    source = resolve_model_source(str(folder))
    tokenizer = load_tokenizer(source)
    keep = TASK.unquantized_modules(source, None)
    load_kwargs = method.load_kwargs(params, "cpu", keep) if method.load_kwargs else {}
    torch.manual_seed(0)
    model = TASK.load_model(source, None, load_kwargs, tokenizer.pad_token_id)
    ctx = ModelContext("CAUSAL_LM", model.config.model_type, total_steps=steps, head_modules=TASK.head_modules(model))
    model = method.prepare(model, params, ctx)
    if method.calibrate is not None and batches is not None:
        method.calibrate(model, batches, params, ctx)
    return model, tokenizer


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_two_steps_on_a_causal_lm_change_only_intended_parameters(name, tiny_llama, tmp_path):
    """…and the adapter saved after them reloads onto the original base and computes the same."""
    from tests.test_methods import NO_ROUND_TRIP, assert_adapter_round_trips, loop_spec

    source = resolve_model_source(str(tiny_llama))
    tokenizer = load_tokenizer(source)
    split = tokenize_conversations(CONVERSATIONS * 4, tokenizer, max_length=64)
    batches = train_batches(split, 4, 2, seed=0)
    model, _ = prepare(name, tiny_llama, batches=[collate(split, idx, tokenizer.pad_token_id) for idx in batches])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(steps=2, batch_size=4, warmup_ratio=0.0, scheduler="constant")
    outcome = train(model, batches, lambda idx: collate(split, idx, tokenizer.pad_token_id), loop_spec(name, cfg, 1e-2))
    assert outcome.steps_done == 2 and torch.isfinite(torch.tensor(outcome.final_train_loss))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed, f"{name}: nothing changed"
    assert changed <= trainable, f"{name}: frozen parameters changed: {sorted(changed - trainable)[:5]}"
    unintended = {n for n in trainable if not re.search(INTENDED[name], n)}
    assert not unintended, f"{name}: unintended trainable parameters: {sorted(unintended)[:5]}"
    if name not in NO_ROUND_TRIP:
        inputs = {k: v for k, v in collate(split, batches[0], tokenizer.pad_token_id).items() if k != "labels"}
        base = lambda: TASK.load_model(source, None, {}, tokenizer.pad_token_id)  # noqa: E731
        assert_adapter_round_trips(name, model, base, inputs, tmp_path / "adapter")


def test_qlora_quantises_the_blocks_but_not_the_tied_lm_head(tiny_llama):
    import bitsandbytes as bnb

    qmodel, _ = prepare("qlora", tiny_llama)
    lmodel, _ = prepare("lora", tiny_llama)
    four_bit = {n for n, m in qmodel.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert any("q_proj" in n for n in four_bit) and any("down_proj" in n for n in four_bit)
    assert not any("lm_head" in n for n in four_bit)
    assert count_parameters(qmodel) == count_parameters(lmodel)


def test_zero_shot_trains_nothing(tiny_llama):
    model, _ = prepare("zero_shot", tiny_llama)
    assert not any(p.requires_grad for p in model.parameters())


def test_sft_records_hold_generative_scores_samples_and_adapters(sft_results):
    files = (sft_results / "runs").glob("*.json")
    records = {rec["method"]: rec for rec in map(json.loads, map(Path.read_text, files))}
    assert set(records) == {"zero_shot", "lora", "prompt_tuning"}
    for rec in records.values():
        assert rec["status"] == "ok", rec.get("error")
        test = rec["metrics"]["test"]
        assert 0.0 <= test["accuracy"] <= 1.0 and 0.0 <= test["f1_macro"] <= 1.0
        assert test["perplexity"] > 1.0 and test["n"] == 12
        samples = rec["samples"]["test"]
        assert len(samples) == 8 and {"prompt", "expected", "generated"} <= set(samples[0])
        assert rec["samples"]["test"][0]["expected"] in ("0", "1")
        assert rec["data"]["kind"] == "labels" and "{text}" in rec["data"]["instruction"]
    zero = records["zero_shot"]
    assert zero["params"]["trainable"] == 0 and zero["time"]["steps"] == 0 and zero["metrics"]["curve"] == []
    assert zero["size"]["saved_bytes"] == 0 and "artifacts" not in zero
    assert zero["metrics"]["validation"]["n"] == 8
    lora = records["lora"]
    assert [p["step"] for p in lora["metrics"]["curve"]] == [2]
    adapter = sft_results / "adapters" / lora["run_id"]
    assert lora["artifacts"]["adapter"] == str(adapter) and (adapter / "adapter_config.json").is_file()
    assert lora["size"]["saved_bytes"] == (adapter / "adapter_model.safetensors").stat().st_size
    summary = (sft_results / "summary.csv").read_text()
    assert "zero_shot" in summary and len(summary.strip().splitlines()) == 4


def test_conversational_jsonl_rows_become_prompt_and_answer(tmp_path, tiny_llama):
    from peftlab.data import load_instruction_data

    rows = [{"prompt": f"review : the film was {w}", "completion": w} for w in ("good", "bad") * 10]
    rows += [
        {"messages": [{"role": "user", "content": "it was dull"}, {"role": "assistant", "content": "negative"}]}
    ] * 10
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_instruction_data(str(path))
    assert data.kind == "conversations" and data.label_names == () and sum(data.sizes().values()) == 30
    assert data.fingerprint == load_instruction_data(str(path)).fingerprint
    conversations = [data.conversation(t) for t in data.train["text"]]
    assert all(m[-1]["role"] == "user" and a in ("good", "bad", "negative") for m, a in conversations)
    tokenizer = load_tokenizer(resolve_model_source(str(tiny_llama)))
    split = tokenize_conversations(conversations, tokenizer, max_length=32)
    assert all(0 < p < len(ids) for p, ids in zip(split.prompt_lengths, split.input_ids, strict=True))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"messages": [{"role": "user", "content": "hi"}]}], "row 0: the last message must be the assistant's"),
        ([{"prompt": "hi", "completion": " "}], "row 0: empty completion"),
        ([{"messages": "hello", "x": 1}], "row 0: expected a string or a non-empty list"),
    ],
)
def test_bad_conversation_rows_are_one_line_errors(tmp_path, rows, message):
    from peftlab.data import DataSourceError, load_instruction_data

    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows * 12) + "\n")
    with pytest.raises(DataSourceError) as err:
        load_instruction_data(str(path))
    assert message in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_bad_instruction_template_fails_config_validation(experiment_file):
    import subprocess
    import sys

    path = experiment_file(extra="task: sft\n")
    text = path.read_text().replace("  max_length: 32\n", '  max_length: 32\n  instruction: "Classify {review}"\n')
    path.write_text(text)
    command = [sys.executable, "-m", "peftlab.run", str(path), "--dry-run"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "data.instruction" in line and "{text}" in line and "{labels}" in line


def test_a_gguf_builtin_without_gguf_installed_is_a_one_line_error(monkeypatch, tmp_path):
    import importlib.util

    from peftlab.errors import ModelSourceError
    from peftlab.runtime import models

    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None if name == "gguf" else real(name))
    monkeypatch.setenv("PEFTLAB_CACHE", str(tmp_path))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ModelSourceError, match="needs the 'gguf' package"):
        models.ensure_converted("smollm2-135m", models.BUILTIN_MODELS["smollm2-135m"], gguf)
    with pytest.raises(ModelSourceError, match="is missing; reinstall"):
        models.ensure_converted("smollm2-135m", models.BUILTIN_MODELS["smollm2-135m"], tmp_path / "absent.gguf")
    assert not list((tmp_path).glob("models/*"))


def test_sft_predictions_keep_the_generated_answers_with_ids_shared_by_every_method(sft_results):
    from peftlab.records.predictions import read_predictions

    records = [json.loads(f.read_text()) for f in (sft_results / "runs").glob("*.json")]
    tests = {}
    for rec in records:
        read = read_predictions(sft_results / "runs", rec)
        assert set(read) == {"validation", "test"} and len(read["validation"].ids) == 8
        test = read["test"]
        assert test.gold[: len(rec["samples"]["test"])] == [s["expected"] for s in rec["samples"]["test"]]
        assert test.prediction[0] == rec["samples"]["test"][0]["generated"]  # the generated answer itself
        assert test.correct.mean() == pytest.approx(rec["metrics"]["test"]["accuracy"])
        tests[rec["method"]] = list(test.ids)
    assert len({tuple(ids) for ids in tests.values()}) == 1 and len(set(tests["lora"])) == 12
