"""An experiment's probes, and one run's measurements with them: what fine-tuning costs the model elsewhere.

A probe is a small object with a config dataclass (validated from the `forgetting:` list of an
experiment) and one `measure(model, run)`. `before` applies it to the run's base model, with the
adapter disabled (prompt and prefix tuning are not identities at step 0), right after the method
has prepared the model; `after` applies the very same code to the tuned model. Same code path,
same data, same seed: a run whose weights did not move forgets exactly 0.

Sign convention: every probe's `delta` is the amount forgotten, **positive = worse**:
  - `lm_loss`        after − before (mean per-token loss on general text, nats)
  - `linear_probe`   before − after (accuracy of a logistic-regression probe on frozen features)
  - `previous_task`  before − after (task-A accuracy through task A's kept head)
Learning is recorded beside it: `learning.{base, after, gain, baseline}` on the target task, gain =
after − base. The base must measure something: for `classification` it is the majority-class rate
of the test split (what always answering its most frequent class scores), not the accuracy of a
random untrained head, which is noise around chance; for `sft` it is the base model's own
zero-shot score (an instruction-tuned LM answers before any training).

Heavy work is done once: probe data is loaded and tokenised in the experiment's parent process
(which never computes with torch), "before" values depend only on the base model and are cached
under `results/<experiment>/.forgetting/` (file-locked). Probes only measure: the model a run starts
from, `init_from:`'s stage-A model when there is one, is the stage's business (peftlab/runtime/stages.py).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from peftlab.probes.base import RunContext, base_model_view, digest, probe_class
from peftlab.probes.previous_task import META_FILE
from peftlab.records.environment import device_type
from peftlab.records.record import ProbeResults
from peftlab.runtime.models import file_lock
from peftlab.task_specs import TaskChoice


def learning_metric(task: TaskChoice) -> tuple[str, Literal["max", "min"]]:
    """The target-task score that "learning" is measured in: the run's chosen metric and its direction
    (a CoLA run with `data.metric: matthews` learns and forgets in Matthews correlation, not accuracy)."""
    return task.metric, task.direction


def learning_baseline(task: TaskChoice) -> str:
    """What learning is measured from (see the module docstring): a score key of the same test evaluation
    in the chosen metric (the split's majority-class predictor), or "base_model" (the base model before training)."""
    return task.spec.learning_baseline


class ProbeSuite:
    """An experiment's probes, loaded once in the parent; `for_run` makes the per-run measurer.

    Building this imports no torch computation: it reads and tokenises the probe data only.
    """

    def __init__(self, experiment: Any, tokenizer: Any) -> None:
        self.experiment = experiment
        self.tokenizer = tokenizer
        dirs = experiment.search_dirs()
        self.probes = [
            probe_class(e.probe)(e.params, tokenizer, source_base_dir(_source_of(e.params), dirs))
            for e in experiment.forgetting
        ]
        self.cache_dir = experiment.results_dir() / ".forgetting"
        self.learning_metric = learning_metric(experiment.task_choice)
        self.learning_baseline = learning_baseline(experiment.task_choice)

    def for_run(self, seed: int, device: str, *, quiet: bool = False, checkpoint: Path | None = None) -> RunProbes:
        """The run's measurer; `checkpoint` is the init_from stage's folder the run started from, if any."""
        from peftlab.runtime.train import autocast_factory

        run = RunContext(
            device=device,
            autocast=autocast_factory(device, self.experiment.train.precision),
            pad_id=int(self.tokenizer.pad_token_id),
            padding_side=getattr(self.tokenizer, "padding_side", "right"),
            seed=seed,
            checkpoint=checkpoint,
            quiet=quiet,
        )
        return RunProbes(self, run)


class RunProbes:
    """One run's forgetting and learning measurements: `before`, then `after`."""

    def __init__(self, suite: ProbeSuite, run: RunContext) -> None:
        self.suite, self.run = suite, run
        self.values: dict[str, dict[str, Any]] = {}
        self.examples: dict[str, Any] = {}  # per-example outcomes a probe keeps (lm_eval), for the predictions file
        self.learning: dict[str, Any] = {}
        self.base_key: dict[str, Any] = {}
        self.seconds = 0.0

    def before(self, model: Any, load_kwargs: dict[str, Any], evaluate_target: Callable[[Any], dict]) -> None:
        """Probe scores and the target-task score of the base model (adapter disabled), before any step.

        Each depends only on the base weights, so it is cached by a key of everything that
        shapes it; a run that finds it computed pays a file read.
        """
        started = time.perf_counter()
        exp = self.suite.experiment
        self.base_key = {
            "model": str(self.run.checkpoint) if self.run.checkpoint else exp.model,
            "load": json.loads(json.dumps(load_kwargs, sort_keys=True, default=_describe)),
            "device": device_type(self.run.device),
            "precision": exp.train.precision,
        }
        with base_model_view(model) as base:
            if self.suite.learning_metric is not None and self.suite.learning_baseline == "base_model":
                key = {
                    **self.base_key,
                    "learning": self.suite.learning_metric[0],
                    "seed": self.run.seed,  # the fresh head is drawn from the run's seed
                    "data": dataclasses.asdict(exp.data),
                }
                what = f"target-task {key['learning']}"
                self.learning = self._cached(key, lambda: _scores(evaluate_target(base)), what)
            for probe in self.suite.probes:
                t0 = time.perf_counter()
                key = {**self.base_key, **probe.config()}
                value = self._cached(key, lambda p=probe: p.measure(base, self.run), f"probe {probe.name}")
                self.values[probe.name] = {"value": value, "before_s": time.perf_counter() - t0}
        self.seconds += time.perf_counter() - started

    def _cached(self, key: dict[str, Any], compute: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
        from peftlab.records.results import write_json_atomic

        path = self.suite.cache_dir / f"before-{digest(key)}.json"
        with file_lock(path.with_suffix(".lock")):
            if path.is_file():
                return json.loads(path.read_text())["value"]
            self.run.say(f"measuring the base model once ({what}, before training); later runs read it from the cache")
            value = compute()
            write_json_atomic(path, {"key": key, "value": value})
            return value

    def _keep_examples(self, name: str, before: dict, after: dict) -> tuple[dict, dict]:
        """Per-example outcomes (`examples`: {task: columns}) go to the predictions file, not into the record."""
        for when, value in (("before", before), ("after", after)):
            for task, block in (value.get("examples") or {}).items():
                self.examples[f"{name}/{task}/{when}"] = block
        strip = lambda value: {k: v for k, v in value.items() if k != "examples"}  # noqa: E731
        return strip(before), strip(after)

    def after(self, model: Any, target_scores: dict[str, Any]) -> ProbeResults:
        """Measure the tuned model: the record's `forgetting` (with per-probe cost) and `learning`."""
        started = time.perf_counter()
        forgetting: dict[str, Any] = {}
        for probe in self.suite.probes:
            t0 = time.perf_counter()
            after = probe.measure(model, self.run)
            before = self.values[probe.name]["value"]
            before, after = self._keep_examples(probe.name, before, after)
            forgetting[probe.name] = {
                "before": before[probe.score],
                "after": after[probe.score],
                "delta": probe.forgotten(before[probe.score], after[probe.score]),
                "metric": probe.score,
                "detail": {"before": before, "after": after},
                "before_s": self.values[probe.name]["before_s"],
                "after_s": time.perf_counter() - t0,
            }
        if self.run.checkpoint is not None and "previous_task" in forgetting:
            stage_a = json.loads((self.run.checkpoint / META_FILE).read_text())
            forgetting["previous_task"]["stage_a"] = {
                "checkpoint": str(self.run.checkpoint),
                **{k: stage_a[k] for k in ("accuracy", "steps", "final_train_loss", "build_s")},
            }
        self.seconds += time.perf_counter() - started
        return ProbeResults(forgetting=forgetting, learning=self._learning(target_scores), forgetting_s=self.seconds)

    def _learning(self, target_scores: dict[str, Any]) -> dict[str, Any] | None:
        """The record's `learning`: the target task's primary metric before and after, and the gain."""
        baseline = self.suite.learning_baseline
        if self.suite.learning_metric is not None and (self.learning or baseline != "base_model"):
            key, better = self.suite.learning_metric
            base = self.learning.get(key) if baseline == "base_model" else target_scores.get(baseline)
            after = target_scores.get(key)
            gain = None if base is None or after is None else (after - base if better == "max" else base - after)
            return {"metric": key, "base": base, "after": after, "gain": gain, "baseline": baseline}
        return None


def _scores(scores: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in scores.items() if isinstance(v, (int, float)) and k not in ("samples_per_s", "tokens_per_s")
    }


def _source_of(params: Any) -> str | None:
    """What a probe reads from disk: its data `source`, or (lm_eval) its folder of task YAMLs."""
    return getattr(params, "source", None) or getattr(params, "include_path", None)


def source_base_dir(source: str | None, search_dirs: list[Path]) -> Path | None:
    """The folder a relative probe source is found in, like the experiment's own data source."""
    if source is None or source.startswith("builtin:"):
        return None
    return next((d for d in search_dirs if (d / source).exists()), None)


def _describe(value: Any) -> Any:
    """JSON stand-in for load kwargs (a quantisation config, a dtype) in cache keys."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else str(value)
