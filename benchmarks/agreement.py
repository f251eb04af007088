"""Question (a) against the classical tests, comparison by comparison, on an experiment's predictions.

    python benchmarks/agreement.py results/bert_cls [--reference full]

For every method vs the reference (paired on the test examples): the crossed engine's (a) Δ and
p, the exact McNemar test per seed (scipy.stats.binomtest on the discordant pairs), the
Cochran–Mantel–Haenszel test with the examples as strata (statsmodels StratifiedTable; seeds are
the replicates within an example), and the engine's (b) p. Prints a Markdown table. Needs the
`stats-check` extra (statsmodels).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peftlab.records.results import load_records
from peftlab.reporting.comparison import load_outcomes
from peftlab.stats import crossed


def main(argv: list[str] | None = None) -> int:
    from scipy.stats import binomtest
    from statsmodels.stats.contingency_tables import StratifiedTable

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--reference", default="full")
    args = parser.parse_args(argv)
    records = [r for r in load_records([args.results]) if r.status == "ok" and r.trial is None]
    outcomes = load_outcomes([args.results], records, log=lambda m: print(m, file=sys.stderr))
    by_label: dict[str, list] = {}
    for record in records:
        if record.run_id in outcomes:
            by_label.setdefault(str(record.label), []).append(outcomes[record.run_id])
    if args.reference not in by_label:
        print(f"error: reference {args.reference!r} has no runs with predictions; allowed: {', '.join(by_label)}")
        return 2

    def runs(label: str) -> crossed.Runs:
        return crossed.runs_from_seeds(label, [(o.seed, o.ids, {"correct": o.correct}) for o in by_label[label]])

    ref = runs(args.reference)
    print("| method | Δ acc | (a) p | McNemar p per seed | CMH p (examples as strata) | (b) p |")
    print("|---|---:|---:|---|---:|---:|")
    for label in by_label:
        if label == args.reference:
            continue
        a, b = crossed.aligned(runs(label), ref)
        result = crossed.difference(a, b)
        shared = sorted(set(a.seeds) & set(b.seeds))
        mcnemar = []
        for seed in shared:
            x, y = a.columns["correct"][a.seeds.index(seed)], b.columns["correct"][b.seeds.index(seed)]
            up, down = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
            mcnemar.append(f"{binomtest(up, up + down, 0.5).pvalue:.3g}" if up + down else "1")
        ya, yb = a.columns["correct"], b.columns["correct"]
        tables = np.stack(
            [[[ya[:, j].sum(), a.S - ya[:, j].sum()], [yb[:, j].sum(), b.S - yb[:, j].sum()]] for j in range(a.n)],
            axis=-1,
        ).astype(float)
        cmh = StratifiedTable(tables).test_null_odds(correction=False).pvalue
        b_p = f"{result.b.p:.3g}" if result.b.estimable else "n.e."
        print(f"| {label} | {result.estimate:+.3f} | {result.a.p:.3g} | {', '.join(mcnemar)} | {cmh:.3g} | {b_p} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
