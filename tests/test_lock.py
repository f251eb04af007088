"""The lock: the set-up installs exactly what was tested, and a lock that no longer matches
pyproject.toml stops the bootstrap with one line naming the command that refreshes it."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^ \\;]+)", re.M)


def _pins(path: Path) -> dict[str, str]:
    return {name.lower().replace("_", "-"): version for name, version in PIN.findall(path.read_text())}


def _copy_project(tmp_path: Path) -> Path:
    for part in ("scripts/lock.py", "pyproject.toml", "requirements.txt", "requirements"):
        src, dst = ROOT / part, tmp_path / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return tmp_path


def _check(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(project / "scripts" / "lock.py"), "check"], capture_output=True, text=True, timeout=60
    )


def test_the_committed_lock_matches_pyproject(tmp_path):
    assert _check(_copy_project(tmp_path)).returncode == 0


def test_a_lock_that_no_longer_matches_pyproject_is_one_line_naming_the_refresh(tmp_path):
    project = _copy_project(tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"tabulate>=0.9",', '"tabulate>=0.9",\n    "rich>=13",'))
    done = _check(project)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "requirements.txt does not match pyproject.toml" in lines[0]
    assert "make lock" in lines[0] and "Traceback" not in done.stderr


def test_a_missing_lock_is_one_line(tmp_path):
    project = _copy_project(tmp_path)
    (project / "requirements.txt").unlink()
    done = _check(project)
    assert done.returncode == 2 and "requirements.txt missing" in done.stderr and "make lock" in done.stderr


def test_every_pin_is_hashed_and_no_index_host_is_named():
    for path in [ROOT / "requirements.txt", *REQ.glob("*.txt")]:
        text = path.read_text()
        assert "://" not in text, f"{path.name} names an index or host"
        for block in re.split(r"\n(?=[A-Za-z0-9])", text):
            if PIN.match(block):
                assert "--hash=sha256:" in block, f"{path.name}: {block.splitlines()[0]} has no hash"


def test_the_lock_leaves_torch_to_the_user_and_holds_no_cuda_package():
    pins = _pins(ROOT / "requirements.txt")
    assert "torch" not in pins and "triton" not in pins
    assert not [name for name in pins if name.startswith("nvidia-")]
    assert pins["transformers"].startswith("5.") and "peft" in pins


def test_the_lock_satisfies_every_range_in_pyproject():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sys.path.insert(0, str(ROOT / "scripts"))
    import lock

    pins = _pins(ROOT / "requirements.txt")
    wanted = list(project["dependencies"])
    for extra in lock.EXTRAS:
        wanted += project["optional-dependencies"][extra]
    for text in wanted:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        if name == "torch":
            continue
        assert name in pins, f"{name} is in pyproject.toml but not in the lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req.specifier}"


def test_the_assets_lock_pins_exactly_the_builtin_asset_packages():
    from peftlab.cli.assets import requirements

    wanted = {r.split("==")[0].lower(): r.split("==")[1] for r in requirements()}
    assert _pins(REQ / "assets.txt") == wanted


def test_an_environment_made_by_the_bootstrap_has_exactly_the_locked_releases():
    from peftlab.records.environment import lock_digest

    if lock_digest() is None:
        pytest.skip("this environment was not installed from the lock (no peftlab-lock.sha256 in sys.prefix)")
    off = {}
    for name, version in _pins(ROOT / "requirements.txt").items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            off[name] = (version, None)
            continue
        if installed != version:
            off[name] = (version, installed)
    assert not off, f"installed releases differ from the lock (locked, installed): {off}; re-run make bootstrap"


def test_records_name_the_lock_they_were_made_with(tmp_path, monkeypatch):
    from peftlab.records import environment
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    environment.lock_digest.cache_clear()
    assert environment.lock_digest() is None  # an environment installed by hand
    (tmp_path / "peftlab-lock.sha256").write_text("0123456789abcdef\n")
    environment.lock_digest.cache_clear()
    assert environment.lock_digest() == "0123456789abcdef"
    environment.lock_digest.cache_clear()
