"""`peftlab dashboard` (issue 25): the experiment's study in optuna-dashboard, fetched through its HTTP API.

A real two-trial search writes its study to SQLite; `peftlab dashboard results/<name>` serves it
on 127.0.0.1 and prints the URL; the test reads `/api/studies` and the study's trials, then stops
the server. A journal file and a PostgreSQL storage (whose password must never be printed) are
served too; a folder with no study is one line, exit 2, and no file is created.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("optuna_dashboard")

REPO = Path(__file__).resolve().parents[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def _experiment(folder: Path, bert: Path, data: Path, extra: str, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: {bert}\ndata:\n  source: {data}\n  max_length: 32\n  validation_limit: 16\n"
        "  test_limit: 16\ntrain:\n  steps: 2\n  batch_size: 8\n  eval_every: 1\n  eval_batch_size: 16\n"
        f"seeds: [0]\noutput_dir: {folder / 'results'}\n{extra}methods:\n  - method: lora\n    lr: 1.0e-2\n"
    )
    return path


def test_the_dashboard_serves_a_searchs_study_and_stops(tmp_path, tiny_bert, tiny_dataset):
    from peftlab.cli.run import main

    search = "search: {sampler: random, trials: 2, space: {lora: {r: [2, 4]}}}\n"
    path = _experiment(tmp_path, tiny_bert, tiny_dataset, search, "searched")
    assert main([str(path), "-q", "--in-process"]) == 0
    folder = tmp_path / "results" / "searched"
    summary = json.loads((folder / "search.json").read_text())
    server = subprocess.Popen(
        [sys.executable, "-m", "peftlab.cli", "dashboard", str(folder), "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = server.stdout.readline().strip()
        assert first.startswith("optuna-dashboard: http://127.0.0.1:") and first.endswith("/dashboard/"), (
            first + server.stderr.read()
        )
        base = first.removeprefix("optuna-dashboard: ").removesuffix("/dashboard/")
        assert f"sqlite:///{folder / 'study.db'}" in server.stdout.readline()
        studies = _get(f"{base}/api/studies")["study_summaries"]
        (study,) = studies
        assert study["study_name"] == summary["study"]
        detail = _get(f"{base}/api/studies/{study['study_id']}")
        assert [t["state"] for t in detail["trials"]] == ["Complete", "Complete"]
        assert {p["name"] for t in detail["trials"] for p in t["params"]} >= {"r", "lr"}
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode is not None


def _serve(target: Path) -> tuple[str, list[str], object]:
    from peftlab.cli.dashboard import open_dashboard

    server, lines = open_dashboard(str(target), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", lines, server


def test_a_journal_study_in_the_results_folder_is_served(tmp_path):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    folder = tmp_path / "results" / "journaled"
    folder.mkdir(parents=True)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    study = optuna.create_study(storage=storage, study_name="journaled-abc", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=3)
    base, lines, server = _serve(folder)
    try:
        (summary,) = _get(f"{base}/api/studies")["study_summaries"]
        assert summary["study_name"] == "journaled-abc" and summary["directions"] == ["maximize"]
        assert len(_get(f"{base}/api/studies/{summary['study_id']}")["trials"]) == 3
        assert lines[1].startswith(f"  storage journal:{folder / 'study.journal'}")
    finally:
        server.shutdown()
        server.server_close()


def test_a_postgresql_study_is_served_and_its_password_never_printed(tmp_path, tiny_bert, tiny_dataset, capsys):
    pytest.importorskip("psycopg")
    sys.path.insert(0, str(Path(__file__).parent))
    from pg_server import PASSWORD, start_server

    try:
        pg = start_server()
    except RuntimeError as err:
        pytest.skip(str(err))
    try:
        import optuna

        from peftlab.cli.dashboard import main
        from peftlab.config import load_experiment
        from peftlab.planners.optuna_search import open_storage, study_name

        extra = f"search: {{trials: 2, storage: '{pg.url}', space: {{lora: {{r: [2, 4]}}}}}}\n"
        path = _experiment(tmp_path, tiny_bert, tiny_dataset, extra, "pg")
        name = study_name(load_experiment(path))
        study = optuna.create_study(storage=open_storage(pg.url), study_name=name)
        study.optimize(lambda trial: trial.suggest_int("r", 2, 4), n_trials=2)
        base, lines, server = _serve(path)
        try:
            (summary,) = _get(f"{base}/api/studies")["study_summaries"]
            assert summary["study_name"] == name
        finally:
            server.shutdown()
            server.server_close()
        shown = "\n".join(lines)
        assert PASSWORD not in shown and "peftlab:***@127.0.0.1" in shown
        wrong = _experiment(tmp_path, tiny_bert, tiny_dataset, extra.replace(PASSWORD, "not-it"), "pg")
        assert main([str(wrong), "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert "cannot open the study storage postgresql://peftlab:***@" in err and "not-it" not in err
        assert len(err.strip().splitlines()) == 1
    finally:
        pg.stop()


def test_a_folder_with_no_study_is_one_line_exit_2_nothing_created(tmp_path, capsys):
    from peftlab.cli.dashboard import main

    folder = tmp_path / "results" / "grid_only"
    (folder / "runs").mkdir(parents=True)
    assert main([str(folder), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {folder}: no Optuna study found")
    assert sorted(p.name for p in folder.iterdir()) == ["runs"]
    assert main([str(tmp_path / "nowhere"), "--port", "0"]) == 2
    assert "no such results folder" in capsys.readouterr().err
