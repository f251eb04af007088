"""`python -m peftlab.cli.export RUN --merge OUT/`: a run's adapter merged into its base model, saved standalone.

The deployment step of the LoRA tutorials (`merge_and_unload`): load the run's base model as the
run loaded it (same source, same task head), attach the adapter the run saved under
`results/<experiment>/adapters/<run_id>/`, fold the low-rank (or IA3) update into the weights,
and save a plain transformers folder with the tokenizer, which loads without peft. RUN is a run
id (looked up under `results/*/runs/`) or the path of a run record.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from peftlab.errors import UserError
from peftlab.records.results import publish_dir

MERGEABLE = ("LORA", "ADALORA", "IA3")  # peft types whose update is a change of the weights (DoRA is LORA)


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


def _adapter_dir(record: dict[str, Any]) -> Path:
    """The run's saved adapter, or a one-line reason why there is nothing to merge."""
    from peftlab.method_specs import get_method_spec, method_names

    name, run_id = record["method"], record["run_id"]
    # its declaration (no peft needed), a built-in's or a plugin's; None: a plugin not installed here
    method = get_method_spec(name) if name in method_names() else None
    if record.get("status") != "ok":
        raise UserError(f"run {run_id}: status {record.get('status')}, not ok; nothing to export")
    if method is not None and not method.trains:
        raise UserError(f"run {run_id}: method {name} trains nothing; the base model is {record['model']['spec']}")
    artifacts = record.get("artifacts") or {}
    if method is not None and method.full_model:
        where = artifacts.get("full_model")
        hint = f"it is already a standalone model folder: {where}" if where else "set save.full_models: true to keep it"
        raise UserError(f"run {run_id}: {name} fine-tunes the whole model, there is no adapter to merge; {hint}")
    adapter = artifacts.get("adapter")
    if not adapter or not (Path(adapter) / "adapter_config.json").is_file():
        raise UserError(f"run {run_id}: no saved adapter (save.adapters was off, or {adapter} was moved)")
    peft_type = json.loads((Path(adapter) / "adapter_config.json").read_text()).get("peft_type")
    if peft_type not in MERGEABLE:
        raise UserError(
            f"run {run_id}: a {name} adapter ({peft_type}) is a learned prompt fed with the input, not a weight "
            f"update: nothing to merge; load it with peft.PeftModel.from_pretrained(base, '{adapter}') instead"
        )
    return Path(adapter)


def load_adapted(record: dict[str, Any], adapter: Path) -> tuple[Any, Any]:
    """(base model + adapter as a PeftModel, tokenizer), loaded in full precision as the run's task loads it."""
    from peft import PeftModel

    from peftlab.runtime.models import ModelSource, load_tokenizer, quiet_transformers, resolve_model_source
    from peftlab.tasks import get_task

    quiet_transformers()
    model = record["model"]
    experiment_file = record["config"].get("experiment_file")
    dirs = [Path.cwd()] + ([Path(experiment_file).parent] if experiment_file else [])
    if Path(model["location"]).is_dir():  # where the run found it (a builtin's cache folder, a local folder)
        source = ModelSource(model["spec"], model["kind"], model["location"], model.get("origin"))
    else:
        source = resolve_model_source(model["spec"], dirs)
    tokenizer = load_tokenizer(source)
    task = get_task(record["config"].get("task", "classification"))
    data = SimpleNamespace(label_names=tuple(record["data"]["label_names"]))
    base = task.load_model(source, data, {}, tokenizer.pad_token_id)
    return PeftModel.from_pretrained(base, str(adapter)), tokenizer


def merge_run(record_file: Path, out: Path) -> Path:
    """Merge the run's adapter and save model + tokenizer to `out` (atomically: all or nothing)."""
    record = json.loads(record_file.read_text())
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
            "run_id": record["run_id"],
            "experiment": record["experiment"],
            "method": record["method"],
            "base_model": record["model"],
            "adapter": str(adapter),
            "record": str(record_file.resolve()),
        }
        (tmp / "peftlab-export.json").write_text(json.dumps(provenance, indent=2) + "\n")
        publish_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if record["method"] == "qlora":
        print(
            "peftlab.cli.export: note: the adapter was trained on a 4-bit base and is merged into the full-precision "
            "base, so outputs differ slightly from the run's own (quantised) model",
            file=sys.stderr,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peftlab.cli.export", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run id (e.g. lora-s0-1a2b3c4d) or path to its record .json")
    parser.add_argument("--merge", metavar="OUT", required=True, type=Path, help="folder to write the merged model")
    parser.add_argument("--results", metavar="DIR", default=Path("results"), type=Path, help="default: results")
    args = parser.parse_args(argv)
    try:
        out = merge_run(find_record(args.run, args.results), args.merge)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"peftlab.cli.export: merged model written to {out} (loads with transformers' from_pretrained alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
