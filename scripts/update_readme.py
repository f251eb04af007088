"""Paste generated tables into the README and the docs/findings pages, so no page holds typed numbers.

Each block sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` in its page and is replaced by
the file the report wrote; everything around the markers (the dated reading) is left as it is.

python scripts/update_readme.py                      # every block below
python scripts/update_readme.py smollm_sft-summary   # only the named blocks
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
}


def marker_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {re.escape(name)}:start -->\n).*?(<!-- {re.escape(name)}:end -->)", re.DOTALL)


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    names = (sys.argv[1:] if argv is None else argv) or list(BLOCKS)
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
