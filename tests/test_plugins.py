"""Methods, tasks and probes from the user's own code (peftlab/plugins.py).

The plugin package is examples/plugin (BitFit and a balanced-accuracy task), "installed" the way
pip leaves an editable install: a `*.dist-info` folder with its `entry_points.txt` on the path,
so `importlib.metadata` finds the entry points. End-to-end runs happen in a subprocess, so that
the plugins registered there never leak into this process's registries; the bad-input cases run
in-process with the registries restored afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.cli.run import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin"
REPO = Path(__file__).resolve().parents[1]


def install(site: Path, name: str, entry_points: dict[str, dict[str, str]]) -> Path:
    """What `pip install -e` leaves for importlib.metadata: METADATA and entry_points.txt in a dist-info."""
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    text = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()) for group, points in entry_points.items()
    )
    (info / "entry_points.txt").write_text(text)
    return site


def example_entry_points() -> dict[str, dict[str, str]]:
    """The entry points examples/plugin/pyproject.toml declares (read from it, so the test follows the file)."""
    import tomllib

    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    return project["entry-points"]


def experiment(tmp_path: Path, model: Path, data: Path, *, task: str, methods: str, extra: str = "") -> Path:
    path = tmp_path / "exp" / "plugin.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        f"name: plugin\nmodel: {model}\ntask: {task}\ndata: {{source: {data}, max_length: 32}}\n"
        "train: {steps: 4, batch_size: 8, eval_every: 2, eval_batch_size: 16}\n"
        f"seeds: [0]\noutput_dir: {tmp_path / 'results'}\n{extra}methods:\n{methods}"
    )
    return path


def run_peftlab(args: list[str], pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*pythonpath, REPO])), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "peftlab.run", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def fresh_registries(monkeypatch: pytest.MonkeyPatch):
    """The method, task and probe registries and the plugin loader's memory, restored after the test."""
    import peftlab.config.probes as probes
    import peftlab.method_specs as method_specs
    import peftlab.methods.registry as methods
    import peftlab.plugins as plugins
    import peftlab.probes.base as probe_classes
    import peftlab.task_specs as task_specs

    for module, name in (
        (methods, "REGISTRY"),
        (method_specs, "REGISTRY"),
        (probe_classes, "PROBES"),
        (task_specs, "REGISTRY"),
        (probes, "PROBE_KINDS"),
        (plugins, "_loaded_files"),
        (plugins, "_loaded_groups"),
    ):
        monkeypatch.setattr(module, name, type(getattr(module, name))(getattr(module, name)))
    plugins._loaded_groups.clear()  # the entry points of the path the test sets up are read again
    monkeypatch.setattr(sys, "path", list(sys.path))
    modules = set(sys.modules)
    yield
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def test_an_installed_method_and_task_run_end_to_end(tmp_path, tiny_bert, tiny_dataset):
    site = install(tmp_path / "site", "peftlab-demo", example_entry_points())
    methods = "  - {method: bitfit, lr: 1.0e-2}\n  - {method: lora, r: 2, lr: 1.0e-2}\n"
    exp = experiment(tmp_path, tiny_bert, tiny_dataset, task="balanced_classification", methods=methods)

    done = run_peftlab([str(exp), "--no-report", "-q"], [site, EXAMPLE], tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "plugin" / "runs").glob("*.json")]
    assert sorted(r["method"] for r in records) == ["bitfit", "lora"]
    for record in records:
        assert record["status"] == "ok", record.get("error")
        assert 0.0 <= record["metrics"]["test"]["balanced_accuracy"] <= 1.0  # the plugin task's own metric
        assert record["task"]["name"] == "balanced_classification"
    bitfit = next(r for r in records if r["method"] == "bitfit")
    lora = next(r for r in records if r["method"] == "lora")
    # only the biases and the head train: far fewer weights than every weight, and not LoRA's count
    assert 0 < bitfit["params"]["trainable"] < bitfit["params"]["total"] / 10
    assert bitfit["params"]["trainable"] != lora["params"]["trainable"]


def test_the_config_validates_a_plugin_without_torch(tmp_path, tiny_bert, tiny_dataset):
    """An entry point names the torch-free declaration: `--dry-run` stays instant, the task runtime unimported."""
    site = install(tmp_path / "site", "peftlab-demo", example_entry_points())
    exp = experiment(tmp_path, tiny_bert, tiny_dataset, task="balanced_classification", methods="  - bitfit\n")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\nfrom peftlab.config import load_experiment\n"
        f"e = load_experiment({str(exp)!r})\n"
        "print(e.task, e.methods[0].method, 'torch' in sys.modules, 'peftlab_demo.balanced_runtime' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [site, EXAMPLE, REPO]))}
    done = subprocess.run([sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["balanced_classification", "bitfit", "False", "False"]


INCLUDED_METHOD = """
from dataclasses import dataclass
from peftlab.method_specs import MethodSpec, register_method_spec
from peftlab.methods import Method, register

@dataclass
class HeadOnlyParams:
    pass

def _prepare(model, params, ctx):
    for name, weight in model.named_parameters():
        weight.requires_grad_(any(name.startswith(m + ".") for m in ctx.head_modules))
    return model

SPEC = register_method_spec(MethodSpec(name="head_only", summary="only the task head trains",
                                        params=HeadOnlyParams, default_lr=1e-2, runtime=__name__, full_model=True))
register(Method(SPEC, prepare=_prepare))
"""


def test_an_include_folder_adds_a_method(tmp_path, tiny_bert, tiny_dataset):
    """`include:` beside the experiment file: its files register before validation; the run uses them."""
    (tmp_path / "exp" / "mine").mkdir(parents=True)
    (tmp_path / "exp" / "mine" / "head_only.py").write_text(INCLUDED_METHOD)
    (tmp_path / "exp" / "mine" / "_helper.py").write_text("raise RuntimeError('a _ file is not imported')\n")
    exp = experiment(
        tmp_path, tiny_bert, tiny_dataset, task="classification", methods="  - head_only\n", extra="include: mine\n"
    )

    done = run_peftlab([str(exp), "--no-report", "-q"], [], tmp_path)  # cwd is not the file's folder

    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = (tmp_path / "results" / "plugin" / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["method"] == "head_only"
    hidden = json.loads((tiny_bert / "config.json").read_text())["hidden_size"]
    assert record["params"]["trainable"] == 2 * hidden + 2  # the fresh 2-class head alone


@pytest.mark.usefixtures("fresh_registries")
@pytest.mark.parametrize(
    ("module", "says"),
    [
        ("import peftlab_missing_dependency\n", "ModuleNotFoundError: No module named 'peftlab_missing_dependency'"),
        ("raise RuntimeError('broken on purpose')\n", "RuntimeError: broken on purpose"),
    ],
    ids=["missing-dependency", "raises"],
)
def test_a_plugin_that_fails_to_import_is_one_line_and_writes_nothing(
    tmp_path, experiment_file, capsys, monkeypatch, module, says
):
    (tmp_path / "site" / "broken_plugin").mkdir(parents=True)
    (tmp_path / "site" / "broken_plugin" / "__init__.py").write_text(module)
    monkeypatch.syspath_prepend(
        str(install(tmp_path / "site", "broken", {"peftlab.methods": {"mine": "broken_plugin"}}))
    )

    assert main([str(experiment_file())]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "plugin 'mine' (entry point peftlab.methods: mine = broken_plugin of broken)" in err[0] and says in err[0]
    assert not (tmp_path / "results").exists()


@pytest.mark.usefixtures("fresh_registries")
def test_a_plugin_whose_name_clashes_with_a_built_in_is_one_line(tmp_path, experiment_file, capsys, monkeypatch):
    clone = tmp_path / "site" / "lora_clone.py"
    clone.parent.mkdir(parents=True)
    clone.write_text(INCLUDED_METHOD.replace('name="head_only"', 'name="lora"'))
    monkeypatch.syspath_prepend(str(install(tmp_path / "site", "clone", {"peftlab.methods": {"lora": "lora_clone"}})))

    assert main([str(experiment_file())]) == 2

    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "entry point peftlab.methods: lora = lora_clone of clone" in line
    assert "method 'lora' is already registered by peftlab (built-in)" in line
    assert not (tmp_path / "results").exists()


@pytest.mark.usefixtures("fresh_registries")
def test_an_included_task_that_clashes_names_the_file(tmp_path, experiment_file, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "my_task.py").write_text(
        "import dataclasses\nfrom peftlab.task_specs import get_task_spec, register\n"
        "register(dataclasses.replace(get_task_spec('regression'), name='classification', runtime='mine_rt'))\n"
    )

    assert main([str(experiment_file(extra=f"include: [{tmp_path / 'mine'}]\n"))]) == 2

    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"include: {tmp_path / 'mine' / 'my_task.py'}" in line
    assert "task 'classification' is already registered by peftlab (built-in)" in line
    assert not (tmp_path / "results").exists()


@pytest.mark.usefixtures("fresh_registries")
def test_an_include_folder_that_is_not_there_names_the_key(tmp_path, experiment_file, capsys):
    assert main([str(experiment_file(extra="include: [nowhere]\n"))]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "include[0]" in line and "'nowhere', no such folder" in line


PROBE_DECLARATION = """
from dataclasses import dataclass
from peftlab.config.probes import ProbeKind, register_probe_kind

@dataclass
class NormParams:
    pass

register_probe_kind(ProbeKind("head_norm", NormParams, ("classification",), runtime="_head_norm_runtime"))
"""

PROBE_RUNTIME = """
from head_norm import NormParams
from peftlab.probes import Probe, register

@register
class HeadNorm(Probe):
    name = "head_norm"
    summary = "L2 norm of the weights outside the backbone; delta = after - before"
    params_type = NormParams
    tasks = ("classification",)
    score = "norm"
    better = "min"

    def load(self, tokenizer, base_dir):
        self.fingerprint = "none"

    def measure(self, model, run):
        import torch
        with torch.no_grad():
            head = [w.float().norm() ** 2 for n, w in model.named_parameters() if "classifier" in n]
            return {"norm": float(sum(head)) ** 0.5}
"""


@pytest.mark.usefixtures("fresh_registries")
def test_an_included_probe_is_validated_and_its_runtime_found_by_name(tmp_path, experiment_file):
    """The declaration is imported with the config; the measuring class only when the probes are loaded."""
    from peftlab.config import load_experiment
    from peftlab.probes.base import probe_class

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "head_norm.py").write_text(PROBE_DECLARATION)
    (tmp_path / "mine" / "_head_norm_runtime.py").write_text(PROBE_RUNTIME)
    exp = load_experiment(experiment_file(extra=f"include: {tmp_path / 'mine'}\nforgetting: [head_norm]\n"))

    assert [p.probe for p in exp.forgetting] == ["head_norm"]
    assert "_head_norm_runtime" not in sys.modules
    assert probe_class("head_norm").score == "norm"
    assert "_head_norm_runtime" in sys.modules
