"""Config validation: every user mistake is one line naming the file, the key and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.config import load_experiment
from peftlab.errors import ConfigError
from peftlab.planners.grid import make_plan

BASE = """name: demo
model: builtin:minilm-l6
data:
  source: builtin:rotten_tomatoes
train:
  steps: 10
seeds: [0, 1]
methods:
  - method: full
    lr: 5e-5
  - method: lora
    r: 8
"""


@pytest.fixture
def yaml_file(tmp_path: Path):
    def make(text: str = BASE) -> Path:
        path = tmp_path / "exp.yaml"
        path.write_text(text)
        return path

    return make


def error_of(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_experiment(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_valid_file_loads_with_defaults_and_string_floats(yaml_file):
    exp = load_experiment(yaml_file())
    assert exp.train.steps == 10 and exp.train.batch_size == 32
    assert exp.methods[0].lr == 5e-5  # PyYAML reads 5e-5 as a string; it is accepted as a number
    assert exp.methods[1].params.r == 8 and exp.methods[1].lr == 1e-3  # lora's default lr


def test_unknown_key_suggests_closest(yaml_file):
    msg = error_of(yaml_file(BASE.replace("  steps: 10", "  stpes: 10")))
    assert "train.stpes: unknown key" in msg and "did you mean 'steps'" in msg


def test_unknown_top_level_key(yaml_file):
    msg = error_of(yaml_file(BASE + "sedes: [1]\n"))
    assert "sedes: unknown key" in msg and "'seeds'" in msg


def test_wrong_type_names_path_and_expected_type(yaml_file):
    msg = error_of(yaml_file(BASE.replace("steps: 10", "steps: ten")))
    assert "train.steps: got 'ten', expected an integer" in msg


def test_unknown_method_lists_registry_and_suggests(yaml_file):
    msg = error_of(yaml_file(BASE.replace("method: lora", "method: lorra")))
    assert "methods[1].method: unknown method 'lorra'" in msg
    assert "qlora" in msg and "prompt_tuning" in msg and "did you mean 'lora'" in msg


def test_unknown_method_hyperparameter(yaml_file):
    msg = error_of(yaml_file(BASE.replace("    r: 8", "    rank: 8")))
    assert "methods[1].rank: unknown key for method 'lora'" in msg and "r, alpha" in msg


def test_range_checks(yaml_file):
    assert "train.steps: got 0, must be at least 1" in error_of(yaml_file(BASE.replace("steps: 10", "steps: 0")))
    assert "methods[1].r: got 0" in error_of(yaml_file(BASE.replace("r: 8", "r: 0")))


def test_literal_choices(yaml_file):
    msg = error_of(yaml_file(BASE.replace("  steps: 10", "  steps: 10\n  scheduler: cosin")))
    assert "train.scheduler: got 'cosin', allowed: linear, cosine" in msg and "did you mean 'cosine'" in msg


def test_missing_required_and_bad_yaml(yaml_file, tmp_path):
    assert "model: required key is missing" in error_of(yaml_file(BASE.replace("model: builtin:minilm-l6\n", "")))
    assert "not valid YAML at line" in error_of(yaml_file("name: [unclosed\n"))
    assert "no such experiment file" in error_of(tmp_path / "absent.yaml")


def test_overrides_by_path_index_and_label(yaml_file):
    exp = load_experiment(yaml_file(), ["train.steps=3", "seeds=[7]", "methods.lora.r=16", "methods[0].lr=1e-4"])
    assert exp.train.steps == 3 and exp.seeds == [7]
    assert exp.methods[1].params.r == 16 and exp.methods[0].lr == 1e-4
    assert "train.stpes: unknown key" in error_of(yaml_file(), ["train.stpes=3"])
    assert "no entry 'lorra'" in error_of(yaml_file(), ["methods.lorra.r=4"])
    assert "expected key=value" in error_of(yaml_file(), ["train.steps"])


def test_plan_is_methods_times_grid_times_seeds_with_stable_ids(yaml_file):
    text = BASE.replace("    r: 8", "    grid:\n      r: [4, 8, 16]")
    exp = load_experiment(yaml_file(text))
    plan = make_plan(exp)
    assert len(plan) == (1 + 3) * 2
    assert {s.label for s in plan} == {"full", "lora[r=4]", "lora[r=8]", "lora[r=16]"}
    assert [s.run_id for s in make_plan(load_experiment(yaml_file(text)))] == [s.run_id for s in plan]
    changed = make_plan(load_experiment(yaml_file(text), ["train.steps=11"]))
    assert not {s.run_id for s in changed} & {s.run_id for s in plan}  # a change never reuses a record
    assert "methods[1].grid.rank: not a hyperparameter" in error_of(
        yaml_file(BASE.replace("    r: 8", "    grid:\n      rank: [4]"))
    )


def test_duplicate_labels_rejected(yaml_file):
    msg = error_of(yaml_file(BASE + "  - method: lora\n"))
    assert "label 'lora' is used twice" in msg


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "peftlab.run", *args], capture_output=True, text=True, timeout=120)


def test_cli_user_error_is_one_line_exit_2(yaml_file):
    result = _run_cli(str(yaml_file(BASE.replace("method: lora", "method: lorra"))))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "did you mean 'lora'" in lines[0]
    assert "Traceback" not in result.stderr


def test_dry_run_prints_plan_without_importing_torch(yaml_file):
    path = yaml_file()
    code = (
        "import sys\nfrom peftlab.cli.run import main\n"
        f"rc = main([{str(path)!r}, '--dry-run', 'seeds=[0,1,2]'])\n"
        "assert rc == 0, rc\nassert 'torch' not in sys.modules, 'dry run imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "6 runs" in result.stdout
    assert result.stdout.count("seed=") == 6 and "lora" in result.stdout and "lr=5e-05" in result.stdout


def test_report_reference_must_name_a_method(yaml_file):
    assert load_experiment(yaml_file(BASE + "report:\n  reference: lora\n")).report.reference == "lora"
    assert load_experiment(yaml_file(BASE)).report.reference is None  # default: full, else the first
    msg = error_of(yaml_file(BASE + "report:\n  reference: lorra\n"))
    assert "report.reference: got 'lorra', not a method label; allowed: full, lora" in msg


def test_run_ids_of_a_shipped_experiment_are_unchanged():
    """Run ids hash what a run computes (method params, lr, train, data): moving code must not move them,
    or every finished record would be run again. These are experiments/bert_cls.yaml's ids on CPU."""
    root = Path(__file__).resolve().parents[1]
    exp = load_experiment(root / "experiments" / "bert_cls.yaml", ["train.device=cpu"])
    ids = sorted({s.run_id.replace("-s0-", "-").replace("-s1-", "-").replace("-s2-", "-") for s in make_plan(exp)})
    assert ids == [
        "full-cca34ec6",
        "lora-56782b8f",
        "prefix_tuning-2fc34cd5",
        "prompt_tuning-89b1822b",
        "qlora-3469ad96",
    ]


def test_the_experiment_fields_are_listed_once():
    """`Experiment` is the one list: the YAML's top-level keys and `as_dict` follow it, and the schema's
    plain part (everything without its own parser) is built from it."""
    import dataclasses

    from peftlab.config import experiment as module

    names = [f.name for f in dataclasses.fields(module.Experiment) if f.name != "source_path"]
    assert names == module._TOP_KEYS
    assert (
        list(load_experiment(Path(__file__).resolve().parents[1] / "experiments" / "bert_cls.yaml").as_dict()) == names
    )
    shell = {f.name for f in dataclasses.fields(module._ExperimentShell)}
    assert shell | module._PARTS == set(names) and not shell & module._PARTS


def test_a_data_key_added_later_leaves_run_ids_alone_while_unset(yaml_file):
    """Keys marked ADDED_LATER are left out of a run's identity while null, and named once set."""
    from peftlab.config import computed_config

    exp = load_experiment(yaml_file())
    assert "metric" not in computed_config(exp)["data"] and "distributed" not in computed_config(exp)["train"]
    assert computed_config(load_experiment(yaml_file(), ["train.distributed=ddp"]))["train"]["distributed"] == "ddp"


@pytest.mark.parametrize(
    ("section", "item", "expected"),
    [
        ("methods", "[{r: 8}]", "methods[0].method: required key is missing; allowed methods: "),
        ("methods", "[[lora]]", "methods[0]: got ['lora'], expected a method name or a mapping with a 'method' key"),
        ("loggers", "[tensorbord]", "loggers[0].logger: unknown logger 'tensorbord'; allowed: mlflow, tensorboard"),
        ("forgetting", "[{probe: [a]}]", "forgetting[0].probe: unknown probe ['a']; allowed: "),
        ("forgetting", "[{linear_prob: {}}]", "forgetting[0].probe: required key is missing; allowed probes: "),
    ],
)
def test_every_kind_list_reads_a_name_or_a_mapping_with_its_kind_key(yaml_file, section, item, expected):
    text = BASE if section != "methods" else BASE[: BASE.index("methods:")]
    assert expected in error_of(yaml_file(f"{text}{section}: {item}\n"))
