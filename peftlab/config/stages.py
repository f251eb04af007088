"""The `init_from:` section: a stage that trains task A and hands its model on to every run, validated torch-free.

Sequential fine-tuning changes the treatment (every run starts from the stage's model), so it is
a stage of the experiment, not a probe (issue 15). Probes only measure: `previous_task` scores
task A through the head this stage keeps, and its params are the stage's own settings.

The old spelling, the stage's settings under `forgetting: - probe: previous_task`, is translated
here into the same `init_from:` plus a measure-only probe, so both spellings load into one
`Experiment` and name the same runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peftlab.config.schema import build, check, fail

# experiment tasks a stage can hand a model on to: the stage trains a sequence classifier and keeps its head
STAGE_TASKS = ("classification",)


@dataclass
class InitFromConfig:
    """Task A, fully fine-tuned for `steps` before the method under test trains on the experiment's task.

    `test_limit` is task A's test split: the stage's own score and what `previous_task` measures.
    """

    source: str = "builtin:bbc_news"
    text_column: str = "text"
    label_column: str = "label"
    max_length: int = 128
    steps: int = 60
    lr: float = 1e-4
    batch_size: int = 16
    test_limit: int = 300
    seed: int | None = None  # stage-A seed; null: the run's own seed (one stage-A model per seed)

    def __post_init__(self) -> None:
        check(self.max_length >= 8, "max_length", f"got {self.max_length}, must be at least 8")
        for key in ("steps", "batch_size", "test_limit"):
            check(getattr(self, key) >= 1, key, f"got {getattr(self, key)}, must be at least 1")
        check(self.lr > 0, "lr", f"got {self.lr}, must be positive")


def parse_init_from(raw: Any, forgetting: Any, origin: str, task: str) -> InitFromConfig | None:
    """The stage: from `init_from:`, or from the old spelling's `previous_task` entry (never both)."""
    old = _old_spelling(forgetting)
    if old is not None and raw is not None:
        index, _ = old
        fail(
            origin,
            f"forgetting[{index}]",
            "previous_task's stage settings are given here and under init_from:; keep them under init_from: only",
        )
    if old is not None:  # a task it does not fit is the probe's own one-line error (parse_probes), as before
        index, settings = old
        return build(InitFromConfig, settings, origin, f"forgetting[{index}]")
    if raw is None:
        return None
    stage = build(InitFromConfig, raw, origin, "init_from")
    if task not in STAGE_TASKS:
        fail(
            origin,
            "init_from",
            f"the stage fine-tunes a sequence classifier on task A and hands it on, this experiment's task "
            f"is {task!r}; allowed with task: {', '.join(STAGE_TASKS)}",
        )
    return stage


def _old_spelling(forgetting: Any) -> tuple[int, dict[str, Any]] | None:
    """(index, stage settings) of the first `previous_task` entry that carries settings, if any."""
    if not isinstance(forgetting, list):
        return None
    for index, item in enumerate(forgetting):
        if isinstance(item, dict) and item.get("probe") == "previous_task" and len(item) > 1:
            return index, {k: v for k, v in item.items() if k != "probe"}
    return None
