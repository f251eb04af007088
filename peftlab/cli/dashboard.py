"""`peftlab dashboard results/<experiment>`: the experiment's Optuna study in optuna-dashboard, on 127.0.0.1.

The study is found where peftlab put it: `search.storage` or `queue.storage` of the experiment file
the records name (SQLite, a journal file or PostgreSQL), else the default files in the results
folder (`study.db`, `study.journal`, `queue.journal`). The first storage that holds a study is
served; its URL is shown with any password masked. A folder without a study is one line, exit 2,
and nothing is created (a storage file that does not exist is never opened, since opening one
makes it).

    peftlab dashboard results/lora_search                # http://127.0.0.1:8080/dashboard/
    peftlab dashboard experiments/lora_search.yaml --port 0   # a free port
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from peftlab.config.queue import redact
from peftlab.errors import UserError

DEFAULT_FILES = (("study.db", "sqlite:///{}"), ("study.journal", "journal:{}"), ("queue.journal", "journal:{}"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peftlab dashboard", description="open an experiment's Optuna study in optuna-dashboard"
    )
    parser.add_argument("target", help="results/<experiment> (or the experiment's YAML file)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        server, lines = open_dashboard(args.target, args.host, args.port)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def open_dashboard(target: str, host: str = "127.0.0.1", port: int = 8080) -> tuple[Any, list[str]]:
    """The dashboard's server (bound, not yet serving) and the lines that say where it is."""
    if _missing("optuna_dashboard"):
        raise UserError(
            "optuna-dashboard is not installed; pip install 'peftlab[dashboard]' (or: pip install optuna-dashboard)"
        )
    url, storage, studies = find_study(target)
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from optuna_dashboard import wsgi

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # no line per request on the terminal
            pass

    try:
        server = make_server(host, port, wsgi(storage), handler_class=Quiet)
    except OSError as err:
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({err.strerror or err})") from None
    shown = f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}: {', '.join(studies)}"
    address = f"http://{host}:{server.server_port}/dashboard/"
    return server, [f"optuna-dashboard: {address}", f"  storage {redact(url)} ({shown})", "  Ctrl-C to stop"]


def find_study(target: str) -> tuple[str, Any, list[str]]:
    """(storage URL, opened storage, study names) of the first candidate storage that holds a study."""
    path = Path(target)
    if not path.exists():
        raise UserError(f"{target}: no such results folder or experiment file")
    looked: list[str] = []
    for url in candidate_urls(path):
        looked.append(redact(url))
        storage = _open(url)
        if storage is None:
            continue
        names = [s.study_name for s in storage.get_all_studies()]
        if names:
            return url, storage, names
    where = "; ".join(looked) if looked else f"{', '.join(f for f, _ in DEFAULT_FILES)} (none there)"
    raise UserError(
        f"{target}: no Optuna study found (looked in {where}); a search: block or protocol: tuned makes one"
    )


def candidate_urls(path: Path) -> list[str]:
    """The experiment's own storages (from the YAML, or the one its records name), then the default files."""
    urls: list[str] = []
    if path.is_file():
        urls += _configured_urls(path)
    elif (experiment_file := _experiment_file_of(path)) is not None:
        with contextlib.suppress(
            UserError
        ):  # the file changed since (or needs an extra): the folder's files still count
            urls += _configured_urls(experiment_file)
    folder = path if path.is_dir() else _results_dir(path)
    if folder is not None:
        urls += [pattern.format(folder.resolve() / name) for name, pattern in DEFAULT_FILES]
    return list(dict.fromkeys(urls))


def _experiment_file_of(folder: Path) -> Path | None:
    """The experiment file the folder's records were made from, when it is still there."""
    from peftlab.records.results import RecordError, read_record

    for path in sorted((folder / "runs").glob("*.json")):
        try:
            named = read_record(path).config.get("experiment_file")  # the resolved config: a mapping
        except RecordError:
            continue
        if named and Path(named).is_file():
            return Path(named)
    return None


def _configured_urls(experiment_file: Path) -> list[str]:
    """The search's storage (a tuned protocol's studies share one), then the `--join` queue's."""
    from peftlab.config import load_experiment
    from peftlab.planners.optuna_search import storage_url
    from peftlab.planners.queue import queue_url
    from peftlab.planners.tuned import study_experiment

    experiment = load_experiment(experiment_file)
    urls = []
    if experiment.search is not None:
        urls.append(storage_url(experiment))
    elif experiment.protocol is not None:
        urls.append(storage_url(study_experiment(experiment, experiment.methods[0])))
    urls.append(queue_url(experiment))
    return urls


def _results_dir(experiment_file: Path) -> Path | None:
    from peftlab.config import load_experiment

    return load_experiment(experiment_file).results_dir()


def _open(url: str) -> Any:
    """The storage at `url`, or None for a local file that does not exist (opening would create it)."""
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix) and not Path(url.removeprefix(prefix)).is_file():
            return None
    from peftlab.planners.optuna_search import open_storage

    try:
        return open_storage(url)
    except Exception as err:  # an unreachable database, a wrong password: one line, masked
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot open the study storage {redact(url)}: {redact(first)}") from None


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


if __name__ == "__main__":
    sys.exit(main())
