"""What every run of an experiment shares, prepared once in the experiment process.

The model source is resolved, the tokenizer loaded, the data read and tokenised, metrics, the
`init_from:` stage's task-A data and the probe data loaded here, before any run: user mistakes
surface in a second, and each forked run inherits all of it for free. This process never
computes with torch (see isolation.py for why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftlab.config import Experiment


@dataclass
class Workspace:
    """What every run of an experiment shares: model source, tokenizer, data, tokenised splits."""

    experiment: Experiment
    model_source: Any  # models.ModelSource
    tokenizer: Any
    data: Any  # data.ClassificationData (task sft: data.InstructionData)
    splits: dict[str, Any]  # split name -> the task's tokenised split
    results_dir: Path
    task: Any = None  # tasks.Task; from experiment.task when not given
    forgetting: Any = None  # probes.ProbeSuite: the experiment's probes, data loaded once
    stage: Any = None  # stages.InitFromStage: the `init_from:` stage every run starts from, data loaded once

    def __post_init__(self) -> None:
        if self.task is None:
            from peftlab.tasks import get_task

            self.task = get_task(self.experiment.task)

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)


def prepare_workspace(experiment: Experiment) -> Workspace:
    """Resolve the model and data sources and tokenise once; user mistakes surface here, before any run."""
    from peftlab.runtime.models import load_tokenizer, quiet_transformers, resolve_model_source
    from peftlab.tasks import get_task

    if _uses_hub(experiment):
        from peftlab.runtime.hub import go_offline_if_unreachable

        go_offline_if_unreachable()
    quiet_transformers()
    _quiet_library_warnings()
    source = resolve_model_source(experiment.model, experiment.search_dirs())
    tokenizer = load_tokenizer(source)
    from peftlab.methods.fit import check_experiment_fits_model  # a method unfit for the model: exit 2 now

    check_experiment_fits_model(experiment, source.location)
    check_max_length(experiment, source.location)
    task = get_task(experiment.task)
    data, splits = task.prepare_data(experiment, tokenizer, _data_base_dir(experiment))
    task.preload()  # metric modules loaded once here, inherited by every forked run
    stage = None
    if experiment.init_from is not None:
        from peftlab.runtime.stages import InitFromStage

        stage = InitFromStage.for_experiment(experiment, tokenizer)
    forgetting = None
    if experiment.forgetting:
        from peftlab.probes import ProbeSuite

        forgetting = ProbeSuite(experiment, tokenizer)
    results_dir = experiment.results_dir()
    return Workspace(experiment, source, tokenizer, data, splits, results_dir, task, forgetting, stage)


def position_limit(location: str) -> int | None:
    """How many token positions the model can take, from its config (None: no learned limit)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(location)
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(config, "model_type", "") in {"roberta", "xlm-roberta", "camembert", "longformer"}:
        limit -= 2  # positions start after the padding index (RobertaEmbeddings.create_position_ids_from_input_ids)
    return limit


def check_max_length(experiment: Experiment, location: str) -> None:
    """data.max_length above the model's position limit would fail (or wrap) inside every run: one line now."""
    from peftlab.errors import ConfigError

    wanted = experiment.data.max_length
    limit = position_limit(location)
    if wanted is not None and limit is not None and wanted > limit:
        origin = str(experiment.source_path) if experiment.source_path else experiment.name
        raise ConfigError(
            f"{origin}: data.max_length: {wanted} is above the model's position limit of {limit} tokens "
            f"({experiment.model}, max_position_embeddings); allowed: 1..{limit}"
        )


def _uses_hub(experiment: Experiment) -> bool:
    """Whether a source is neither builtin nor an existing local path (so it would come from the hub)."""
    for spec in (experiment.model, experiment.data.source):
        if spec.startswith("builtin:"):
            continue
        if not any((folder / spec).exists() for folder in experiment.search_dirs()):
            return True
    return False


def _data_base_dir(experiment: Experiment) -> Path | None:
    source = experiment.data.source
    if source.startswith("builtin:"):
        return None
    for folder in experiment.search_dirs():
        if (folder / source).exists():
            return folder
    return None


def _quiet_library_warnings() -> None:
    """Deprecation chatter from inside peft/transformers, printed once per run, says nothing about the run."""
    import warnings

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # peft's soft-prompt models drop position ids in generate (they shift with the virtual tokens)
    warnings.filterwarnings("ignore", message="Position ids are not supported for parameter efficient tuning")
