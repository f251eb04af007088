"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, pg_ctl start on a free port, stop.

Debian's `postgresql` package puts its binaries in /usr/lib/postgresql/<version>/bin. Where none
is found, the server is installed with apt only when this process is root and apt-get exists
(a fresh CI machine), with a time limit; otherwise the caller skips with `why_missing`'s reason.
PostgreSQL refuses to run as root, so as root the server runs as `nobody` (runuser), in a
folder that user owns. The role has a password on purpose: the tests check it never leaks.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "peftlab", "pg-s3cret-word"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb and pg_ctl, else the ones on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def install_with_apt() -> str | None:
    """Try `apt-get install postgresql` (root only); None on success, else why not."""
    from apt_install import apt_install

    return apt_install(["postgresql"], lambda: find_bin_dir() is not None)


def bin_dir_or_reason() -> tuple[Path | None, str]:
    bin_dir = find_bin_dir()
    if bin_dir is not None:
        return bin_dir, ""
    why = install_with_apt()
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return None, f"no PostgreSQL server binaries (initdb, pg_ctl) found or installable: {why}"
    return bin_dir, ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path  # the server's folder: data/, its socket, its log
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # postgres refuses root: run it as nobody, who owns self.root
            command = ["runuser", "-u", "nobody", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)

    def start(self) -> PostgresServer:
        (self.root / "pw").write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "nobody")
            shutil.chown(self.root / "pw", "nobody")
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", USER, f"--pwfile={self.root / 'pw'}", "--auth=scram-sha-256")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "log"), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    """A running server in a fresh folder under the system temp dir (reachable by `nobody`, unlike tmp_path)."""
    bin_dir, why = bin_dir_or_reason()
    if bin_dir is None:
        raise RuntimeError(why)
    root = Path(tempfile.mkdtemp(prefix="peftlab-pg-"))
    root.chmod(0o755)
    return PostgresServer(bin_dir, root, _free_port()).start()
