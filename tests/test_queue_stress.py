"""The queue's stress check (scripts/queue_stress.py): the bad-input line here, the 50 repetitions under `stress`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "queue_stress.py"


def test_an_unreachable_storage_is_one_line_exit_2_and_nothing_written(tmp_path):
    url = "postgresql://peftlab:pw-secret@127.0.0.1:1/nothing"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--storage", url, "--reps", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("queue_stress: cannot open postgresql://peftlab:***@") and "pw-secret" not in line
    assert not list(tmp_path.iterdir())


@pytest.mark.stress
@pytest.mark.parametrize("storage", ["journal", "postgres"])
def test_fifty_kills_races_and_stalls_lose_and_duplicate_nothing(storage):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--storage", storage, "--reps", "50"],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count(" 0 duplicated, 0 lost, 0 torn") == 3
