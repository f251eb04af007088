"""`peftlab export RUN --adapter OUT [--push REPO_ID]` / `--merge OUT`: a run's adapter, ready for others.

`--adapter OUT` writes a hub-layout folder: the adapter (`adapter_config.json` naming the base
model by its hub id, or the user's own id or path as given, never this machine's path), a model
card written from the record (reporting/cards.py: `huggingface_hub`'s `ModelCard` with the
metrics as `EvalResult`s) and the record itself. `--push REPO_ID` uploads that folder in one
commit with `huggingface_hub`, when online and a token is set; otherwise one line, exit 2, and
nothing is uploaded.

`--merge OUT` is the deployment step of the LoRA tutorials (`merge_and_unload`): load the run's
base model as the run loaded it (same source, same task head), attach the adapter the run saved
under `results/<experiment>/adapters/<run_id>/`, fold the low-rank (or IA3) update into the
weights, and save a plain transformers folder with the tokenizer, which loads without peft.

RUN is a run id (looked up under `results/*/runs/`), the path of a run record, or `best`: the
significantly best method's best seed, by the report's own rule (the method marked best on the
task's primary test metric: ahead of every other, intersection–union at α = 0.05), the reason
written on the card.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from peftlab.errors import UserError
from peftlab.records.results import publish_dir

if TYPE_CHECKING:
    from peftlab.records.record import RunRecord

MERGEABLE = ("LORA", "ADALORA", "IA3")  # peft types whose update is a change of the weights (DoRA is LORA)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def find_record(run: str, results_root: Path) -> Path:
    """The record file named by `run`: a path to a record, or a run id under `<results_root>/*/runs/`."""
    path = Path(run).expanduser()
    if path.suffix == ".json":
        if not path.is_file():
            raise UserError(f"{run}: no such run record")
        return path
    matches = sorted(results_root.glob(f"*/runs/{run}.json"))
    if not matches:
        raise UserError(f"run {run!r}: no record under {results_root}/*/runs/; give the record's path or --results DIR")
    if len(matches) > 1:
        raise UserError(f"run {run!r}: found in several experiments ({', '.join(map(str, matches))}); give the path")
    return matches[0]


def saved_adapter(record: RunRecord) -> Path:
    """The run's saved adapter folder, or a one-line reason why the run has none (UserError)."""
    from peftlab.method_specs import get_method_spec, method_names
    from peftlab.records.record import Artifacts

    name, run_id = record.method or "", record.run_id
    # its declaration (no peft needed), a built-in's or a plugin's; None: a plugin not installed here
    method = get_method_spec(name) if name in method_names() else None
    if record.status != "ok":
        raise UserError(f"run {run_id}: status {record.status}, not ok; nothing to export")
    if method is not None and not method.trains:
        raise UserError(f"run {run_id}: method {name} trains nothing; the base model is {record.model.spec}")
    artifacts = record.artifacts or Artifacts()
    if method is not None and method.full_model:
        where = artifacts.full_model
        hint = f"it is already a standalone model folder: {where}" if where else "set save.full_models: true to keep it"
        raise UserError(f"run {run_id}: {name} fine-tunes the whole model, there is no adapter; {hint}")
    adapter = artifacts.adapter
    if not adapter or not (Path(adapter) / "adapter_config.json").is_file():
        raise UserError(f"run {run_id}: no saved adapter (save.adapters was off, or {adapter} was moved)")
    return Path(adapter)


def _adapter_dir(record: RunRecord) -> Path:
    """The run's saved adapter when it is a weight update that merges, or a one-line reason why not."""
    adapter = saved_adapter(record)
    peft_type = json.loads((adapter / "adapter_config.json").read_text()).get("peft_type")
    if peft_type not in MERGEABLE:
        raise UserError(
            f"run {record.run_id}: a {record.method} adapter ({peft_type}) is a learned prompt fed with the "
            f"input, not a weight update: nothing to merge; load it with "
            f"peft.PeftModel.from_pretrained(base, '{adapter}') instead"
        )
    return adapter


def load_adapted(record: RunRecord, adapter: Path) -> tuple[Any, Any]:
    """(base model + adapter as a PeftModel, tokenizer), loaded in full precision as the run's task loads it."""
    from peft import PeftModel

    from peftlab.runtime.models import ModelSource, load_tokenizer, quiet_transformers, resolve_model_source
    from peftlab.tasks import get_task

    quiet_transformers()
    model = record.model
    experiment_file = record.config.get("experiment_file")  # the resolved config is a mapping by nature
    dirs = [Path.cwd()] + ([Path(experiment_file).parent] if experiment_file else [])
    if model.location and Path(model.location).is_dir():  # where the run found it (a builtin's cache, a folder)
        source = ModelSource(model.spec or "", model.kind or "", model.location, model.origin)
    else:
        source = resolve_model_source(model.spec or "", dirs)
    tokenizer = load_tokenizer(source)
    task = get_task(record.task.name or "classification")
    data = SimpleNamespace(label_names=tuple(record.data.label_names or ()))
    base = task.load_model(source, data, {}, tokenizer.pad_token_id)
    return PeftModel.from_pretrained(base, str(adapter)), tokenizer


def merge_run(record_file: Path, out: Path) -> Path:
    """Merge the run's adapter and save model + tokenizer to `out` (atomically: all or nothing)."""
    from peftlab.records.results import RecordError, read_record

    try:
        record = read_record(record_file)
    except RecordError as err:
        raise UserError(str(err)) from None
    adapter = _adapter_dir(record)
    out = out.expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--merge {out}: exists and is not an empty folder; choose a new one")
    adapted, tokenizer = load_adapted(record, adapter)
    merged = adapted.merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        provenance = {
            "run_id": record.run_id,
            "experiment": record.experiment,
            "method": record.method,
            "base_model": record.at("model"),
            "adapter": str(adapter),
            "record": str(record_file.resolve()),
        }
        (tmp / "peftlab-export.json").write_text(json.dumps(provenance, indent=2) + "\n")
        publish_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if record.method == "qlora":
        print(
            "peftlab.cli.export: note: the adapter was trained on a 4-bit base and is merged into the full-precision "
            "base, so outputs differ slightly from the run's own (quantised) model",
            file=sys.stderr,
        )
    return out


def experiment_summary(results_dir: Path) -> Any:
    """The report's summary of one experiment folder (the same statistics the tables show), quietly."""
    from peftlab.cli.report import compare_records

    compared = compare_records([results_dir], log=lambda _: None)
    if compared is None:
        raise UserError(f"{results_dir}: no run records")
    return compared


def choose_best(results_dir: Path) -> tuple[Path, str]:
    """(record file, reason): the significantly best method's best seed, by the report's own rule.

    The method is the summary's row marked `best` on the task's primary test metric (ahead of
    every other method, intersection–union at α = 0.05, docs/statistics.md); none marked is a
    UserError naming the tie set. Its seed: the ok run with a saved adapter whose own test score is
    best (the lowest seed on a tie).
    """
    compared = experiment_summary(results_dir)
    summary = compared.summary
    primary = str(summary["primary_metric"].dropna().iloc[0]) if "primary_metric" in summary else "accuracy"
    direction = str(summary["primary_direction"].dropna().iloc[0]) if "primary_direction" in summary else "max"
    mark = f"test_{primary}_mark"
    marked = summary[summary[mark] == "best"] if mark in summary else summary.iloc[0:0]
    if marked.empty:
        tied = summary[summary[mark] == "tied"]["method"].tolist() if mark in summary else []
        raise UserError(
            f"{results_dir}: no method is significantly best on test {primary} (tied: {', '.join(tied) or 'n/a'}); "
            "export a run id instead"
        )
    row = marked.iloc[0].to_dict()
    runs = [
        r
        for r in compared.records
        if r.status == "ok"
        and r.experiment == row["experiment"]
        and str(r.label) == str(row["method"]).split(" (")[0]
        and r.artifacts is not None
        and r.artifacts.adapter
    ]
    if not runs:
        raise UserError(f"{results_dir}: the best method, {row['method']}, has no run with a saved adapter")
    sign = -1 if direction == "max" else 1

    def score(record: RunRecord) -> Any:
        return (record.metrics.test or {}).get(primary)

    def key(record: RunRecord) -> tuple[float, int]:
        value = score(record)
        return (sign * float(value) if isinstance(value, (int, float)) else float("inf"), record.seed or 0)

    chosen = min(runs, key=key)
    value = score(chosen)
    seeds = ", ".join(f"seed {r.seed}: {score(r):.4g}" for r in sorted(runs, key=lambda r: r.seed or 0))
    reason = (
        f"`peftlab export best` chose it. {row['method']} is the method marked best on test {primary} in "
        f"{row['experiment']} by the report's rule: ahead of every other method, each pairwise test at α = 0.05 "
        f"(intersection–union; {row.get(f'test_{primary}_interval') or row.get(f'test_{primary}_question')}). "
        f"Of its {len(runs)} seed(s) ({seeds}), seed {chosen.seed} has the "
        f"{'highest' if direction == 'max' else 'lowest'} test {primary}, {value:.4g}."
    )
    from peftlab.records.results import record_path

    return record_path(results_dir, chosen.run_id), reason


def _method_row(record_file: Path, record: RunRecord) -> dict[str, Any] | None:
    """The report's summary row of the run's method (its interval and question), None when there is none."""
    try:
        summary = experiment_summary(record_file.parent.parent).summary
    except UserError:
        return None
    label = str(record.label)
    rows = summary[[str(m).split(" (")[0] == label for m in summary["method"]]]
    return rows.iloc[0].to_dict() if len(rows) else None


def check_push(repo_id: str) -> None:
    """Refuse `--push` (UserError, one line) before anything is written: offline, or no token."""
    from peftlab.runtime.hub import hub_reachable

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or not hub_reachable():
        raise UserError(f"--push {repo_id}: the Hugging Face hub cannot be reached (offline); nothing was uploaded")
    from huggingface_hub import get_token

    if not get_token():
        raise UserError(
            f"--push {repo_id}: no Hugging Face token (set HF_TOKEN or run `hf auth login`); nothing was uploaded"
        )


def write_adapter(record_file: Path, out: Path, reason: str | None = None) -> Path:
    """The run's adapter as a hub-layout folder at `out` (adapter, README.md model card, record.json), atomically."""
    from peftlab.records.results import read_record
    from peftlab.reporting.cards import base_model_name, model_card

    record = read_record(record_file)
    adapter = saved_adapter(record)
    out = out.expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--adapter {out}: exists and is not an empty folder; choose a new one")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base_model_name(record)  # adapters saved before it was portable
    card = model_card(record, config, _method_row(record_file, record), reason)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name in ADAPTER_FILES[1:]:
            if (adapter / name).is_file():
                shutil.copy2(adapter / name, tmp / name)
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        card.save(tmp / "README.md")
        (tmp / "record.json").write_text(json.dumps(record.as_json(), indent=2) + "\n")
        publish_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def push(folder: Path, repo_id: str) -> str:
    """Upload `folder` to the hub model repo `repo_id` in one commit (all files or none); the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="peftlab export"
    )
    return str(getattr(info, "commit_url", info))


def _results_dir(results: Path) -> Path:
    """The experiment folder `best` chooses in: `--results` itself, or the one experiment under it."""
    if (results / "runs").is_dir():
        return results
    found = sorted(p.parent for p in results.glob("*/runs"))
    if len(found) != 1:
        listed = ", ".join(map(str, found)) or "none"
        raise UserError(f"best: give the experiment with --results results/<experiment> (found: {listed})")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peftlab export", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run id (e.g. lora-s0-1a2b3c4d), path to its record .json, or best")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--merge", metavar="OUT", type=Path, help="folder to write the merged model")
    what.add_argument("--adapter", metavar="OUT", type=Path, help="hub-layout folder: adapter, model card, record")
    parser.add_argument("--push", metavar="REPO_ID", help="upload the adapter folder to this hub model repo")
    parser.add_argument(
        "--results", metavar="DIR", default=Path("results"), type=Path, help="default: results (best: the experiment)"
    )
    args = parser.parse_args(argv)
    if args.merge is None and args.adapter is None and args.push is None:
        parser.error("one of --merge OUT, --adapter OUT or --push REPO_ID is required")
    if args.merge is not None and args.push is not None:
        parser.error("--push uploads an adapter folder; it does not go with --merge")
    try:
        if args.push is not None:
            check_push(args.push)
        reason = None
        if args.run == "best":
            record_file, reason = choose_best(_results_dir(args.results))
        else:
            record_file = find_record(args.run, args.results)
        if args.merge is not None:
            out = merge_run(record_file, args.merge)
            print(f"peftlab export: merged model written to {out} (loads with transformers' from_pretrained alone)")
            return 0
        if args.adapter is not None:
            out = write_adapter(record_file, args.adapter, reason)
            print(f"peftlab export: adapter, model card and record written to {out}")
            if args.push is None:
                return 0
            print(f"peftlab export: pushed {push(out, args.push)}")
            return 0
        with tempfile.TemporaryDirectory(prefix="peftlab-push-") as tmp:
            out = write_adapter(record_file, Path(tmp) / "adapter", reason)
            print(f"peftlab export: pushed {push(out, args.push)}")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
