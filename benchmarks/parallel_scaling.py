"""Wall time of an 8-run grid with 1 and 2 workers (`--workers`), side by side; GPU sharing where CUDA exists.

Each variant is a whole `python -m peftlab.run` in a fresh results folder (so nothing is skipped),
timed from start to exit: loading the workspace once, forking the workers, every run, the
closing summary. Variants alternate (1, 2, 1, 2, ...) so a change in the machine's load hits
both; the speed-up is printed per repetition and as their median. With CUDA, the same grid runs
with 1, 2 and 4 workers sharing GPU 0 (`--devices 0 --runs-per-device K`).

    python benchmarks/parallel_scaling.py                      # builtin MiniLM-L6, 8 runs of 10 steps
    python benchmarks/parallel_scaling.py --steps 40 --reps 3   # steadier on a busy machine
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleave import benchmark_parser

GRID_RUNS = 8  # lora r ∈ {1, 2, 4, 8} × seeds {0, 1}


def experiment_yaml(args, folder: Path, device: str) -> Path:
    path = folder / "scaling.yaml"
    path.write_text(
        f"name: scaling\nmodel: {args.model}\ndata:\n  source: {args.data}\n  max_length: {args.max_length}\n"
        f"  train_limit: 512\n  validation_limit: 64\n  test_limit: 64\n"
        f"train:\n  steps: {args.steps}\n  batch_size: {args.batch}\n  eval_every: {args.steps}\n"
        f"  eval_batch_size: 64\n  device: {device}\n"
        f"seeds: [0, 1]\noutput_dir: {folder / 'results'}\n"
        "methods:\n  - method: lora\n    lr: 1.0e-3\n    grid:\n      r: [1, 2, 4, 8]\n"
    )
    return path


def timed_run(args, device: str, extra: list[str]) -> float:
    """Seconds for the whole grid, in a fresh folder; fails loudly if a run did not finish."""
    with tempfile.TemporaryDirectory(prefix="peftlab-scaling-") as tmp:
        path = experiment_yaml(args, Path(tmp), device)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "peftlab.run", str(path), "-q", "--no-report", *extra],
            capture_output=True,
            text=True,
        )
        took = time.perf_counter() - started
        records = list((Path(tmp) / "results" / "scaling" / "runs").glob("*.json"))
        if result.returncode != 0 or len(records) != GRID_RUNS:
            raise SystemExit(f"{' '.join(extra) or 'serial'} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return took


def compare(args, device: str, variants: dict[str, list[str]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {label: [] for label in variants}
    width = max(map(len, variants))
    for rep in range(args.reps):
        for label, extra in variants.items():
            times[label].append(timed_run(args, device, extra))
            print(f"  rep {rep + 1}: {label:<{width}} {times[label][-1]:7.1f} s", flush=True)
    base = next(iter(times))
    print(f"\n| variant | median wall s ({GRID_RUNS} runs) | speed-up vs {base} (median of per-rep ratios) |")
    print("|---|---:|---:|")
    for label, values in times.items():
        ratios = [a / b for a, b in zip(times[base], values, strict=True)]
        print(f"| {label} | {statistics.median(values):.1f} | {statistics.median(ratios):.2f}× |")
    return times


def main() -> None:
    parser = benchmark_parser(__doc__, model="builtin:minilm-l6", steps=10, warmup=0, batch=16)
    parser.set_defaults(reps=1)
    args = parser.parse_args()
    print(f"# {GRID_RUNS}-run grid ({args.model}, {args.steps} steps × batch {args.batch}), CPU workers")
    compare(args, "cpu", {"1 worker": [], "2 workers": ["--workers", "2"]})
    from peftlab.execute.devices import visible_gpu_count

    if args.device != "cpu" and visible_gpu_count() > 0:
        print("\n# the same grid, K runs sharing GPU 0")
        compare(args, "cuda", {f"{k} per GPU": ["--devices", "0", "--runs-per-device", str(k)] for k in (1, 2, 4)})


if __name__ == "__main__":
    main()
