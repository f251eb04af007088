"""Paste generated tables into the README and the docs/findings pages, so no page holds typed numbers.

Each block sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` in its page and is replaced by
the file the report wrote; everything around the markers (the dated reading) is left as it is.

python scripts/update_readme.py                      # every block below
python scripts/update_readme.py smollm_sft-summary   # only the named blocks
python scripts/update_readme.py --check bert_cls-summary   # a fresh table vs the published one, cell by cell

`--check` writes nothing: for every cell of the published table that has an interval it says
whether the fresh value matches to the digit, lies within the published interval, or lies outside
it (exit 1 if any is outside). A fresh table of another experiment is one line, exit 2.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# block name -> (generated file under the repository, page that shows it)
BLOCKS: dict[str, tuple[str, str]] = {
    "bert_cls-summary": ("results/bert_cls/summary.md", "README.md"),
    "bert_cls_tuned-summary": (
        "results/bert_cls_tuned/summary.md",
        "docs/findings/2026-11-23-tuned-protocol.md",
    ),
    "methods_zoo-summary": ("results/methods_zoo/summary.md", "docs/findings/2026-11-24-methods-zoo.md"),
    "calibration": ("results/calibration/calibration.md", "docs/statistics.md"),  # benchmarks/calibration.py
    # benchmarks/calibration.py --compare BEFORE.json AFTER.json
    "calibration-change": ("results/calibration/before_after.md", "docs/statistics.md"),
    "smollm_sft-summary": ("results/smollm_sft/summary.md", "docs/findings/2026-11-23-smollm-sft.md"),
    "forgetting-summary": ("results/forgetting/summary.md", "docs/findings/2026-11-23-forgetting.md"),
    "forgetting_smollm-summary": ("results/forgetting_smollm/summary.md", "docs/findings/2026-11-23-forgetting.md"),
    "rank_ablation-sweep": ("results/rank_ablation/rank_sweep.md", "docs/findings/2026-11-23-rank-ablation.md"),
    "rank_ablation_rslora-sweep": (
        "results/rank_ablation_rslora/rank_sweep.md",
        "docs/findings/2026-11-23-rank-ablation.md",
    ),
    "vader_regression-summary": (
        "results/vader_regression/summary.md",
        "docs/findings/2026-12-05-vader-regression.md",
    ),
    "mmlu_choice-summary": ("results/mmlu_choice/summary.md", "docs/findings/2026-12-06-mmlu-choice.md"),
    "rank_ablation_rslora-vs-qv": (
        "results/rank_ablation_rslora/vs_lora_qv.md",
        "docs/findings/2026-11-23-rank-ablation.md",
    ),
    "grpo_levers": ("results/grpo_levers/levers.md", "docs/findings/2026-12-07-grpo.md"),  # scripts/grpo_levers.py
    # benchmarks/grpo_engine.py
    "grpo_engine": ("results/benchmarks/grpo_engine.md", "docs/findings/2026-12-07-grpo.md"),
    "grpo_rank-summary": ("results/grpo_rank/summary.md", "docs/findings/2026-12-07-grpo.md"),
    "grpo_methods-summary": ("results/grpo_methods/summary.md", "docs/findings/2026-12-07-grpo.md"),
}


def marker_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {re.escape(name)}:start -->\n).*?(<!-- {re.escape(name)}:end -->)", re.DOTALL)


_CELL = re.compile(r"^\*{0,2}(?P<value>[-+]?[\d,]*\.?\d+)\*{0,2}†?\s*\[(?P<lo>[-+]?[\d,.]+),\s*(?P<hi>[-+]?[\d,.]+)\]")
_TITLE = re.compile(r"^###\s+(?P<name>[^:]+):", re.MULTILINE)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _table(text: str) -> tuple[str | None, list[str], dict[str, list[str]]]:
    """A generated markdown table: its experiment (the `### name:` title), header and rows by first cell."""
    title = _TITLE.search(text)
    lines = [ln for ln in text.splitlines() if ln.startswith("|") and not set(ln) <= set("|:- ")]
    split = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
    header = split[0] if split else []
    return (title["name"].strip() if title else None), header, {r[0]: r for r in split[1:]}


def _plain(cell: str) -> str:
    match = re.match(r"^\*{0,2}([-+]?[\d,]*\.?\d+)", cell)
    return match.group(1) if match else cell


def compare(published: str, fresh: str) -> tuple[list[str], int]:
    """Cell-by-cell verdicts (`match`, `within`, `outside`) of `fresh` against `published`; (lines, outside count)."""
    _, header, old = _table(published)
    _, fresh_header, new = _table(fresh)
    lines, outside = [], 0
    for method, row in old.items():
        for column, cell in zip(header[1:], row[1:], strict=False):
            interval = _CELL.match(cell)
            if interval is None:
                continue
            got = new.get(method)
            if got is None or column not in fresh_header:
                lines.append(f"{method:<14} {column:<40} missing in the fresh table")
                outside += 1
                continue
            value = got[fresh_header.index(column)]
            shown = _plain(value)
            try:
                number = _number(shown)
            except ValueError:
                lines.append(f"{method:<14} {column:<40} {value!r}: not a number")
                outside += 1
                continue
            lo, hi = _number(interval["lo"]), _number(interval["hi"])
            if shown == interval["value"]:
                verdict = "matches to the digit"
            elif lo <= number <= hi:
                verdict = f"within the published interval [{interval['lo']}, {interval['hi']}]"
            else:
                verdict = f"OUTSIDE the published interval [{interval['lo']}, {interval['hi']}]"
                outside += 1
            lines.append(f"{method:<14} {column:<40} {shown} vs {interval['value']}: {verdict}")
    return lines, outside


def check(name: str, root: Path = ROOT) -> int:
    """`--check NAME`: the fresh generated table against the block published in its page; writes nothing."""
    if name not in BLOCKS:
        print(f"update_readme: unknown block {name}; known: {', '.join(BLOCKS)}", file=sys.stderr)
        return 2
    source, page = (root / part for part in BLOCKS[name])
    if not source.is_file():
        print(f"update_readme: {source} does not exist; run the experiment first", file=sys.stderr)
        return 2
    found = marker_pattern(name).search(page.read_text()) if page.is_file() else None
    if found is None:
        print(f"update_readme: no <!-- {name}:start/end --> markers in {page}", file=sys.stderr)
        return 2
    published = found.group(0)
    fresh = source.read_text()
    want, got = _table(published)[0], _table(fresh)[0]
    if want is None or got != want:
        print(
            f"update_readme: {source} is a table of experiment {got!r}, but block {name} in {page.name} "
            f"publishes {want!r}; compare a table with its own experiment's",
            file=sys.stderr,
        )
        return 2
    lines, outside = compare(published, fresh)
    for line in lines:
        print(line)
    counts = {v: sum(v in ln for ln in lines) for v in ("matches to the digit", "within the published", "OUTSIDE")}
    print(
        f"update_readme: {name}: {len(lines)} cells: {counts['matches to the digit']} match to the digit, "
        f"{counts['within the published']} within the published interval, {outside} outside or missing"
    )
    return 1 if outside else 0


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--check"]:
        if len(args) != 2:
            print("update_readme: --check takes one block name, e.g. --check bert_cls-summary", file=sys.stderr)
            return 2
        return check(args[1], root)
    names = args or list(BLOCKS)
    unknown = [n for n in names if n not in BLOCKS]
    if unknown:
        print(f"update_readme: unknown block(s) {', '.join(unknown)}; known: {', '.join(BLOCKS)}", file=sys.stderr)
        return 2
    pages: dict[Path, str] = {}
    for name in names:  # check everything before writing anything: no page is half-updated
        source, page = (root / part for part in BLOCKS[name])
        if not source.is_file():
            print(f"update_readme: {source} does not exist; run the experiment first", file=sys.stderr)
            return 2
        if page not in pages:
            pages[page] = page.read_text() if page.is_file() else ""
        pattern = marker_pattern(name)
        if not pattern.search(pages[page]):
            print(f"update_readme: no <!-- {name}:start/end --> markers in {page}", file=sys.stderr)
            return 2
        body = source.read_text().strip()
        pages[page] = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), pages[page])
    for page, text in pages.items():
        page.write_text(text)
        print(f"update_readme: {page.relative_to(root)} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
