"""The `init_from:` stage: task A fully fine-tuned once, its backbone handed on as every run's model source.

Sequential fine-tuning changes the treatment, so it is a stage of the experiment, run before the
recipe builds the model (recipe.py: `start_from`), not a probe (issue 15). Every method, QLoRA
included (it quantises the stage's model on load), starts from the same task-A checkpoint. The
checkpoint is an HF encoder folder with task A's head beside it (`HEAD_FILE`, `META_FILE`), which
the `previous_task` probe reads to measure how much of task A a run forgets: probes only measure.

Task A's data is loaded and tokenised once, in the experiment's process (execute/workspace.py);
the stage model is trained by whichever run needs it first and cached, file-locked, under
`results/<experiment>/.forgetting/previous_task-<key>/`: the folder and key it had when the
previous_task probe trained it, so stage-A models built before the move are found and reused.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from peftlab.config.stages import InitFromConfig
from peftlab.probes.base import RunContext, classification_splits, digest, eval_mode, predict
from peftlab.probes.previous_task import HEAD_FILE, META_FILE
from peftlab.probes.suite import source_base_dir
from peftlab.records.environment import device_type
from peftlab.runtime.models import file_lock


class InitFromStage:
    """Task A's data (loaded at construction, in the parent) and the cached stage-A model built from it."""

    def __init__(
        self, params: InitFromConfig, tokenizer: Any, base_dir: Path | None, train_cfg: Any, cache_dir: Path
    ) -> None:
        self.params, self.tokenizer, self.train_cfg, self.cache_dir = params, tokenizer, train_cfg, cache_dir
        self.data, self.splits = classification_splits(
            params, tokenizer, base_dir, {"train": None, "validation": None, "test": params.test_limit}
        )

    @classmethod
    def for_experiment(cls, experiment: Any, tokenizer: Any) -> InitFromStage:
        params = experiment.init_from
        base_dir = source_base_dir(params.source, experiment.search_dirs())
        return cls(params, tokenizer, base_dir, experiment.train, experiment.results_dir() / ".forgetting")

    def start(self, base: Any, seed: int, device: str, *, quiet: bool = False) -> tuple[Any, Path]:
        """(the run's model source, the stage folder): the stage-A model, trained now if no run has yet."""
        from peftlab.runtime.models import ModelSource
        from peftlab.runtime.train import autocast_factory

        run = RunContext(
            device=device,
            autocast=autocast_factory(device, self.train_cfg.precision),
            pad_id=int(self.tokenizer.pad_token_id),
            padding_side=getattr(self.tokenizer, "padding_side", "right"),
            seed=seed,
            quiet=quiet,
        )
        folder = self.checkpoint(base, run)
        return ModelSource(f"{base.spec} → init_from stage A", "local", str(folder)), folder

    def key(self, base: Any, run: RunContext) -> dict[str, Any]:
        """What the stage-A model depends on; `probe: previous_task` kept so earlier caches stay valid."""
        p = self.params
        seed = p.seed if p.seed is not None else run.seed
        key = {"probe": "previous_task", **dataclasses.asdict(p), "data_fingerprint": self.data.fingerprint}
        return {**key, "model": base.location, "seed": seed, "device": device_type(run.device)}

    def checkpoint(self, base: Any, run: RunContext) -> Path:
        """The stage-A folder for this base model and seed: built once, by whichever run needs it first."""
        key = {**self.key(base, run), "precision": self.train_cfg.precision}
        folder = self.cache_dir / f"previous_task-{digest(key)}"
        with file_lock(folder.with_name(folder.name + ".lock")):
            if not (folder / META_FILE).is_file():
                tmp = folder.with_name(folder.name + ".partial")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                meta = self._train_task_a(base, run, key["seed"], tmp)
                (tmp / META_FILE).write_text(json.dumps({**meta, "key": key}, indent=2) + "\n")
                shutil.rmtree(folder, ignore_errors=True)
                tmp.rename(folder)
        return folder

    def _train_task_a(self, base: Any, run: RunContext, seed: int, out: Path) -> dict[str, Any]:
        from transformers import set_seed

        from peftlab.runtime.models import load_classifier
        from peftlab.runtime.train import TrainSpec, Watch, step_bar, train
        from peftlab.tasks.classification import collate, train_batches

        p = self.params
        started = time.perf_counter()
        set_seed(seed)
        model = load_classifier(base, self.data.label_names, pad_token_id=run.pad_id).to(run.device)
        for param in model.parameters():
            param.requires_grad_(True)
        cfg = dataclasses.replace(
            self.train_cfg,
            steps=p.steps,
            batch_size=p.batch_size,
            grad_accum=1,
            gradient_checkpointing=False,
            compile=False,
        )
        split = self.splits["train"]
        batches = train_batches(split, p.batch_size, p.steps, seed, cfg.length_grouping)
        run.say(f"init_from: training stage A once ({p.steps} steps on {p.source}); later runs reuse it")
        with step_bar(p.steps, "stage A", run.quiet) as bar:
            loop = TrainSpec.of(cfg, cfg.optimizer(p.lr), run.device)
            outcome = train(model, batches, lambda idx: collate(split, idx, run.pad_id), loop, Watch(progress=bar))
        with eval_mode(model):
            test = self.splits["test"]
            accuracy = float((predict(model, test, 64, run) == test.labels).mean())
        heads = self._save(model, out)
        return {
            "label_names": list(self.data.label_names),
            "heads": list(heads),
            "accuracy": accuracy,
            "steps": p.steps,
            "final_train_loss": outcome.final_train_loss,
            "build_s": time.perf_counter() - started,
        }

    def _save(self, model: Any, out: Path) -> tuple[str, ...]:
        """The backbone as an HF folder (what runs load), task A's head(s) beside it, and the tokenizer."""
        from safetensors.torch import save_file

        from peftlab.runtime.models import head_modules

        heads = head_modules(model)
        if not heads:
            raise RuntimeError("init_from: the model has no classifier/score head to keep for task A")
        getattr(model, model.base_model_prefix).save_pretrained(out, safe_serialization=True)
        state = {
            f"{h}.{k}": v.detach().contiguous().cpu() for h in heads for k, v in getattr(model, h).state_dict().items()
        }
        save_file(state, str(out / HEAD_FILE))
        self.tokenizer.save_pretrained(out)
        return tuple(heads)


def stage_summary(folder: Path) -> dict[str, Any]:
    """What a record keeps of the stage: where its model is, its task-A accuracy, steps, loss and build time."""
    meta = json.loads((folder / META_FILE).read_text())
    return {"checkpoint": str(folder), **{k: meta[k] for k in ("accuracy", "steps", "final_train_loss", "build_s")}}
