"""`lm_loss`: language-modelling loss on held-out general text (causal LMs); delta = after − before."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from peftlab.config.probes import LMLossParams
from peftlab.probes.base import Probe, RunContext, eval_mode, register


@register
class LMLossProbe(Probe):
    """Language-modelling loss on held-out general text (peft's method_comparison measure), causal LMs."""

    name = "lm_loss"
    summary = "mean per-token loss on held-out general text (causal LMs); delta = after − before"
    params_type = LMLossParams
    tasks = ("sft", "grpo")
    score = "loss"
    better = "min"

    def load(self, tokenizer: Any, base_dir: Path | None) -> None:
        from peftlab.data import load_text_data

        p: LMLossParams = self.params
        data = load_text_data(p.source, text_column=p.text_column, base_dir=base_dir)
        self.fingerprint = data.fingerprint
        self.blocks = token_blocks(data.split(p.split), tokenizer, p.block_size, p.max_blocks)

    def measure(self, model: Any, run: RunContext) -> dict[str, Any]:
        with eval_mode(model):
            return measure_lm_loss(model, self.blocks, self.params.batch_size, run)


def token_blocks(texts: list[str], tokenizer: Any, block_size: int, max_blocks: int) -> np.ndarray:
    """Documents joined by EOS and cut into `max_blocks` full blocks of `block_size` tokens (int64)."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    for doc in ids:
        stream.extend(doc + eos)
        if len(stream) >= block_size * max_blocks:
            break
    n = min(len(stream) // block_size, max_blocks)
    if n == 0:
        from peftlab.errors import UserError

        raise UserError(f"lm_loss: the text gives {len(stream)} tokens, fewer than one block of {block_size}")
    return np.asarray(stream[: n * block_size], dtype=np.int64).reshape(n, block_size)


def measure_lm_loss(model: Any, blocks: np.ndarray, batch_size: int, run: RunContext) -> dict[str, float]:
    """Mean per-token next-token loss (nats) and perplexity over full token blocks (no padding).

    Computed from the logits, not the model's own loss: prompt tuning prepends virtual positions,
    so the logits of the block's own tokens are the last `block_size` ones.
    """
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.inference_mode(), run.autocast():
        for start in range(0, len(blocks), batch_size):
            ids = torch.as_tensor(blocks[start : start + batch_size], dtype=torch.long, device=run.device)
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -ids.shape[1] :, :]
            loss = F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
            )
            total += float(loss)
            count += ids[:, 1:].numel()
    mean = total / max(count, 1)
    return {"loss": mean, "perplexity": math.exp(mean), "tokens": count}
