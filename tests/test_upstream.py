"""What peftlab relies on in its dependencies beyond their public promises, each named with the
releases it was checked on, so that the canary (`make test-latest`) says which API moved.

- Upstream incompatibility: transformers 5.24 renamed the encoders' forward argument
  `past_key_values` to `cache` (a deprecated alias still maps the old name, but the signature no
  longer shows it); peft <= 0.21.2 decides whether a model can be prefix-tuned by reading that
  signature (`PeftModel._prefix_tuning_forward`), so it raises "Model does not support past key
  values" for BERT, RoBERTa and GPT-2 although their forward would take the prefix. pyproject
  excludes transformers >= 5.24 for it; the strict xfail below turns red the day a release pair
  fixes it, which is the signal to lift the bound.
- Private APIs: bitsandbytes' CPU weight repacking switch (QLoRA on CPUs with AVX-512-BF16).
  Optuna: none any more (the queue claims points itself, planners/points.py); OPTUNA_PRIVATE
  lists what remains (nothing) and a scan of the planners fails on any new private use, while
  the test below checks the public calls the queue leans on hardest.
"""

from __future__ import annotations

import importlib.metadata

import pytest
from packaging.version import Version

TRANSFORMERS = Version(importlib.metadata.version("transformers"))
PEFT = Version(importlib.metadata.version("peft"))
UPSTREAM = (
    "upstream: transformers >= 5.24 renamed BertModel.forward's `past_key_values` to `cache` (deprecated alias "
    "kept, hidden from the signature) and peft <= 0.21.2 checks the signature, so prefix tuning raises 'Model does "
    "not support past key values'"
)
KNOWN_BROKEN = Version("5.24") <= TRANSFORMERS and Version("0.21.2") >= PEFT


@pytest.mark.xfail(KNOWN_BROKEN, reason=UPSTREAM, strict=True, raises=ValueError)
def test_peft_prefix_tuning_runs_a_forward_pass_on_bert_and_gpt2():
    """The minimal reproduction for the peft maintainers: a one-token prefix on a tiny BERT and GPT-2."""
    import torch
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2ForSequenceClassification

    ids = torch.tensor([[1, 2, 3]])
    for model in (
        BertForSequenceClassification(
            BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        ),
        GPT2ForSequenceClassification(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, pad_token_id=0)),
    ):
        wrapped = get_peft_model(model, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=1))
        out = wrapped(input_ids=ids, attention_mask=torch.ones_like(ids))
        assert out.logits.shape == (1, 2)


def test_peftlabs_prefix_check_follows_behaviour_not_the_signature(tmp_path, monkeypatch):
    """peftlab's own check agrees with what peft does on this release pair, whatever the signature shows."""
    import inspect

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from peftlab.methods import capability
    from peftlab.methods.fit import Unfit
    from peftlab.methods.prompts import _check_prefix

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(capability, "_MEMORY", {})  # an earlier test in this process may have asked already
    with torch.device("meta"):
        model = BertForSequenceClassification(BertConfig())
    if KNOWN_BROKEN:
        with pytest.raises(Unfit, match=r"failed a one-token forward pass.*does not support past key values"):
            _check_prefix({}, model)
    else:
        _check_prefix({}, model)  # admitted by doing it ...
        # ... even where the signature would have refused it (transformers >= 5.24 hides the argument)
        inspect.signature(model.bert.forward)
    assert (tmp_path / "peftlab" / "capabilities.json").is_file()  # the answer is cached per class


OPTUNA_CHECKED = "optuna 5.0.0-5.1.0"


def _private(what: str, where: str, checked: str) -> str:
    return f"peftlab uses {what} ({where}); checked on {checked}; this release changed it"


OPTUNA_PRIVATE: tuple[str, ...] = ()  # private Optuna names peftlab still uses: none (was 36 uses on 25 lines)
PLANNERS = ("queue.py", "heartbeat.py", "optuna_search.py", "tuned.py", "points.py")


def test_the_planners_use_no_private_optuna_api_beyond_the_listed_names():
    """`._name` on Optuna's study, trial or storage objects, or an `optuna…._module` import, is private."""
    import re
    from pathlib import Path

    private = re.compile(
        r"(?:study|trial|storage|t|frozen|previous|current)\._[a-z]\w*|optuna(?:\.\w+)*\._\w+|"
        r"getattr\([^,]+,\s*[\"']_\w+"
    )
    root = Path(__file__).resolve().parent.parent / "peftlab" / "planners"
    found = sorted({m.group(0) for name in PLANNERS for m in private.finditer((root / name).read_text())})
    assert found == sorted(OPTUNA_PRIVATE), f"private Optuna API in peftlab/planners: {found}; list it or avoid it"


def test_optuna_public_calls_the_queue_relies_on(tmp_path):
    """A RUNNING trial added by a worker for its claimed point, live through `Trial(study, id)`; a FAIL told twice."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages.journal import JournalFileOpenLock
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    dist = {"r": CategoricalDistribution([1, 2, 4])}
    study.add_trial(create_trial(state=TrialState.RUNNING, params={"r": 2}, distributions=dist, user_attrs={"p": 1}))
    (frozen,) = study.get_trials(states=(TrialState.RUNNING,))
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("s"), frozen.number)
    trial = optuna.trial.Trial(study, trial_id)
    assert trial.suggest_categorical("r", [1, 2, 4]) == 2, _private(
        "add_trial(RUNNING) + Trial(study, id)", "planners/optuna_search.py", OPTUNA_CHECKED
    )
    study.tell(trial.number, state=TrialState.FAIL)
    with pytest.raises((UpdateFinishedTrialError, ValueError, RuntimeError)):  # take_over: the second teller loses
        study.tell(trial.number, state=TrialState.FAIL)
    lock = JournalFileOpenLock(str(tmp_path / "points"), grace_period=30)
    assert lock.acquire()
    lock.release()


def test_bitsandbytes_cpu_repacking_switch():
    bnb = pytest.importorskip("bitsandbytes")
    checked = "bitsandbytes 0.50.2"
    where = "methods/bnb_cpu.py"
    layer = bnb.nn.Linear4bit(16, 16, quant_type="nf4")
    assert hasattr(layer, "support_avx512bf16_for_cpu"), _private(
        "Linear4bit.support_avx512bf16_for_cpu", where, checked
    )
    import bitsandbytes.functional as F

    assert callable(getattr(F, "_convert_weight_packed_for_cpu_inverse", None)), _private(
        "bitsandbytes.functional._convert_weight_packed_for_cpu_inverse", where, checked
    )
