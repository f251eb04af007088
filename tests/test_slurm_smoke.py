"""A real single-node SLURM (slurm-wlm 22.05, munge, slurmdbd): `--launcher slurm` runs a grid through sbatch.

scripts/slurm_local.sh brings the daemons up on localhost (installing the Debian packages when
this runs as root with apt); scripts/slurm_smoke.sh submits a 6-run grid as a 2-task job array,
waits for it, checks every record exactly once and prints the `sacct` lines. Where SLURM cannot
be brought up, the test skips and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("munged", "slurmctld", "slurmd", "slurmdbd", "sbatch", "mariadbd")
INSTALL_TIMEOUT_S = 600

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def bring_up_slurm() -> str | None:
    """Start the single-node SLURM; None when it is up, else why not (the skip reason)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None and not Path("/usr/sbin", tool).is_file()]
    can_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if missing and not can_install:
        return f"SLURM is not installed ({', '.join(missing)} missing) and apt-get install needs root and apt"
    command = [str(ROOT / "scripts" / "slurm_local.sh"), *(["--install"] if missing else [])]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"scripts/slurm_local.sh did not bring SLURM up within {INSTALL_TIMEOUT_S} s"
    if result.returncode != 0:
        why = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return f"scripts/slurm_local.sh could not bring SLURM up: {why}"
    return None


SIX_RUNS = "  - method: lora\n    lr: 1.0e-2\n    grid: {r: [2, 4, 8]}\n"


def slurm_is_up() -> bool:
    conf = Path(os.environ.get("PEFTLAB_SLURM_DIR", "/tmp/peftlab-slurm")) / "slurm.conf"
    if shutil.which("scontrol") is None or not conf.is_file():
        return False
    ping = subprocess.run(
        ["scontrol", "ping"], capture_output=True, text=True, env={**os.environ, "SLURM_CONF": str(conf)}
    )
    return "UP" in ping.stdout


def test_a_grid_through_a_real_slurm_gives_every_record_exactly_once(experiment_file, tmp_path, request):
    os.environ["PATH"] = f"{os.environ.get('PATH', '')}:/usr/sbin"  # daemons live in sbin
    if not slurm_is_up():  # started here: stopped again afterwards
        stop = [str(ROOT / "scripts" / "slurm_local.sh"), "--stop"]
        request.addfinalizer(lambda: subprocess.run(stop, capture_output=True, timeout=60))
    reason = bring_up_slurm()
    if reason is not None:
        pytest.skip(reason)
    path = experiment_file(SIX_RUNS, steps=2, seeds="[0, 1]", extra="launcher:\n  tasks: 2\n  time: 10\n")
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [str(ROOT / "scripts" / "slurm_smoke.sh"), str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    print(result.stdout)  # the sacct lines, for the log
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "slurm_smoke: 6 planned runs, 6 records, each made exactly once, all ok" in result.stdout
    sacct = result.stdout.split("slurm_smoke: sacct -j", 1)[1]
    array_tasks = [line.split() for line in sacct.splitlines() if line.strip().split(" ")[0].endswith(("_0", "_1"))]
    assert len(array_tasks) == 2 and all("COMPLETED" in task for task in array_tasks), sacct
