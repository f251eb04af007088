"""The import rules of the architecture hold: config is a leaf, reports read records only, and so on.

The rules themselves are the `[tool.importlinter]` contracts in pyproject.toml; `lint-imports`
checks them statically (every import statement, lazy ones included). The subprocess test checks
the one rule that matters most at run time without that tool: loading and validating an
experiment never imports torch, so `--dry-run` and config errors stay instant.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str | None:
    """The `lint-imports` next to this Python (the venv's), else one on PATH."""
    here = Path(sys.executable).with_name("lint-imports")
    return str(here) if here.is_file() else shutil.which("lint-imports")


def test_import_contracts_are_kept():
    tool = _lint_imports()
    if tool is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]' installs it)")
    result = subprocess.run(
        [tool, "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_loading_an_experiment_imports_no_torch_and_no_runtime_module(tmp_path):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        "name: leaf\nmodel: builtin:tiny-bert\n"
        "methods: [{method: lora, r: 4}, full, qlora]\n"
        "search: {trials: 2, space: {lora: {r: [2, 4]}}}\n"
        "forgetting: [{probe: linear_probe}]\n"
    )
    code = (
        "import sys\n"
        "from peftlab.config import load_experiment\n"
        f"exp = load_experiment({str(experiment)!r}, ['train.steps=5'])\n"
        "assert exp.train.steps == 5 and exp.search is not None and exp.forgetting\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'optuna', 'datasets', 'sklearn') "
        "if m in sys.modules)\n"
        "runtime = sorted(m for m in sys.modules if m.startswith('peftlab.') and m.split('.')[1] not in "
        # task_specs, method_specs: the tasks' and methods' torch-free declarations (never methods/, their
        # runtime); library_noise: the package's logging-only filter; plugins: finds one's own methods,
        # tasks and probes (entry points, include: folders)
        "('config', 'method_specs', 'task_specs', 'errors', 'schema', 'data', 'library_noise', 'plugins'))\n"
        "print(','.join(heavy + runtime))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"loading a config imported {result.stdout.strip()}"


def _functions(paths: list[Path]) -> list[tuple[int, str]]:
    import ast

    out = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.name}"))
    return out


def test_the_run_path_reads_in_short_functions():
    """One run is a list of phases, not one long function; the loop itself (train.py) is the exception."""
    package = ROOT / "peftlab"
    paths = [package / "runtime" / "recipe.py", package / "cli" / "run.py", *(package / "execute").glob("*.py")]
    paths += [*(package / "planners").glob("*.py"), package / "runtime" / "stages.py"]
    long = sorted(f"{name} ({n} lines)" for n, name in _functions(paths) if n > 45)
    assert not long, f"functions longer than 45 lines in the run path: {', '.join(long)}"
    from peftlab.runtime.recipe import PHASES

    assert [p.__name__ for p in PHASES] == [
        "setup",
        "start_from",  # the model source: the experiment's model, or the init_from stage's (issue 15)
        "build",
        "probes_before",
        "train",
        "evaluate",
        "probes_after",
        "measure",
        "save",
    ]
