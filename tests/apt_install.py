"""Install a Debian package a test needs, as a fresh CI machine would: root only, with a time limit.

A test that needs a real component (a PostgreSQL server, a browser) installs it itself where it
can, and otherwise skips with the reason this returns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

APT_TIMEOUT_S = 600


def apt_install(packages: list[str], installed: Callable[[], bool]) -> str | None:
    """Try `apt-get install -y PACKAGES` (then update and retry); None once `installed()`, else why not."""
    what = " ".join(packages)
    if os.geteuid() != 0:
        return f"not root, so {what} cannot be installed with apt-get"
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *packages]
    result = None
    for command in (install, ["apt-get", "update", "-q"], install):  # a stale package list: update, retry
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(command)}` took longer than {APT_TIMEOUT_S}s"
        if command is install and installed():
            return None
    return f"apt-get install {what} failed: {(result.stderr if result else '')[-200:]!r}"
