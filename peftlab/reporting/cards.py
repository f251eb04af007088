"""Cards written from records with huggingface_hub's own classes: an adapter's model card, a bundle's dataset card.

The metadata is `ModelCardData` / `DatasetCardData` (with `EvalResult`s for the model-index), so
the hub and `ModelCard.load` read it back as written; nothing here writes YAML by hand. Every
number on a card is read from the record, or from the report's summary row of the run's method
(the interval and the question it answers, docs/statistics.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peftlab.records.record import RunRecord

PEFT_TASK_TYPES = {  # record's config.task -> the hub's task type (model-index `task.type`)
    "classification": "text-classification",
    "regression": "text-classification",
    "multiple_choice": "multiple-choice",
    "sft": "text-generation",
}


def base_model_name(record: RunRecord) -> str:
    """The portable name of the run's base model: the hub id, or the user's own id or path as given."""
    return str(record.model.hub_id or record.model.spec or record.model.location)


def _hub_dataset(source: str | None) -> str | None:
    """The data source when it names a hub dataset (owner/name or name), else None (a builtin, a local file)."""
    if not source or source.startswith(("builtin:", "/", ".", "~")) or source.count("/") > 1 or "." in source:
        return None
    return source


def _declared_metrics(record: RunRecord) -> tuple[str, ...]:
    """The metrics the run's task declares (task_specs): what the model-index reports, not speeds or counts."""
    from peftlab.task_specs import TaskChoice

    chosen = TaskChoice.from_block(record.at("task"))  # what config resolved for this run
    if chosen is None:
        return ()
    try:
        return tuple(m.name for m in chosen.spec.metrics)
    except KeyError:  # a task this peftlab does not know: its chosen metric only
        return (chosen.metric,)


def _dataset_type(source: str | None, name: str) -> str:
    """The model-index dataset type of data that is not on the hub: a builtin's name, a local file's name."""
    if source and source.startswith("builtin:"):
        return source  # not the hub dataset of that name (a builtin's rows are its own: see the card's Data)
    return Path(source).name if source else name


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def model_card(
    record: RunRecord,
    adapter_config: dict[str, Any],
    summary_row: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Any:
    """The adapter's model card (a `huggingface_hub.ModelCard`): metadata and a body, both from the record.

    `summary_row`: the report's row of the run's method (its interval and question); `reason`:
    why this run was chosen (`peftlab export best`), written on the card.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    base = base_model_name(record)
    data = record.data
    task = record.task.name or "classification"
    data_name = str(data.name or data.source or "data")
    test = record.metrics.test or {}
    hub_dataset = _hub_dataset(data.source)
    evals = [
        EvalResult(
            task_type=PEFT_TASK_TYPES.get(task, task),
            dataset_type=hub_dataset or _dataset_type(data.source, data_name),
            dataset_name=data_name,
            dataset_split="test",
            metric_type=name,
            metric_value=float(value),
        )
        for name, value in test.items()
        if _number(value) and name in _declared_metrics(record)
    ]
    label = record.label or record.method
    card_data = ModelCardData(
        base_model=base,
        base_model_relation="adapter",
        library_name="peft",
        datasets=[hub_dataset] if hub_dataset else None,
        eval_results=evals or None,
        model_name=f"{record.experiment}/{record.run_id}",
        pipeline_tag=PEFT_TASK_TYPES.get(task),
        tags=["peft", "peftlab", str(record.method), f"base_model:adapter:{base}"],
    )
    body = [
        f"# {record.experiment}: {label} adapter for {base}",
        "",
        f"A {record.method} adapter of `{base}`, trained by peftlab (run `{record.run_id}`, "
        f"seed {record.seed}). Everything below is read from the run's record (`record.json`, beside "
        "this card).",
    ]
    if reason:
        body += ["", f"**Why this run:** {reason}"]
    body += ["", "## Load it", "", "```python", "from peft import PeftModel"]
    loader = "AutoModelForCausalLM" if task == "sft" else "AutoModelForSequenceClassification"
    body += [
        f"from transformers import {loader}",
        "",
        f'base = {loader}.from_pretrained("{base}")',
        'model = PeftModel.from_pretrained(base, "<this folder or repo id>")',
        "```",
    ]
    origin = record.model.origin
    if origin:
        body += ["", f"The run loaded these base weights from `{origin}`; the adapter names their hub repository."]
    body += _results(record, test, summary_row)
    body += _method(record, adapter_config)
    body += _recipe(record)
    body += _costs(record)
    body += _data(record)
    body += _environment(record)
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")
    return card


def _results(record: RunRecord, test: dict[str, Any], row: dict[str, Any] | None) -> list[str]:
    primary = record.task.primary
    lines = ["", "## Evaluation (test split)", "", "| metric | this run |", "|---|---|"]
    lines += [f"| {name} | {_fmt(value)} |" for name, value in test.items() if _number(value)]
    if row is not None and primary:
        name = f"test_{primary}"
        mean, low, high = row.get(f"{name}_mean"), row.get(f"{name}_low"), row.get(f"{name}_high")
        question = row.get(f"{name}_interval") or row.get(f"{name}_question")
        lines += [
            "",
            f"Its method, {row.get('method')}, over {row.get('runs_ok')} seed(s): test {primary} "
            f"{_fmt(mean)} [95% interval {_fmt(low)}, {_fmt(high)}]. The interval answers {question or 'n/a'} "
            "(peftlab's docs/statistics.md).",
        ]
        diff = row.get("vs_ref_diff")
        if row.get("reference") and row.get("reference") != row.get("method") and _number(diff) and diff == diff:
            lines.append(
                f"Paired against {row.get('reference')}: Δ {_fmt(row.get('vs_ref_diff'))} "
                f"[{_fmt(row.get('vs_ref_low'))}, {_fmt(row.get('vs_ref_high'))}], "
                f"Holm-adjusted p {_fmt(row.get('vs_ref_p_holm'))}."
            )
    return lines


def _method(record: RunRecord, adapter_config: dict[str, Any]) -> list[str]:
    shown = {k: v for k, v in adapter_config.items() if v not in (None, {}, [], "") and k != "base_model_name_or_path"}
    return [
        "",
        "## Method",
        "",
        f"`{record.method}` ({record.label}), hyperparameters "
        f"`{json.dumps(record.hyperparameters, sort_keys=True, default=str)}`. "
        f"The peft config (`adapter_config.json`):",
        "",
        "```json",
        json.dumps(shown, indent=2, sort_keys=True, default=str),
        "```",
    ]


def _recipe(record: RunRecord) -> list[str]:
    train = record.at("config.train") or {}  # the resolved config: a mapping by nature
    keys = ("steps", "batch_size", "grad_accum", "optimizer", "scheduler", "warmup_ratio", "weight_decay", "device")
    rows = [("seed", record.seed), ("lr", record.at("config.lr"))]
    rows += [(k, train[k]) for k in keys if k in train]
    return ["", "## Training recipe", "", "| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _costs(record: RunRecord) -> list[str]:
    params = record.params
    device = record.env.device.name if record.env.device is not None else None
    rows = [
        ("trainable parameters", f"{_fmt(params.trainable)} ({_fmt(params.trainable_pct, 3)}%)"),
        ("peak memory (MB)", _fmt(record.memory.peak_mb)),
        ("training tokens/s", _fmt(record.speed.train_tokens_per_s)),
        ("saved adapter (MB)", _fmt(record.size.saved_mb)),
        ("device", device or "n/a"),
    ]
    return ["", "## Costs", "", "| cost | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _data(record: RunRecord) -> list[str]:
    data = record.data
    sizes = ", ".join(f"{k} {v}" for k, v in data.sizes.items())
    lines = [
        "",
        "## Data",
        "",
        f"{data.name or data.source} (source `{data.source}`; {sizes}; fingerprint `{data.fingerprint}`).",
    ]
    if data.citation:
        lines += ["", f"Citation: {data.citation}"]
    return lines


def _environment(record: RunRecord) -> list[str]:
    env = record.env
    named = ", ".join(f"{k} {v}" for k, v in env.versions.items() if v)
    commit = env.git.sha if env.git is not None else None
    return [
        "",
        "## Environment",
        "",
        f"Lock `{env.lock or 'none (installed by hand)'}`"
        + (f", peftlab commit `{commit}`" if commit else "")
        + f". Packages: {named or 'n/a'}.",
    ]


def dataset_card(records: list[RunRecord], manifest: dict[str, Any]) -> Any:
    """A bundle's dataset card: what was run, where, with which lock, and how to load the two tables."""
    from collections import Counter

    from huggingface_hub import DatasetCard, DatasetCardData

    experiments = sorted({str(r.experiment) for r in records})
    methods = Counter(str(r.label) for r in records)
    statuses = Counter(r.status for r in records)
    devices = Counter(str((r.env.device.name if r.env.device else None) or "unknown device") for r in records)
    locks = Counter(str(r.env.lock or "none") for r in records)
    models = sorted({base_model_name(r) for r in records})
    data = sorted({str(r.data.name or r.data.source) for r in records})
    citations = sorted({r.data.citation for r in records} - {None, ""})
    card_data = DatasetCardData(
        pretty_name=f"peftlab results: {', '.join(experiments)}",
        tags=["peftlab", "peft", "evaluation-results"],
        configs=[
            {"config_name": "records", "data_files": "records.parquet", "default": True},
            {"config_name": "predictions", "data_files": "predictions.parquet"},
        ],
    )
    counted = ", ".join(f"{k} ({n})" for k, n in sorted(methods.items()))
    body = [
        f"# peftlab results: {', '.join(experiments)}",
        "",
        f"{manifest['runs']} runs ({', '.join(f'{k} {n}' for k, n in sorted(statuses.items()))}) of {counted}, "
        f"on {', '.join(models)}, scored on {'; '.join(data)}.",
        "",
        f"Where: {', '.join(f'{k} ({n} runs)' for k, n in sorted(devices.items()))}. "
        f"Lock: {', '.join(f'`{k}` ({n} runs)' for k, n in sorted(locks.items()))}.",
        "",
        "## Tables",
        "",
        "- `records.parquet`: one row per run; a column per record path (`metrics.test.accuracy`), and "
        "`record`, the whole run record as JSON.",
        f"- `predictions.parquet`: {manifest['prediction_rows']} rows, one per run × evaluated split × example "
        "(`experiment`, `run_id`, `split`, `id`, and the task's per-example outputs).",
        f"- Columns stored as JSON text: {json.dumps(manifest['json_columns'])}.",
        "",
        "```python",
        "from datasets import load_dataset",
        'runs = load_dataset("parquet", data_files="records.parquet", split="train")',
        'predictions = load_dataset("parquet", data_files="predictions.parquet", split="train")',
        "```",
        "",
        "`peftlab report <this folder>` reproduces the experiment's report from these tables.",
    ]
    if citations:
        body += ["", "## Data citation", "", *(f"- {c}" for c in citations)]
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")
