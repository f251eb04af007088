"""Calibration grid of the statistics (issue 23): coverage and type-I error of both questions, before and after.

    python benchmarks/calibration.py [--replicates 1000] [--old-replicates 500]
                                     [--out results/calibration/calibration.md]
                                     [--seeds 1 2 3 5 10] [--n 200 1000] [--seed-sd 0 0.01 0.02 0.05]
                                     [--skip-old] [--json results/calibration/grid.json]
    python benchmarks/calibration.py --compare BEFORE.json AFTER.json [--out results/calibration/before_after.md]

Simulates crossed seed × example outcomes with known truth (peftlab/stats/calibration.py) over
S ∈ {1, 2, 3, 5, 10}, n ∈ {200, 1000}, seed sd ∈ {0, 0.01, 0.02}, with and without a method ×
example interaction, and scores the crossed engine (peftlab/stats/crossed.py) and, for the "before"
table, the old nested engine (peftlab/stats/nested.py) on the same draws. Writes one Markdown file with
both tables and prints how long it took; `python scripts/update_readme.py calibration` pastes it,
as generated, into docs/statistics.md. `--json` also writes the crossed engine's grid as numbers:
copied to peftlab/stats/calibration_grid.json it is the grid a report consults to flag (b)
intervals whose coverage is known to be low. `--compare` runs nothing: it renders two such grids
(the same cells and draws, an engine before and after a change) as one before → after table
(`python scripts/update_readme.py calibration-change` pastes it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peftlab.stats import calibration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000, help="per cell, crossed engine")
    parser.add_argument("--old-replicates", type=int, default=500, help="per cell, old engine (slower)")
    parser.add_argument("--old-draws", type=int, default=1000, help="bootstrap draws of the old engine")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(calibration.GRID_SEEDS))
    parser.add_argument("--n", type=int, nargs="+", default=list(calibration.GRID_N))
    parser.add_argument("--seed-sd", type=float, nargs="+", default=list(calibration.GRID_SEED_SD))
    parser.add_argument("--skip-old", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the crossed engine's grid as JSON (rows of numbers)")
    parser.add_argument("--out", type=Path, default=None, help="default results/calibration/calibration.md")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"), help="two --json grids")
    parser.add_argument("--title", default="Issue 29, item 7: the crossed engine before → after")
    args = parser.parse_args(argv)
    if args.compare:
        import json

        before, after = (json.loads(p.read_text()) for p in args.compare)
        text = calibration.before_after_markdown(before, after, args.title) + "\n"
        out = args.out or Path("results/calibration/before_after.md")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(text)
        print(f"wrote {out}")
        return 0
    args.out = args.out or Path("results/calibration/calibration.md")
    cells = list(calibration.grid(seeds=args.seeds, n=args.n, seed_sd=args.seed_sd))
    started = time.perf_counter()
    new = [calibration.run_cell(c, args.replicates, seed=2023) for c in cells]
    took_new = time.perf_counter() - started
    passed = sum(calibration.within_target(r) for r in new)
    parts = [
        calibration.markdown(new, "After: crossed engine (peftlab/stats/crossed.py)"),
        f"\nCells with every estimable number inside the targets: {passed} of {len(new)} ({took_new:.0f} s wall).",
    ]
    if not args.skip_old:
        started = time.perf_counter()
        old = [
            calibration.run_cell(c, args.old_replicates, engine="old", seed=2023, old_draws=args.old_draws)
            for c in cells
        ]
        took_old = time.perf_counter() - started
        passed_old = sum(calibration.within_target(r) for r in old)
        parts += [
            "",
            calibration.markdown(
                old,
                "Before: nested two-level bootstrap (peftlab/stats/nested.py), one interval and p-value judged against "
                "either question's truth",
            ),
            f"\nCells with every number inside the targets: {passed_old} of {len(old)} ({took_old:.0f} s wall).",
        ]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(calibration.rows_json(new, seconds=took_new))
        print(f"wrote {args.json}")
    text = "\n".join(parts) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
