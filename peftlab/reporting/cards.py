"""Cards written from records with huggingface_hub's own classes: an adapter's model card, a bundle's dataset card.

The metadata is `ModelCardData` / `DatasetCardData` (with `EvalResult`s for the model-index), so
the hub and `ModelCard.load` read it back as written; nothing here writes YAML by hand. Every
number on a card is read from the record, or from the report's summary row of the run's method
(the interval and the question it answers, docs/statistics.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PEFT_TASK_TYPES = {  # record's config.task -> the hub's task type (model-index `task.type`)
    "classification": "text-classification",
    "regression": "text-classification",
    "multiple_choice": "multiple-choice",
    "sft": "text-generation",
}


def base_model_name(record: dict[str, Any]) -> str:
    """The portable name of the run's base model: the hub id, or the user's own id or path as given."""
    model = record.get("model") or {}
    return str(model.get("hub_id") or model.get("spec") or model.get("location"))


def _hub_dataset(source: str | None) -> str | None:
    """The data source when it names a hub dataset (owner/name or name), else None (a builtin, a local file)."""
    if not source or source.startswith(("builtin:", "/", ".", "~")) or source.count("/") > 1 or "." in source:
        return None
    return source


def _declared_metrics(record: dict[str, Any]) -> tuple[str, ...]:
    """The metrics the run's task declares (task_specs): what the model-index reports, not speeds or counts."""
    from peftlab.task_specs import TaskChoice

    chosen = TaskChoice.from_block(record.get("task"))  # what config resolved for this run
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
    record: dict[str, Any],
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
    data = record.get("data") or {}
    task = (record.get("task") or {}).get("name") or "classification"  # the record's task block
    data_name = str(data.get("name") or data.get("source") or "data")
    test = (record.get("metrics") or {}).get("test") or {}
    hub_dataset = _hub_dataset(data.get("source"))
    evals = [
        EvalResult(
            task_type=PEFT_TASK_TYPES.get(task, task),
            dataset_type=hub_dataset or _dataset_type(data.get("source"), data_name),
            dataset_name=data_name,
            dataset_split="test",
            metric_type=name,
            metric_value=float(value),
        )
        for name, value in test.items()
        if _number(value) and name in _declared_metrics(record)
    ]
    label = record.get("label") or record.get("method")
    card_data = ModelCardData(
        base_model=base,
        base_model_relation="adapter",
        library_name="peft",
        datasets=[hub_dataset] if hub_dataset else None,
        eval_results=evals or None,
        model_name=f"{record.get('experiment')}/{record.get('run_id')}",
        pipeline_tag=PEFT_TASK_TYPES.get(task),
        tags=["peft", "peftlab", str(record.get("method")), f"base_model:adapter:{base}"],
    )
    body = [
        f"# {record.get('experiment')}: {label} adapter for {base}",
        "",
        f"A {record.get('method')} adapter of `{base}`, trained by peftlab (run `{record.get('run_id')}`, "
        f"seed {record.get('seed')}). Everything below is read from the run's record (`record.json`, beside "
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
    origin = (record.get("model") or {}).get("origin")
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


def _results(record: dict[str, Any], test: dict[str, Any], row: dict[str, Any] | None) -> list[str]:
    primary = (record.get("task") or {}).get("primary")
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


def _method(record: dict[str, Any], adapter_config: dict[str, Any]) -> list[str]:
    shown = {k: v for k, v in adapter_config.items() if v not in (None, {}, [], "") and k != "base_model_name_or_path"}
    return [
        "",
        "## Method",
        "",
        f"`{record.get('method')}` ({record.get('label')}), hyperparameters "
        f"`{json.dumps(record.get('hyperparameters') or {}, sort_keys=True, default=str)}`. "
        f"The peft config (`adapter_config.json`):",
        "",
        "```json",
        json.dumps(shown, indent=2, sort_keys=True, default=str),
        "```",
    ]


def _recipe(record: dict[str, Any]) -> list[str]:
    train = (record.get("config") or {}).get("train") or {}
    keys = ("steps", "batch_size", "grad_accum", "optimizer", "scheduler", "warmup_ratio", "weight_decay", "device")
    rows = [("seed", record.get("seed")), ("lr", (record.get("config") or {}).get("lr"))]
    rows += [(k, train[k]) for k in keys if k in train]
    return ["", "## Training recipe", "", "| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _costs(record: dict[str, Any]) -> list[str]:
    params = record.get("params") or {}
    memory = record.get("memory") or {}
    speed = record.get("speed") or {}
    size = record.get("size") or {}
    device = ((record.get("env") or {}).get("device") or {}).get("name")
    rows = [
        ("trainable parameters", f"{_fmt(params.get('trainable'))} ({_fmt(params.get('trainable_pct'), 3)}%)"),
        ("peak memory (MB)", _fmt(memory.get("peak_mb"))),
        ("training tokens/s", _fmt(speed.get("train_tokens_per_s"))),
        ("saved adapter (MB)", _fmt(size.get("saved_mb"))),
        ("device", device or "n/a"),
    ]
    return ["", "## Costs", "", "| cost | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _data(record: dict[str, Any]) -> list[str]:
    data = record.get("data") or {}
    sizes = ", ".join(f"{k} {v}" for k, v in (data.get("sizes") or {}).items())
    lines = [
        "",
        "## Data",
        "",
        f"{data.get('name') or data.get('source')} (source `{data.get('source')}`; {sizes}; "
        f"fingerprint `{data.get('fingerprint')}`).",
    ]
    if data.get("citation"):
        lines += ["", f"Citation: {data['citation']}"]
    return lines


def _environment(record: dict[str, Any]) -> list[str]:
    env = record.get("env") or {}
    versions = env.get("versions") or {}
    named = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    git = env.get("git") or {}
    commit = (git.get("sha") or git.get("commit")) if isinstance(git, dict) else None
    return [
        "",
        "## Environment",
        "",
        f"Lock `{env.get('lock') or 'none (installed by hand)'}`"
        + (f", peftlab commit `{commit}`" if commit else "")
        + f". Packages: {named or 'n/a'}.",
    ]


def dataset_card(records: list[dict[str, Any]], manifest: dict[str, Any]) -> Any:
    """A bundle's dataset card: what was run, where, with which lock, and how to load the two tables."""
    from collections import Counter

    from huggingface_hub import DatasetCard, DatasetCardData

    experiments = sorted({str(r.get("experiment")) for r in records})
    methods = Counter(str(r.get("label")) for r in records)
    statuses = Counter(str(r.get("status")) for r in records)
    devices = Counter(str(((r.get("env") or {}).get("device") or {}).get("name") or "unknown device") for r in records)
    locks = Counter(str((r.get("env") or {}).get("lock") or "none") for r in records)
    models = sorted({base_model_name(r) for r in records})
    data = sorted({str((r.get("data") or {}).get("name") or (r.get("data") or {}).get("source")) for r in records})
    citations = sorted({(r.get("data") or {}).get("citation") for r in records} - {None, ""})
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
