"""Forgetting probes on tiny random models: zero training forgets exactly 0, "before" is the base
model even for prompt/prefix tuning, probes are deterministic, and a harsher fine-tune forgets more.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import write_label_splits

from peftlab.config import load_experiment
from peftlab.errors import ConfigError

TOPIC = {0: ["film", "movie"], 1: ["story", "plot"]}
PLAIN = ["the", "was", "is", "a", "very", "and", "but", "it", "acting", "good", "bad", "dull", "funny"]


@pytest.fixture(scope="session")
def topic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second task on the tiny vocabulary: which topic word (film/movie vs story/plot) a sentence has."""

    def sentence(rng: random.Random, label: int) -> str:
        words = [rng.choice(PLAIN) for _ in range(rng.randint(3, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(TOPIC[label]))
        return " ".join(words)

    sizes = {"train": 160, "validation": 32, "test": 96}
    return write_label_splits(tmp_path_factory.mktemp("topic_data"), sizes, sentence, seed=1)


def _stage_settings(topic: Path, indent: str) -> str:
    keys = {"source": topic, "max_length": 32, "steps": 6, "lr": "1.0e-3", "batch_size": 8}
    return "".join(f"{indent}{k}: {v}\n" for k, v in keys.items())


def _probes(topic: Path, previous: bool = True) -> str:
    """The old spelling: the stage's settings on the previous_task entry."""
    text = f"forgetting:\n  - probe: linear_probe\n    source: {topic}\n    max_length: 32\n"
    if previous:
        text += "  - probe: previous_task\n" + _stage_settings(topic, "    ")
    return text


def _staged(topic: Path, probes: str = "  - probe: linear_probe\n    source: {topic}\n    max_length: 32\n") -> str:
    """The new spelling: an `init_from:` stage, and measure-only probes (`probes` may name previous_task)."""
    text = "init_from:\n" + _stage_settings(topic, "  ")
    return text + ("forgetting:\n" + probes.format(topic=topic) if probes else "")


# ---------------------------------------------------------------- config


def test_config_errors_are_one_line_and_name_the_allowed_probes(experiment_file, topic_dataset):
    path = experiment_file(extra="forgetting:\n  - probe: linear_prob\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    message = str(err.value)
    assert "forgetting[0].probe" in message and "allowed: linear_probe, lm_eval, lm_loss, previous_task" in message
    assert "did you mean 'linear_probe'" in message and "\n" not in message

    path = experiment_file(extra="forgetting:\n  - probe: lm_loss\n")
    with pytest.raises(ConfigError, match=r"probe 'lm_loss' measures sft or grpo models.*task is 'classification'"):
        load_experiment(path)

    path = experiment_file(extra="forgetting:\n  - probe: linear_probe\n    train_limt: 5\n")
    with pytest.raises(ConfigError, match=r"forgetting\[0\]\.train_limt: unknown key.*did you mean 'train_limit'"):
        load_experiment(path)

    experiment = load_experiment(experiment_file(extra=_probes(topic_dataset)), ["forgetting.linear_probe.C=0.5"])
    assert [p.probe for p in experiment.forgetting] == ["linear_probe", "previous_task"]
    assert experiment.forgetting[0].params.C == 0.5


def test_run_ids_change_only_when_the_experiment_has_probes(experiment_file, topic_dataset):
    from peftlab.planners.grid import make_plan

    plain = make_plan(load_experiment(experiment_file()))[0].run_id
    again = make_plan(load_experiment(experiment_file(extra="forgetting: []\n")))[0].run_id
    probed = make_plan(load_experiment(experiment_file(extra=_probes(topic_dataset))))[0].run_id
    assert plain == again != probed


def test_old_and_new_spelling_of_the_stage_give_the_same_experiment_and_run_ids(experiment_file, topic_dataset):
    from peftlab.config import computed_config
    from peftlab.planners.grid import make_plan

    old = load_experiment(experiment_file(extra=_probes(topic_dataset)))
    both = "  - probe: linear_probe\n    source: {topic}\n    max_length: 32\n  - probe: previous_task\n"
    new = load_experiment(experiment_file(extra=_staged(topic_dataset, both)))
    assert old.init_from == new.init_from and old.init_from.steps == 6
    assert [(p.probe, p.params) for p in old.forgetting] == [(p.probe, p.params) for p in new.forgetting]
    assert new.forgetting[1].params is new.init_from  # previous_task measures the stage's own task A
    assert computed_config(old) == computed_config(new)
    assert [s.run_id for s in make_plan(old)] == [s.run_id for s in make_plan(new)]
    # a stage nobody measures still changes what the runs compute, so it names them too
    unmeasured = make_plan(load_experiment(experiment_file(extra=_staged(topic_dataset, ""))))
    plain = make_plan(load_experiment(experiment_file()))
    assert unmeasured[0].run_id != plain[0].run_id
    overridden = load_experiment(experiment_file(extra=_staged(topic_dataset, both)), ["init_from.steps=9"])
    assert overridden.init_from.steps == 9 and make_plan(overridden)[0].run_id != make_plan(new)[0].run_id


def test_previous_task_without_a_stage_is_a_one_line_error_exit_2(experiment_file, topic_dataset, capsys):
    from peftlab.cli.run import main

    path = experiment_file(extra="forgetting:\n  - probe: previous_task\n")
    with pytest.raises(ConfigError, match=r"forgetting\[0\]\.probe: previous_task measures task A of an init_from"):
        load_experiment(path)
    assert main([str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "init_from" in err and "Traceback" not in err

    both = experiment_file(extra=_staged(topic_dataset, "  - probe: previous_task\n    steps: 3\n"))
    with pytest.raises(ConfigError, match=r"forgetting\[0\]: previous_task's stage settings are given here and under"):
        load_experiment(both)
    with pytest.raises(ConfigError, match=r"init_from\.stpes: unknown key.*did you mean 'steps'"):
        load_experiment(experiment_file(extra="init_from:\n  stpes: 3\n"))
    with pytest.raises(ConfigError, match=r"init_from\.lr: got 0.0, must be positive"):
        load_experiment(experiment_file(extra="init_from:\n  lr: 0.0\n"))


def test_a_stage_needs_a_classification_experiment(tiny_llama, tmp_path):
    path = tmp_path / "sft.yaml"
    path.write_text(f"name: s\nmodel: {tiny_llama}\ntask: sft\ninit_from:\n  steps: 3\nmethods: [lora]\n")
    with pytest.raises(ConfigError, match=r"init_from: the stage fine-tunes a sequence classifier.*task is 'sft'"):
        load_experiment(path)


# ---------------------------------------------------------------- end to end, in process


def _run(experiment_file, topic: Path, methods: str, *, steps: int, extra: str | None = None) -> list[dict]:
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    experiment = load_experiment(experiment_file(methods, steps=steps, extra=extra or _probes(topic)))
    ws = prepare_workspace(experiment)
    return [execute_run(ws, spec, quiet=True).as_json() for spec in make_plan(experiment)]


def test_a_run_whose_weights_do_not_move_forgets_exactly_zero(experiment_file, topic_dataset):
    # lr 1e-30: AdamW moves each weight by ~1e-30, far below float32 resolution of the weights and
    # activations, so the fully fine-tuned model computes exactly what the base model computes
    (record,) = _run(experiment_file, topic_dataset, "  - method: full\n    lr: 1.0e-30\n", steps=1)
    assert record["status"] == "ok", record.get("traceback")
    assert set(record["forgetting"]) == {"linear_probe", "previous_task"}
    for probe, block in record["forgetting"].items():
        assert block["delta"] == 0.0, (probe, block)
        assert 0.0 < block["before"] <= 1.0 and block["after_s"] > 0
    # learning is measured from the test split's majority-class rate (24 of 48), not a random head's accuracy
    learning = record["learning"]
    assert learning["baseline"] == "majority_rate" and learning["base"] == 0.5
    assert learning["gain"] == pytest.approx(record["metrics"]["test"]["accuracy"] - 0.5)
    stage_a = record["forgetting"]["previous_task"]["stage_a"]
    assert Path(stage_a["checkpoint"]).is_dir() and stage_a["steps"] == 6
    assert record["time"]["forgetting_s"] > 0


def test_the_stage_is_trained_once_and_handed_on_to_every_run(experiment_file, topic_dataset, monkeypatch):
    from peftlab.runtime.stages import InitFromStage

    trained = []
    train_task_a = InitFromStage._train_task_a
    monkeypatch.setattr(InitFromStage, "_train_task_a", lambda *a: trained.append(1) or train_task_a(*a))
    methods = "  - method: full\n    lr: 1.0e-30\n  - method: lora\n    lr: 1.0e-2\n"
    stage = _staged(topic_dataset, "  - probe: previous_task\n").replace("  steps: 6\n", "  steps: 6\n  seed: 0\n")
    records = _run(experiment_file, topic_dataset, methods, steps=1, extra=stage)
    assert [r["status"] for r in records] == ["ok", "ok"], [r.get("traceback") for r in records]
    assert len(trained) == 1  # the first run trained stage A; the second read it from the cache
    (summary,) = {json.dumps(r["init_from"], sort_keys=True) for r in records}
    assert json.loads(summary) == records[0]["forgetting"]["previous_task"]["stage_a"]
    for record in records:
        # the run's base model (adapter disabled) is the stage's model: through task A's kept head it
        # scores what stage A scored on task A's test split when it was trained
        assert record["forgetting"]["previous_task"]["before"] == record["init_from"]["accuracy"]
        assert record["time"]["init_from_s"] > 0
    assert records[0]["forgetting"]["previous_task"]["delta"] == 0.0  # full at lr 1e-30 moves nothing


def test_full_finetuning_at_a_high_learning_rate_forgets_more(tiny_bert, tiny_dataset, topic_dataset):
    from peftlab.config import TrainConfig
    from peftlab.data import load_classification_data
    from peftlab.runtime.train import TrainSpec, train
    from peftlab.tasks.classification import collate, tokenize_split, train_batches

    probe, run = _linear_probe(tiny_bert, topic_dataset), _run_context()
    before = probe.measure(_classifier(tiny_bert), run)["accuracy"]
    data = load_classification_data(str(tiny_dataset))
    split = tokenize_split(data.train["text"].tolist(), data.train["label"].to_numpy(), probe_tokenizer(tiny_bert), 32)
    forgotten = {}
    for lr in (1e-6, 1e-1):
        model = _classifier(tiny_bert)
        batches = train_batches(split, 8, 12, seed=0)
        cfg = TrainConfig(steps=12, batch_size=8)
        train(model, batches, lambda i: collate(split, i, 0), TrainSpec.of(cfg, cfg.optimizer(lr), "cpu"))
        forgotten[lr] = probe.forgotten(before, probe.measure(model, run)["accuracy"])
    assert forgotten[1e-1] > forgotten[1e-6] + 0.1, forgotten
    assert abs(forgotten[1e-6]) < 0.05, forgotten


# ---------------------------------------------------------------- probes directly


def _run_context(seed: int = 0, checkpoint: Path | None = None):
    import contextlib

    from peftlab.probes import RunContext

    return RunContext("cpu", contextlib.nullcontext, 0, "right", seed, checkpoint)


def probe_tokenizer(tiny_bert: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def _linear_probe(tiny_bert: Path, topic: Path):
    from peftlab.config.probes import LinearProbeParams
    from peftlab.probes.linear_probe import LinearProbe

    params = LinearProbeParams(source=str(topic), max_length=32, train_limit=100, test_limit=60)
    return LinearProbe(params, probe_tokenizer(tiny_bert), None)


def _classifier(tiny_bert: Path):
    from transformers import set_seed

    from peftlab.runtime.models import load_classifier, resolve_model_source

    set_seed(0)
    return load_classifier(resolve_model_source(str(tiny_bert)), ("neg", "pos"), pad_token_id=0)


@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning", "lora"])
def test_before_is_the_base_model_even_for_prompt_and_prefix_tuning(tiny_bert, topic_dataset, method):
    from peftlab.methods import ModelContext, get_method
    from peftlab.probes import base_model_view
    from peftlab.probes.base import pooled_features

    probe = _linear_probe(tiny_bert, topic_dataset)
    split, run = probe.splits["test"], _run_context()
    plain = _classifier(tiny_bert).eval()
    reference = pooled_features(plain, split, 32, run)
    m = get_method(method)
    model = m.prepare(_classifier(tiny_bert), m.params(), ModelContext("SEQ_CLS", "bert", 10, ("classifier",)))
    with base_model_view(model) as base:
        assert np.array_equal(pooled_features(base, split, 32, run), reference)
    adapted = pooled_features(model.eval(), split, 32, run)
    if method == "lora":  # LoRA starts as an identity (B = 0); soft prompts and prefixes do not
        assert np.array_equal(adapted, reference)
    else:
        assert not np.allclose(adapted, reference)


def test_probes_are_deterministic_for_a_seed(tiny_bert, topic_dataset, tmp_path):
    from peftlab.config import InitFromConfig, TrainConfig
    from peftlab.runtime.models import resolve_model_source
    from peftlab.runtime.stages import InitFromStage

    first = _linear_probe(tiny_bert, topic_dataset).measure(_classifier(tiny_bert), _run_context())
    second = _linear_probe(tiny_bert, topic_dataset).measure(_classifier(tiny_bert), _run_context())
    assert first == second and 0.5 < first["accuracy"] <= 1.0

    tokenizer = probe_tokenizer(tiny_bert)
    params = InitFromConfig(source=str(topic_dataset), max_length=32, steps=4, lr=1e-3, batch_size=8, test_limit=40)
    source = resolve_model_source(str(tiny_bert))
    stages = [InitFromStage(params, tokenizer, None, TrainConfig(), tmp_path / name) for name in ("a", "b")]
    folders = [stage.checkpoint(source, _run_context(seed=3)) for stage in stages]
    for name in ("model.safetensors", "task_a_head.safetensors"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes()
    assert stages[0].checkpoint(source, _run_context(seed=3)) == folders[0]  # built once, reused


# ---------------------------------------------------------------- lm_loss on a tiny causal LM


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_lm_loss_before_is_the_base_model_and_an_unchanged_lora_forgets_zero(tiny_llama, method):
    from transformers import AutoModelForCausalLM

    from peftlab.methods import ModelContext, get_method
    from peftlab.probes import base_model_view
    from peftlab.probes.lm_loss import measure_lm_loss

    blocks = np.random.default_rng(0).integers(0, 32, size=(6, 24))  # ids inside the tiny vocabulary
    run = _run_context()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    reference = measure_lm_loss(base, blocks, 4, run)
    assert reference["tokens"] == 6 * 23 and np.isclose(reference["perplexity"], np.exp(reference["loss"]))
    m = get_method(method)
    model = m.prepare(
        AutoModelForCausalLM.from_pretrained(tiny_llama), m.params(), ModelContext("CAUSAL_LM", "llama", 10)
    ).eval()
    with base_model_view(model) as view:
        before = measure_lm_loss(view, blocks, 4, run)
    after = measure_lm_loss(model, blocks, 4, run)
    assert before == reference
    if method == "lora":
        assert after["loss"] - before["loss"] == 0.0
    else:  # a random soft prompt changes the predictions: not an identity at step 0
        assert after["loss"] != before["loss"]


def test_lm_loss_probe_reads_builtin_news_into_fixed_blocks():
    from peftlab.config.probes import LMLossParams
    from peftlab.probes.lm_loss import LMLossProbe

    class Chars:  # a character-level stand-in tokenizer: the builtin text, not the tokenizer, is under test
        eos_token_id = 1

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[2 + (ord(c) % 60) for c in t] for t in texts]}

    probe = LMLossProbe(LMLossParams(block_size=32, max_blocks=5), Chars(), None)
    assert probe.blocks.shape == (5, 32) and probe.fingerprint
    again = LMLossProbe(LMLossParams(block_size=32, max_blocks=5), Chars(), None)
    assert np.array_equal(probe.blocks, again.blocks) and probe.fingerprint == again.fingerprint


def test_lm_loss_end_to_end_on_an_sft_experiment(tmp_path, tiny_llama, tiny_dataset):
    """The probe inside real sft runs: zero-shot forgets exactly nothing, trained LoRA moves the loss."""
    import json

    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import execute_run
    from peftlab.runtime.workspace import prepare_workspace

    text = tmp_path / "general.csv"  # general text as a table with a text column, one document per row
    text.write_text(
        "text\n" + "\n".join(f"the film was {w} and the story is {w}" for w in ("good", "bad", "dull") * 30)
    )
    path = tmp_path / "sft.yaml"
    path.write_text(
        f"name: sft_forget\nmodel: {tiny_llama}\ntask: sft\ndata:\n  source: {tiny_dataset}\n  max_length: 48\n"
        f"  validation_limit: 4\n  test_limit: 4\ntrain:\n  steps: 2\n  batch_size: 4\n  eval_every: 2\n"
        f"seeds: [0]\noutput_dir: {tmp_path / 'results'}\n"
        f"forgetting:\n  - probe: lm_loss\n    source: {text}\n    block_size: 16\n    max_blocks: 4\n"
        "methods:\n  - method: zero_shot\n  - method: lora\n    lr: 5.0e-2\n"
    )
    experiment = load_experiment(path)
    ws = prepare_workspace(experiment)
    records = [execute_run(ws, spec, quiet=True).as_json() for spec in make_plan(experiment)]
    assert [r["status"] for r in records] == ["ok", "ok"], [r.get("error") for r in records]
    zero, lora = (r["forgetting"]["lm_loss"] for r in records)
    assert zero["delta"] == 0.0 and zero["before"] == zero["after"]
    assert lora["before"] == zero["before"]  # the same base model, measured (or cached) once
    assert lora["after"] != lora["before"]
    assert json.loads(json.dumps(records[1]))["learning"]["metric"] == "accuracy"
