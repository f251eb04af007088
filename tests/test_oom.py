"""The OOM evidence of a SIGKILLed run: the kernel's OOM-kill counters, read from /proc and the cgroup files."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from peftlab.runtime import oom


@pytest.fixture
def fake_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    cgroup.mkdir()
    monkeypatch.setattr(oom, "PROC", proc)
    monkeypatch.setattr(oom, "CGROUP_ROOT", cgroup)
    return proc, cgroup


def test_counters_of_vmstat_and_both_cgroup_versions_are_summed(fake_kernel: tuple[Path, Path]) -> None:
    proc, cgroup = fake_kernel
    (proc / "vmstat").write_text("nr_free_pages 5\noom_kill 2\n")
    (proc / "self" / "cgroup").write_text("4:memory:/job/7\n1:cpu:/\n0::/job/7\n")
    (cgroup / "memory" / "job" / "7").mkdir(parents=True)
    (cgroup / "memory" / "job" / "7" / "memory.oom_control").write_text("oom_kill_disable 0\noom_kill 1\n")
    (cgroup / "job" / "7").mkdir(parents=True)
    (cgroup / "job" / "7" / "memory.events").write_text("low 0\noom 3\noom_kill 3\n")
    assert oom.oom_kill_count() == 6


def test_no_readable_counter_is_none(fake_kernel: tuple[Path, Path]) -> None:
    assert oom.oom_kill_count() is None


def test_a_sigkill_is_oom_only_when_a_counter_rose(fake_kernel: tuple[Path, Path]) -> None:
    proc, _ = fake_kernel
    (proc / "vmstat").write_text("oom_kill 7\n")
    status, error = oom.killed_status(signal.SIGKILL, 7)
    assert status == "killed" and "did not rise" in error
    (proc / "vmstat").write_text("oom_kill 8\n")
    assert oom.killed_status(signal.SIGKILL, 7)[0] == "oom"
    assert oom.killed_status(signal.SIGTERM, 7)[0] == "failed"


def test_a_sigkill_with_unreadable_counters_is_killed(fake_kernel: tuple[Path, Path]) -> None:
    status, error = oom.killed_status(signal.SIGKILL, None)
    assert status == "killed" and "no OOM-kill counter is readable" in error
