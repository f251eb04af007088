"""The experiment schema: YAML in, typed and validated dataclasses out, overrides applied first.

Everything a run depends on lives here so that a record can store it and a hash can name it.
Validation happens before any model or data is touched: a typo costs a second, not a run.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from peftlab import plugins
from peftlab.config.entries import MethodEntry, TrainConfig
from peftlab.config.identity import ADDED_LATER
from peftlab.config.kinds import parse_kind
from peftlab.config.launcher import LauncherConfig, parse_launcher
from peftlab.config.loggers import LoggerEntry, parse_loggers
from peftlab.config.overrides import apply_override
from peftlab.config.probes import ProbeEntry, parse_probes, probe_names
from peftlab.config.protocol import ProtocolConfig, parse_protocol
from peftlab.config.queue import QueueConfig, parse_queue
from peftlab.config.rl import RlConfig, parse_rl
from peftlab.config.schema import build, check, closest, coerce, fail
from peftlab.config.search import SearchConfig, parse_search
from peftlab.config.stages import InitFromConfig, parse_init_from
from peftlab.errors import ConfigError
from peftlab.method_specs import get_method_spec, method_names
from peftlab.task_specs import TaskChoice, get_task_spec, resolve_task, task_names


@dataclass
class DataConfig:
    """The `data:` section. A key added after records existed is marked ADDED_LATER: a run's identity
    leaves it out while unset, so the run ids of experiments that do not use it stay the same."""

    # builtin:NAME, a local file/folder, a hub id, or a preset (glue/mnli, piqa, gsm8k: peftlab/data/presets),
    # which fills the keys below that the file leaves out
    source: str = "builtin:rotten_tomatoes"
    # the test split from another source (local, hub or preset): train on MetaMathQA, test on GSM8K
    test_source: str | None = None
    # one column, or two for sentence pairs ([premise, hypothesis]); stored as text_column + text_pair_column
    text_column: str | list[str] = "text"
    label_column: str = "label"
    # the second text of each pair (tasks that take pairs)
    text_pair_column: str | None = field(default=None, metadata=ADDED_LATER)
    # task multiple_choice: one column holding each row's choices as a list, or one column per choice
    # ([sol1, sol2]); null: "choices". The label column holds the 0-based index of the correct one
    choices_column: str | list[str] | None = field(default=None, metadata=ADDED_LATER)
    max_length: int = 128
    train_limit: int | None = None
    validation_limit: int | None = None
    test_limit: int | None = None
    # task sft, classification sources: the question each text is asked ({text}, optional {labels});
    # null: a per-dataset default (see peftlab/data/instructions.py)
    instruction: str | None = field(default=None, metadata=ADDED_LATER)
    # task sft: tokens generated per answer; null: longest train answer + 1
    max_new_tokens: int | None = field(default=None, metadata=ADDED_LATER)
    # task sft: system message put before each prompt; null: the chat template's own
    system: str | None = field(default=None, metadata=ADDED_LATER)
    # task sft: the primary score of the generated answers (exact_match, bleu, rouge); null: exact_match
    metric: str | None = field(default=None, metadata=ADDED_LATER)
    # task sft, exact match: compare the answer found in each text (gsm8k_final_number); null: whole answers
    answer_extractor: str | None = field(default=None, metadata=ADDED_LATER)
    # a generated builtin (builtin:arithmetic, compare, chain_sum: peftlab/data/procedural.py): its level;
    # null: the generator's default
    difficulty: int | None = field(default=None, metadata=ADDED_LATER)

    def __post_init__(self) -> None:
        if isinstance(self.text_column, list):
            columns = self.text_column
            check(1 <= len(columns) <= 2, "text_column", f"got {columns!r}, expected one column or a pair [a, b]")
            check(
                len(columns) == 1 or self.text_pair_column is None,
                "text_pair_column",
                "text_column already names a pair; give the second column in one place only",
            )
            self.text_column = columns[0]
            if len(columns) == 2:
                self.text_pair_column = columns[1]
        check(self.text_pair_column != self.text_column, "text_pair_column", "the same column as text_column")
        if isinstance(self.choices_column, list):
            columns = self.choices_column
            check(
                len(columns) >= 2 and len(set(columns)) == len(columns),
                "choices_column",
                f"got {columns!r}, expected one column of lists or at least 2 distinct columns [a, b]",
            )
        check(self.max_length >= 8, "max_length", f"got {self.max_length}, must be at least 8")
        check(self.max_new_tokens is None or self.max_new_tokens >= 1, "max_new_tokens", "must be at least 1 or null")
        if self.instruction is not None:
            from peftlab.data.instructions import check_instruction
            from peftlab.data.sources import DataSourceError

            try:
                check_instruction(self.instruction, where="")
            except DataSourceError as err:
                check(False, "instruction", str(err).removeprefix(": "))
        if self.difficulty is not None:
            from peftlab.data.procedural import difficulty_problem

            problem = difficulty_problem(self.source, self.difficulty)
            check(problem is None, "difficulty", problem or "")
        for key in ("train_limit", "validation_limit", "test_limit"):
            value = getattr(self, key)
            check(value is None or value > 0, key, f"got {value}, must be positive or null")


@dataclass
class SaveConfig:
    """What a finished run leaves on disk besides its record (under results/<experiment>/<dir>/<run_id>/).

    Adapters are small and what `python -m peftlab.cli.export` merges; full-model copies are as
    large as the model, so they are off unless asked for.
    """

    adapters: bool = True
    full_models: bool = False
    dir: str = "adapters"

    def __post_init__(self) -> None:
        check(re.fullmatch(r"[A-Za-z0-9_.-]+", self.dir) is not None, "dir", f"got {self.dir!r}, a folder name")


@dataclass
class ReportConfig:
    """How the report compares methods (issue 12): `reference` is the method label every other is paired against.

    None: `full` when the experiment has it, else the first method. Read by the report from the records.
    """

    reference: str | None = None


# how a field of `Experiment` is read: a part (a section with its own parser, given the others it
# depends on), or not from YAML at all; every other field is plain, built by the schema from its type
PART = {"parsed": "apart"}
NOT_YAML = {"parsed": "never"}


@dataclass
class Experiment:
    """The whole experiment: the one list of its keys (the YAML's top level, `as_dict`, the parser's parts)."""

    name: str
    model: str
    methods: list[MethodEntry] = field(metadata=PART)
    task: str = "classification"  # a registered task (peftlab/task_specs)
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    output_dir: str = "results"
    save: SaveConfig = field(default_factory=SaveConfig)
    report: ReportConfig = field(default_factory=ReportConfig)  # how the report compares methods
    search: SearchConfig | None = field(default=None, metadata=PART)  # when the file has a `search:` block
    # `protocol: tuned`: each method's lr tuned on validation first
    protocol: ProtocolConfig | None = field(default=None, metadata=PART)
    # a stage trained first (task A); every run starts from its model
    init_from: InitFromConfig | None = field(default=None, metadata=PART)
    forgetting: list[ProbeEntry] = field(default_factory=list, metadata=PART)  # one per `forgetting:` item
    # task grpo: rollouts, the verifiable reward and the loss (peftlab/config/rl.py); None for other tasks
    rl: RlConfig | None = field(default=None, metadata=PART)
    # issue 13: workers joining from many hosts
    queue: QueueConfig = field(default_factory=QueueConfig, metadata=PART)
    # `launcher:`: what --launcher slurm|local asks for; not in the identity
    launcher: LauncherConfig | None = field(default=None, metadata=PART)
    loggers: list[LoggerEntry] = field(default_factory=list, metadata=PART)  # issue 25: trackers; not in the identity
    # folders of one's own methods, tasks and probes (peftlab/plugins.py), imported before the rest is
    # validated; relative to the working directory, else to the file's folder; not in the identity
    include: list[str] = field(default_factory=list, metadata=PART)
    source_path: Path | None = field(default=None, metadata=NOT_YAML)  # where it was loaded from

    @property
    def task_choice(self) -> TaskChoice:
        """The task and the metric its runs are scored by, resolved once here (peftlab/task_specs `TaskChoice`):
        planners carry it in each run spec, the recipe writes it as `record.task`, every reader takes it from there.
        Both keys were checked when the file was read, so this cannot fail for a parsed experiment."""
        return resolve_task(self.task, self.data.metric)

    def results_dir(self) -> Path:
        """Relative output paths resolve against the working directory, like every CLI tool."""
        return (Path(self.output_dir) / self.name).resolve()

    def search_dirs(self) -> list[Path]:
        """Where a relative model or data path is looked for: the working directory, then the file's folder."""
        dirs = [Path.cwd()]
        if self.source_path is not None:
            dirs.append(self.source_path.parent)
        return dirs

    def as_dict(self) -> dict[str, Any]:
        """The experiment as plain data (every YAML key; secrets in storage URLs redacted by their sections)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.metadata != NOT_YAML}


def _plain(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


_TOP_KEYS = [f.name for f in dataclasses.fields(Experiment) if f.metadata != NOT_YAML]
_PARTS = {f.name for f in dataclasses.fields(Experiment) if f.metadata == PART}
# the plain fields, built by the schema in one call; the parts are parsed apart with what they depend on
_HINTS = get_type_hints(Experiment)
_ExperimentShell = dataclasses.make_dataclass(
    "_ExperimentShell",
    [
        (
            f.name,
            _HINTS[f.name],
            dataclasses.field(default=f.default, default_factory=f.default_factory),
        )
        for f in dataclasses.fields(Experiment)
        if f.name in _TOP_KEYS and f.name not in _PARTS
    ],
)
_ENTRY_KEYS = ("method", "label", "lr", "grid", "alpha_ratio")


def _parse_method(raw: Any, origin: str, path: str) -> MethodEntry:
    name, raw = parse_kind(raw, "method", method_names(), origin, path)
    method = get_method_spec(name)
    param_names = method.param_names()
    method_params = {k: v for k, v in raw.items() if k not in _ENTRY_KEYS}  # `method` is taken out already
    for key in method_params:
        if key not in param_names:
            allowed = [*_ENTRY_KEYS, *param_names]
            fail(
                origin,
                f"{path}.{key}",
                f"unknown key for method {name!r}; allowed: {', '.join(allowed)}{closest(str(key), allowed)}",
            )
    params = build(method.params, method_params, origin, path)
    lr = coerce(raw.get("lr", method.default_lr), float, origin, f"{path}.lr")
    if lr <= 0 and method.trains:
        fail(origin, f"{path}.lr", f"got {lr}, must be positive")
    label = coerce(raw.get("label", name), str, origin, f"{path}.label")
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", label):
        fail(origin, f"{path}.label", f"got {label!r}, use letters, digits and _.+- only")
    grid_raw = raw.get("grid") or {}
    if not isinstance(grid_raw, dict):
        fail(origin, f"{path}.grid", f"got {grid_raw!r}, expected a mapping of key to a list of values")
    hints = method.param_types()  # alpha_ratio among them where the method has alpha and r
    has_ratio = method.takes_alpha_ratio
    alpha_ratio = None
    if "alpha_ratio" in raw:
        if not has_ratio:
            fail(origin, f"{path}.alpha_ratio", f"method {name!r} has no alpha and r")
        alpha_ratio = coerce(raw["alpha_ratio"], float, origin, f"{path}.alpha_ratio")
        if alpha_ratio <= 0:
            fail(origin, f"{path}.alpha_ratio", f"got {alpha_ratio}, must be positive")
    grid: dict[str, list[Any]] = {}
    for key, values in grid_raw.items():
        if key != "lr" and key not in hints:
            allowed = ["lr", *(["alpha_ratio"] if has_ratio else []), *param_names]
            fail(
                origin,
                f"{path}.grid.{key}",
                f"not a hyperparameter of {name!r}; allowed: {', '.join(allowed)}{closest(str(key), allowed)}",
            )
        if not isinstance(values, list) or not values:
            fail(origin, f"{path}.grid.{key}", f"got {values!r}, expected a non-empty list")
        tp = float if key == "lr" else hints[key]
        grid[key] = [coerce(v, tp, origin, f"{path}.grid.{key}[{i}]") for i, v in enumerate(values)]
    if "alpha" in grid and (alpha_ratio is not None or "alpha_ratio" in grid):
        fail(origin, f"{path}.grid.alpha", "alpha and alpha_ratio both set; alpha = alpha_ratio × r, choose one")
    return MethodEntry(method=name, label=label, lr=lr, params=params, grid=grid, alpha_ratio=alpha_ratio)


def parse_experiment(raw: Any, origin: str = "") -> Experiment:
    if not isinstance(raw, dict):
        fail(origin, "(top level)", "expected a mapping of keys (name, model, data, train, methods, seeds, ...)")
    for key in raw:
        if key not in _TOP_KEYS:
            fail(origin, str(key), f"unknown key; allowed: {', '.join(_TOP_KEYS)}{closest(str(key), _TOP_KEYS)}")
    include = _include(raw.get("include"), origin)  # before anything names a method, task or probe
    for key in ("name", "model", "methods"):
        if key not in raw:
            fail(origin, key, "required key is missing")
    methods_raw = raw["methods"]
    if not isinstance(methods_raw, list) or not methods_raw:
        fail(origin, "methods", "expected a non-empty list of methods, e.g. [{method: lora, r: 8}]")
    methods = [_parse_method(m, origin, f"methods[{i}]") for i, m in enumerate(methods_raw)]
    labels = [m.label for m in methods]
    for label in labels:
        if labels.count(label) > 1:
            fail(origin, "methods", f"label {label!r} is used twice; give each entry its own 'label'")
    rest = {k: v for k, v in raw.items() if k not in _PARTS}
    rest = _with_preset(rest, origin)
    shell = build(_ExperimentShell, rest, origin, "")
    name = shell.name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        fail(origin, "name", f"got {name!r}, use letters, digits and _.- only (it names a folder)")
    if not shell.seeds:
        fail(origin, "seeds", "expected at least one seed")
    _check_task(origin, shell.task, shell.data)
    chosen = resolve_task(shell.task, shell.data.metric)  # both keys checked just above
    search = None
    if raw.get("search") is not None:
        search = parse_search(raw["search"], origin, methods, shell.train, chosen)
    protocol = parse_protocol(raw.get("protocol"), origin, methods, chosen)
    if protocol is not None and search is not None:
        fail(origin, "protocol", "a search: block chooses hyperparameters itself; use protocol or search, not both")
    init_from = parse_init_from(raw.get("init_from"), raw.get("forgetting"), origin, shell.task)
    forgetting = parse_probes(raw.get("forgetting"), origin, shell.task, init_from)
    reference = shell.report.reference  # issue 12: a method label, or a grid point of one (`lora[r=8]`)
    if reference is not None and reference not in labels and reference.split("[")[0] not in labels:
        allowed = ", ".join(labels) + " (or a grid point such as label[r=8])"
        fail(origin, "report.reference", f"got {shell.report.reference!r}, not a method label; allowed: {allowed}")
    blocks = {"search": search, "protocol": protocol, "init_from": init_from, "forgetting": forgetting}
    _check_distributed(origin, shell.train, methods, blocks)
    rl = parse_rl(raw.get("rl"), origin, shell.task, shell.train.batch_size, shell.train.distributed)
    plain = {f.name: getattr(shell, f.name) for f in dataclasses.fields(shell)}
    return Experiment(
        **plain,
        methods=methods,
        **blocks,
        rl=rl,
        queue=parse_queue(raw.get("queue"), origin),  # issue 13
        launcher=parse_launcher(raw.get("launcher"), origin),
        loggers=parse_loggers(raw.get("loggers"), origin),  # issue 25
        include=include,
    )


def _include(raw: Any, origin: str) -> list[str]:
    """`include:` (a folder or a list of them): each folder's plugins imported (peftlab/plugins.py), built-ins first.

    A relative folder is looked for in the working directory, then beside the experiment file.
    """
    if raw is None:
        return []
    folders = [raw] if isinstance(raw, str) else raw
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        fail(origin, "include", f"got {raw!r}, expected a folder of .py plugin files, or a list of folders")
    dirs = [Path.cwd(), *([Path(origin).resolve().parent] if origin else [])]
    found = []
    for i, folder in enumerate(folders):
        path = Path(folder).expanduser()
        candidates = [path] if path.is_absolute() else [d / path for d in dirs]
        match = next((c for c in candidates if c.is_dir()), None)
        if match is None:
            fail(origin, f"include[{i}]", f"got {folder!r}, no such folder (looked in {', '.join(map(str, dirs))})")
        found.append(match)
    method_names(), task_names(), probe_names()  # the built-ins and entry points first: a clash is the plugin's
    plugins.include(found, origin)
    return list(folders)


def _with_preset(rest: dict[str, Any], origin: str) -> dict[str, Any]:
    """`data:` with the keys of a preset source (`data.source: glue/mnli`) filled where the file sets none.

    The preset must be for the experiment's task; a name under a preset family that is not one
    (`glue/foo`) is an error listing the presets. `data.test_source` is checked the same way.
    """
    data = rest.get("data")
    if not isinstance(data, dict):
        return rest
    from peftlab.data.presets import fill_data_keys, find_preset, preset_names
    from peftlab.errors import UserError

    task = rest.get("task", "classification")
    if task not in task_names():
        return rest  # _check_task names the allowed tasks
    found = []
    for key in ("source", "test_source"):
        if not isinstance(data.get(key), str):
            continue
        try:
            preset = find_preset(data[key])
        except UserError as err:
            fail(origin, f"data.{key}", str(err))
        if preset is None:
            continue
        if task != preset.task and task not in preset.also_for:
            same = [n for n in preset_names() if find_preset(n).task == task]  # type: ignore[union-attr]
            hint = f"; presets for task {task!r}: {', '.join(same)}" if same else ""
            fail(origin, f"data.{key}", f"preset {preset.name!r} is for task {preset.task!r}, not {task!r}{hint}")
        found.append(preset)
    found = [p for p in found if p.task == task]  # a preset read by another task (also_for) fills no keys
    if not found:
        return rest
    known = {f.name for f in dataclasses.fields(DataConfig)}
    return {**rest, "data": fill_data_keys(found[0], data, known)}


def _check_task(origin: str, task: str, data: DataConfig) -> None:
    """`task:` names a registered task, and the data keys fit it (sentence pairs only where it takes them)."""
    names = task_names()
    if task not in names:
        fail(origin, "task", f"got {task!r}, allowed: {', '.join(names)}{closest(str(task), names)}")
    spec = get_task_spec(task)
    if data.metric is not None:
        offered = [c.name for c in spec.metric_choices]
        if data.metric not in offered:
            fail(origin, "data.metric", _not_offered(task, data.metric, offered, "metric choice"))
    if data.answer_extractor is not None:
        offered = list(spec.answer_extractors)
        if data.answer_extractor not in offered:
            fail(origin, "data.answer_extractor", _not_offered(task, data.answer_extractor, offered, "extractor"))
        exact = spec.metric_choices[0].name if spec.metric_choices else None
        if data.metric not in (None, exact):
            fail(origin, "data.answer_extractor", f"extracts answers for metric {exact}, not {data.metric}")
    if data.source.strip().startswith("builtin:"):
        from peftlab.data.procedural import FITTING_TARGETS, fitting_tasks, is_procedural

        if is_procedural(data.source) and spec.targets not in FITTING_TARGETS:
            fail(
                origin,
                "data.source",
                f"{data.source.strip()} is generated prompt/answer problems; task {task!r} cannot use it, "
                f"tasks it fits: {', '.join(fitting_tasks())}",
            )
    if data.choices_column is not None and spec.targets != "choices":
        choosing = ", ".join(n for n in names if get_task_spec(n).targets == "choices")
        fail(origin, "data.choices_column", f"task {task!r} has no choices; tasks with choices: {choosing}")
    if data.text_pair_column is not None and not spec.pairs:
        pairing = ", ".join(n for n in names if get_task_spec(n).pairs)
        fail(origin, "data.text_column", f"task {task!r} takes one text per example; sentence pairs: {pairing}")


def _not_offered(task: str, value: str, offered: list[str], what: str) -> str:
    if not offered:
        return f"task {task!r} has no {what}; leave the key out (got {value!r})"
    return f"got {value!r}, task {task!r} offers: {', '.join(offered)}{closest(str(value), offered)}"


def _check_distributed(origin: str, train: TrainConfig, methods: list[MethodEntry], blocks: dict[str, Any]) -> None:
    """`train.distributed` (docs/distributed.md): a grid of runs, each on every process of the launch.

    A study (search, tuned protocol), an `init_from:` stage and forgetting probes (and their
    caches) are driven by one process. FSDP shards what trains, so it excludes quantised bases
    (4-bit storage is not sharded here) and per-step hooks that read whole gradients (AdaLoRA).
    """
    if train.distributed is None:
        return
    for name, block in blocks.items():
        if block:
            fail(origin, "train.distributed", f"not with a {name}: block; use it on a grid of runs")
    if train.distributed == "fsdp":
        for i, entry in enumerate(methods):
            if not get_method_spec(entry.method).fsdp:
                fail(origin, f"methods[{i}]", f"method {entry.method!r} cannot be sharded by fsdp; use ddp")


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> Experiment:
    path = Path(path)
    origin = str(path)
    if not path.is_file():
        raise ConfigError(f"{origin}: no such experiment file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{origin}: not valid YAML{where}: {problem}") from None
    raw = copy.deepcopy(raw) if isinstance(raw, dict) else raw
    if isinstance(raw, dict):
        for override in overrides or []:
            apply_override(raw, override, origin)
    experiment = parse_experiment(raw, origin)
    experiment.source_path = path.resolve()
    return experiment
