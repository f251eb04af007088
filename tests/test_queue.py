"""Scale-out on one host and many: --workers for every experiment, --devices, and --join on a shared queue.

The queue tests here use the journal file (no database); tests/test_postgres_queue.py runs the
same queue on a real PostgreSQL server with a worker killed mid-run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from peftlab.config import load_experiment
from peftlab.config.queue import redact
from peftlab.errors import ConfigError, UserError

GRID = "  - method: lora\n    lr: 1.0e-2\n    grid:\n      r: [1, 2]\n"  # × seeds [0, 1]: 4 runs


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "peftlab.run", *args], capture_output=True, text=True, timeout=timeout)


def records(results: Path) -> dict[str, dict]:
    import json

    return {p.stem: json.loads(p.read_text()) for p in (results / "runs").glob("*.json")}


# ---------------------------------------------------------------- config and secrets (no runs)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql://alice:s3cret@db:5432/peftlab", "s3cret"),
        ("postgresql+psycopg://alice:p%40ss:word@db/x?sslmode=require", "p%40ss:word"),
        ("cannot open mysql://u:hunter2@h/db: refused", "hunter2"),
        ("host=db user=alice password=s3cret dbname=x", "s3cret"),
        ("postgresql://db/x?user=alice&password=s3cret&sslmode=require", "s3cret"),
    ],
)
def test_redact_masks_every_password(text, secret):
    shown = redact(text)
    assert secret not in shown and "***" in shown
    assert "alice" in shown or "alice" not in text  # only the secret goes


def test_redact_leaves_urls_without_a_password_alone():
    for text in ("postgresql://alice@db/x", "journal:/shared/q.journal", "sqlite:////abs/study.db"):
        assert redact(text) == text


def test_the_queue_block_validates_with_one_line_errors(experiment_file):
    exp = load_experiment(experiment_file(extra="queue:\n  storage: journal\n  heartbeat_interval: 2\n"))
    assert exp.queue.storage == "journal" and exp.queue.grace_s == 4
    bad = [
        ("queue:\n  storag: journal\n", "queue.storag: unknown key"),
        ("queue:\n  storage: db.sqlite\n", "queue.storage: got 'db.sqlite'"),
        ("queue:\n  storage: postgres:/u:pw@h\n  x: 1\n", "queue.x: unknown key"),
        ("queue:\n  heartbeat_interval: 5\n  grace_period: 5\n", "queue.grace_period: got 5, must exceed"),
    ]
    for extra, message in bad:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            load_experiment(experiment_file(extra=extra))


def test_a_password_never_reaches_search_json_or_the_plan(experiment_file, capsys):
    from peftlab.cli.run import main

    url = "postgresql://alice:s3cret@db.invalid/peftlab"
    extra = f"search:\n  trials: 2\n  storage: {url}\n  space:\n    lora:\n      r: [1, 2]\n"
    exp = load_experiment(experiment_file(extra=extra))
    assert "s3cret" not in str(exp.search.as_dict()) and "s3cret" not in str(exp.as_dict())
    assert main([str(exp.source_path), "--dry-run"]) == 0
    assert "s3cret" not in capsys.readouterr().out


def test_an_unreachable_storage_is_one_line_naming_the_setting_and_writes_nothing(experiment_file, tmp_path, capsys):
    from peftlab.cli.run import main

    path = experiment_file(extra="queue:\n  storage: postgresql://alice:s3cret@127.0.0.1:1/peftlab\n")
    assert main([str(path), "--join", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "queue.storage: cannot open postgresql://alice:***@127.0.0.1:1/peftlab" in err
    assert "s3cret" not in err
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- devices (the GPU count is faked)


def test_devices_naming_a_missing_gpu_is_one_line_exit_2_and_writes_nothing(
    experiment_file, tmp_path, capsys, monkeypatch
):
    from peftlab.cli.run import main
    from peftlab.execute import devices

    monkeypatch.setattr(devices, "visible_gpu_count", lambda: 2)
    path = experiment_file(methods=GRID)
    assert main([str(path), "--devices", "0,5", "-q"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --devices: GPU 5 does not exist; this machine has GPUs 0-1\n"
    assert not (tmp_path / "results").exists()
    monkeypatch.setattr(devices, "visible_gpu_count", lambda: 0)
    assert main([str(path), "--devices", "0", "-q"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_each_worker_sees_only_its_gpu_and_k_workers_share_one(monkeypatch):
    from peftlab.execute.devices import pin_worker, plan_workers

    assert plan_workers(["0", "1"], 2, None) == 4 and plan_workers(None, 1, None) == 1
    with pytest.raises(UserError, match="gives 2 slots"):
        plan_workers(["0", "1"], 1, 3)
    with pytest.raises(UserError, match="needs --devices"):
        plan_workers(None, 2, None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    seen = []
    for worker in (1, 2, 3, 4):  # each worker is a fresh fork of the parent's environment
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        seen.append(pin_worker(["2", "3"], 2, worker))
    assert seen == ["2", "2", "3", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")  # the user's own mask: indices count within it
    assert pin_worker(["1"], 1, 1) == "6"
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"


# ---------------------------------------------------------------- the queue, without training


def _queue(experiment_file, extra: str = "") -> tuple:
    from peftlab.planners.queue import RunQueue

    exp = load_experiment(experiment_file(methods=GRID, seeds="[0, 1]", extra=extra))
    return exp, RunQueue(exp)


def _drain(queue) -> list[str]:
    made = []
    while (assignment := queue.next()) is not None:
        made.append(assignment.spec.run_id)
        queue.tell(assignment, {"status": "ok"})
    return made


def test_a_run_queued_by_joiners_starting_at_once_is_one_item_made_once(experiment_file):
    from peftlab.planners.queue import RunQueue, open_queue

    exp, first = _queue(experiment_file)
    assert "queued 4" in first.start()[0]
    assert "queued 0" in RunQueue(exp).start()[0]  # a second joiner: everything is queued already, nothing is added
    assert open_queue(exp).add(s.run_id for s in first.plan) == 0  # adding is idempotent: a key is one item
    made = _drain(first.for_worker(1))
    assert sorted(made) == sorted(s.run_id for s in first.plan)
    states = open_queue(exp).states()
    assert len(states) == 4 and all(s.done and s.history == [1] for s in states.values())


def test_a_silent_workers_run_is_taken_over_after_the_grace_period(experiment_file, monkeypatch):
    from peftlab.planners.heartbeat import HOST_ENV
    from peftlab.planners.queue import open_queue

    exp, queue = _queue(experiment_file, extra="queue:\n  heartbeat_interval: 1\n  grace_period: 2\n")
    queue.start()
    monkeypatch.setenv(HOST_ENV, "host-a")
    held = queue.next()  # host-a takes a run and falls silent (its heartbeat stops, its record never comes)
    queue._held[held.spec.run_id][1].stop()
    monkeypatch.setenv(HOST_ENV, "host-b")
    other = queue.for_worker(2)
    started = time.monotonic()
    made = _drain(other)
    assert time.monotonic() - started >= 2  # the other host waited out the grace period, then took it over
    assert sorted(made) == sorted(s.run_id for s in queue.plan)
    taken = open_queue(exp).states()[held.spec.run_id]
    assert taken.done and taken.attempt == 2 and taken.history == [2]  # the second attempt completed it
    # host-a comes back and reports its run: refused, the point was completed once, by host-b's attempt
    assert "taken over meanwhile" in queue.tell(held, {"status": "ok"})
    assert open_queue(exp).states()[held.spec.run_id].history == [2]


def test_a_popped_run_with_a_finished_record_is_told_not_run_again(experiment_file):
    from peftlab.records.results import write_record

    exp, queue = _queue(experiment_file)
    queue.start()
    write_record(exp.results_dir(), {"run_id": queue.plan[0].run_id, "status": "ok"})  # its worker died after it
    assert queue.plan[0].run_id not in _drain(queue.for_worker(1))


# ---------------------------------------------------------------- real runs (tiny model, 2 steps)


def _made(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "✓" in line or "✗" in line]


def test_two_workers_on_a_plain_grid_make_every_record_exactly_once(experiment_file, tmp_path):
    path = experiment_file(methods=GRID, steps=2, seeds="[0, 1]")
    result = run_cli(str(path), "-q", "--workers", "2", "--no-report")
    assert result.returncode == 0, result.stderr[-3000:]
    made = _made(result.stdout)
    assert len(made) == 4 and {line.split("]")[0] for line in made} == {"[w1", "[w2"}  # both worked
    recs = records(tmp_path / "results" / "tiny")
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs.values())
    assert "4 runs in" in result.stdout and "(4 ok)" in result.stdout  # the parent counts its workers' runs


def test_joiners_share_a_grid_through_a_journal_queue(experiment_file, tmp_path):
    """One joiner from the CLI, one through `join_experiment` (what a SLURM task calls): each run once."""
    path = experiment_file(methods=GRID, steps=2, seeds="[0]")
    code = (
        "import sys\nfrom peftlab.cli.join import join_experiment\n"
        f"sys.exit(join_experiment({str(path)!r}, ['train.steps=2', '-q']))\n"
    )
    function = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli = run_cli(str(path), "-q", "--join")
    out, err = function.communicate(timeout=300)
    assert cli.returncode == 0 and function.returncode == 0, cli.stderr[-2000:] + err[-2000:]
    made = _made(cli.stdout) + _made(out)
    assert len(made) == 2, cli.stdout + out
    assert "nothing left to take" in cli.stdout and "nothing left to take" in out
    recs = records(tmp_path / "results" / "tiny")
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs.values())
    assert (tmp_path / "results" / "tiny" / "queue.journal.points").is_file()
