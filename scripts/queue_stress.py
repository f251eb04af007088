"""Exactly once, under stress: repeat the queue's hard scenarios many times with real worker processes.

    python scripts/queue_stress.py                      # 50 × each scenario, on a journal file and on PostgreSQL
    python scripts/queue_stress.py --reps 5 --storage journal
    python scripts/queue_stress.py --storage postgresql://user:pw@host/db

Scenarios (each repetition a fresh queue):
  kill   three workers posing as three hosts; one is SIGKILLed while it holds a point; another
         host takes the point over after the grace period.
  race   four workers racing on one grid of eight points, no kills.
  stall  a worker stops beating past the grace period while it holds a point, then comes back
         and reports it: its completion must be refused (the other host's attempt counts).
Workers are cheap (a sleep instead of training) but use the product's code paths: the point
store's claim / beat / complete (planners/points.py, as RunQueue does), the finished-record
check, and atomic record writes. Each repetition counts duplicated points (completed twice, or in
`race` run twice), lost points (never completed, or without a record) and torn records (a file
in runs/ that does not parse). Exit 0 only when every count is 0.

Storage `postgres` (the default's second half) starts a throwaway server (tests/pg_server.py;
installs PostgreSQL with apt when root). A storage that cannot be reached is one line, exit 2,
and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GRACE, INTERVAL = 1.0, 0.2  # seconds: short, so 50 kills take minutes, not hours


def _write_record(runs: Path, key: str, attempt: int, host: str) -> None:
    from peftlab.records.results import write_json_atomic

    write_json_atomic(runs / f"{key}.json", {"run_id": key, "status": "ok", "attempt": attempt, "host": host})


def worker(url: str, queue: str, host: str, out: str, work_s: float, stall: bool) -> None:
    """What RunQueue.next / tell do, with a sleep for the run."""
    os.environ["PEFTLAB_WORKER_HOST"] = host
    from peftlab.planners.heartbeat import worker_identity
    from peftlab.planners.points import PointBeat, open_points
    from peftlab.records.results import finished_record

    store, runs, log = open_points(url, queue, GRACE), Path(out) / "runs", Path(out) / "log"
    stalled = False
    while True:
        claim = store.claim(worker_identity())
        if claim is None:
            if not store.pending():
                break
            time.sleep(0.05)
            continue
        if finished_record(Path(out), claim.key) is not None:
            store.complete(claim, "ok")
            continue
        beat = PointBeat(store, claim, INTERVAL)
        with open(log, "a") as f:
            f.write(json.dumps({"ran": claim.key, "attempt": claim.attempt, "host": host}) + "\n")
        if stall and not stalled:  # a stop-the-world pause longer than the grace period, then back to work
            stalled = True
            beat.stop()
            time.sleep(GRACE * 2.5)
        else:
            time.sleep(work_s)
        _write_record(runs, claim.key, claim.attempt, host)
        beat.stop()
        won = store.complete(claim, "ok")
        with open(log, "a") as f:
            f.write(json.dumps({"completed": claim.key, "attempt": claim.attempt, "won": won, "host": host}) + "\n")
    store.close()


def one(url: str, scenario: str, base: Path) -> dict[str, int]:
    from peftlab.planners.points import open_points

    out = base / uuid.uuid4().hex[:8]
    (out / "runs").mkdir(parents=True)
    queue = f"stress-{out.name}"
    n_points = {"kill": 3, "race": 8, "stall": 3}[scenario]
    keys = [f"p{i}" for i in range(n_points)]
    store = open_points(url, queue, GRACE)
    store.add(keys)
    ctx = mp.get_context("fork")
    hosts = {"kill": ["a", "b", "c"], "race": ["a", "b", "c", "d"], "stall": ["staller", "b"]}[scenario]
    work = {"kill": 0.4, "race": 0.01, "stall": 0.2}[scenario]
    procs = {
        h: ctx.Process(target=worker, args=(url, queue, h, str(out), work, h == "staller"), daemon=False) for h in hosts
    }
    for host, p in procs.items():
        p.start()
        if host == "staller":  # the others start once it holds a point: every repetition stalls once
            deadline = time.monotonic() + 30
            while not any(s.holder for s in store.states().values()) and time.monotonic() < deadline:
                time.sleep(0.02)
    killed = None
    if scenario == "kill":
        deadline = time.monotonic() + 30
        while killed is None and time.monotonic() < deadline:
            for state in store.states().values():
                if state.holder and not (out / "runs" / f"{state.key}.json").exists():
                    host = state.holder["host"]
                    os.kill(procs[host].pid, signal.SIGKILL)
                    killed = host
                    break
            time.sleep(0.02)
    for p in procs.values():
        p.join(120)
        if p.is_alive():
            p.kill()
    states = store.states()
    store.close()
    lines = [json.loads(x) for x in (out / "log").read_text().splitlines()] if (out / "log").exists() else []
    won = {k: sum(1 for x in lines if x.get("completed") == k and x["won"]) for k in keys}
    ran = {k: sum(1 for x in lines if x.get("ran") == k) for k in keys}
    torn = 0
    for path in (out / "runs").glob("*.json"):
        try:
            json.loads(path.read_text())
        except ValueError:
            torn += 1
    recorded = {p.stem for p in (out / "runs").glob("*.json")}
    # a point completed in the queue counts once: by a worker's completion, or from its record (died after it)
    completions = {k: len(states[k].history) for k in keys}
    duplicated = sum(c > 1 for c in completions.values()) + sum(w > 1 for w in won.values())
    if scenario == "race":
        duplicated += sum(r > 1 for r in ran.values())  # no kills, no stalls: nothing is run twice
    lost = sum(not states[k].done or completions[k] != 1 or k not in recorded for k in keys)
    taken_over = sum(1 for x in lines if "completed" in x and not x["won"])
    return {
        "duplicated": duplicated,
        "lost": lost,
        "torn": torn,
        "killed": int(killed is not None),
        "refused": taken_over,
    }


def check_reachable(url: str) -> str | None:
    from peftlab.config.queue import redact
    from peftlab.planners.points import open_points

    if url.startswith("journal:"):
        return None
    try:
        open_points(url, "stress-probe", GRACE).close()
    except Exception as err:  # psycopg, sqlalchemy: the driver's first line says why
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"queue_stress: cannot open {redact(url)}: {redact(first)}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--storage", default="both", help="journal, postgres (a throwaway server), both, or a URL")
    parser.add_argument("--scenarios", default="kill,race,stall")
    args = parser.parse_args(argv)
    scenarios = args.scenarios.split(",")
    server = None
    storages: list[tuple[str, str | None]] = []
    if args.storage in ("journal", "both"):
        storages.append(("journal", None))
    if args.storage in ("postgres", "both"):
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_server import start_server

        try:
            server = start_server()
        except RuntimeError as err:
            print(f"queue_stress: postgres: {err}", file=sys.stderr)
            return 2
        storages.append(("postgres", server.url))
    if args.storage not in ("journal", "postgres", "both"):
        storages.append((args.storage.split(":", 1)[0], args.storage))
    for _, url in storages:
        if url is not None and (why := check_reachable(url)) is not None:
            print(why, file=sys.stderr)
            return 2
    failed = False
    try:
        with tempfile.TemporaryDirectory(prefix="peftlab-stress-") as tmp:
            for name, url in storages:
                for scenario in scenarios:
                    totals: dict[str, int] = {}
                    started = time.monotonic()
                    for rep in range(args.reps):
                        base = Path(tmp) / name / scenario / str(rep)
                        where = url or f"journal:{base / 'queue.journal'}"
                        for k, v in one(where, scenario, base).items():
                            totals[k] = totals.get(k, 0) + v
                    bad = totals["duplicated"] + totals["lost"] + totals["torn"]
                    failed |= bad > 0
                    extra = {
                        "kill": f", {totals['killed']} killed",
                        "stall": f", {totals['refused']} late completions refused",
                    }
                    print(
                        f"{name:<8} {scenario:<5} {args.reps} reps: {totals['duplicated']} duplicated, "
                        f"{totals['lost']} lost, {totals['torn']} torn{extra.get(scenario, '')} "
                        f"({time.monotonic() - started:.0f}s)",
                        flush=True,
                    )
    finally:
        if server is not None:
            server.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
