"""`lm_eval`: lm-evaluation-harness tasks over the live model (causal LMs); delta = before − after.

The model is the one in memory, wrapped by lm-eval's `HFLM` (no reload from disk): "before" is the
base model under the method's adapter (switched off), "after" the tuned one. The score is the
mean of the tasks' `metric` (Biderman et al. 2024 average HellaSwag, ARC-Challenge and
WinoGrande); each task's per-example outcomes go into the run's predictions file as the splits
`lm_eval/<task>/before` and `lm_eval/<task>/after`, so forgetting is paired per example too.

lm-eval seeds Python's, NumPy's and torch's global generators by default; here it seeds none,
and the generators' states are put back afterwards, so a run that measures (or reads a cached
"before" value) trains exactly as one that does not. Few-shot examples keep lm-eval's own seed.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from peftlab.config.probes import LMEvalParams, lm_eval_include_dir
from peftlab.probes.base import Probe, RunContext, eval_mode, register

FEWSHOT_SEED = 1234  # lm-eval's default: the same few-shot examples as its own command line


@register
class LMEvalProbe(Probe):
    """lm-evaluation-harness tasks over the model in memory: the mean of their accuracy (causal LMs)."""

    name = "lm_eval"
    summary = "lm-evaluation-harness tasks over the live model (mean accuracy, causal LMs); delta = before − after"
    params_type = LMEvalParams
    tasks = ("sft", "grpo")
    score = "accuracy"
    better = "max"

    def load(self, tokenizer: Any, base_dir: Path | None) -> None:
        from lm_eval.tasks import TaskManager

        p: LMEvalParams = self.params
        self.include = lm_eval_include_dir(p.include_path, [base_dir or Path.cwd()])
        self.task_manager = TaskManager(include_path=str(self.include) if self.include else None)
        self.tokenizer = copy.deepcopy(tokenizer)  # lm-eval may give it a pad token; the run's own stays as it is
        self.fingerprint = _folder_digest(self.include) if self.include else ""

    def measure(self, model: Any, run: RunContext) -> dict[str, Any]:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM

        p: LMEvalParams = self.params
        logging.getLogger("lm_eval").setLevel(logging.ERROR)  # not "pretrained is not a str": that is the point
        with eval_mode(model), kept_random_state(), run.autocast():
            lm = HFLM(pretrained=model, tokenizer=self.tokenizer, batch_size=p.batch_size)
            out = simple_evaluate(
                model=lm,
                tasks=list(p.tasks),
                num_fewshot=p.num_fewshot,
                limit=p.limit,
                task_manager=self.task_manager,
                log_samples=True,
                bootstrap_iters=0,
                random_seed=None,
                numpy_random_seed=None,
                torch_random_seed=None,
                fewshot_random_seed=FEWSHOT_SEED,
                verbosity="ERROR",
            )
        return summarise(out, p.tasks, p.metric)


def summarise(out: dict[str, Any], tasks: list[str], metric: str) -> dict[str, Any]:
    """The mean of each requested task's `metric`, the per-task figures, and each example's outcome."""
    per_task: dict[str, dict[str, Any]] = {}
    for task in tasks:
        scores = out["results"].get(task, {})
        value = scores.get(f"{metric},none")
        per_task[task] = {
            metric: value,
            **{
                k.split(",")[0]: v
                for k, v in scores.items()
                if "," in k and isinstance(v, float) and "_stderr" not in k
            },
            "n": len(out.get("samples", {}).get(task, [])) or None,
        }
    values = [t[metric] for t in per_task.values() if isinstance(t[metric], float)]
    examples = {task: outcomes_of(samples, metric) for task, samples in out.get("samples", {}).items()}
    return {"accuracy": sum(values) / len(values) if values else None, "tasks": per_task, "examples": examples}


def outcomes_of(samples: list[dict[str, Any]], metric: str) -> dict[str, list[Any]]:
    """One task's samples as the predictions file's columns (id, gold, prediction, correct)."""
    from peftlab.records.predictions import example_ids, outcomes

    ids = [s.get("doc_hash") for s in samples]
    if not all(ids):
        ids = example_ids([s.get("doc") for s in samples])
    return outcomes(
        ids,
        [s.get("target") for s in samples],
        [_prediction(s.get("filtered_resps")) for s in samples],
        [bool(s.get(metric)) for s in samples],
    )


def _prediction(responses: Any) -> Any:
    """The chosen answer: the index of the likeliest choice (multiple choice), else the generated text."""
    if isinstance(responses, list) and responses and all(isinstance(r, list | tuple) for r in responses):
        logliks = [float(r[0]) for r in responses]
        return max(range(len(logliks)), key=logliks.__getitem__)
    if isinstance(responses, list) and len(responses) == 1:
        return responses[0]
    return responses


@contextlib.contextmanager
def kept_random_state() -> Iterator[None]:
    """Python's, NumPy's and torch's generators as they were: measuring must not change what trains next."""
    import random

    import numpy as np
    import torch

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _folder_digest(folder: Path) -> str:
    """The task files and their data: a changed task or data file is a new "before" measurement."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
