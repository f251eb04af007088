"""Paste generated tables into README.md between markers, so the README never holds typed numbers.

python scripts/update_readme.py                      # every block below
python scripts/update_readme.py smollm_sft-summary   # only the named blocks
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = {
    "bert_cls-summary": ROOT / "results" / "bert_cls" / "summary.md",
    "smollm_sft-summary": ROOT / "results" / "smollm_sft" / "summary.md",
    "forgetting-summary": ROOT / "results" / "forgetting" / "summary.md",
    "forgetting_smollm-summary": ROOT / "results" / "forgetting_smollm" / "summary.md",
    "rank_ablation-sweep": ROOT / "results" / "rank_ablation" / "rank_sweep.md",
    "rank_ablation_rslora-sweep": ROOT / "results" / "rank_ablation_rslora" / "rank_sweep.md",
}


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or list(BLOCKS)
    unknown = [n for n in names if n not in BLOCKS]
    if unknown:
        print(f"update_readme: unknown block(s) {', '.join(unknown)}; known: {', '.join(BLOCKS)}", file=sys.stderr)
        return 2
    readme = ROOT / "README.md"
    text = readme.read_text()
    for name in names:
        source = BLOCKS[name]
        if not source.is_file():
            print(f"update_readme: {source} does not exist; run the experiment first", file=sys.stderr)
            return 2
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.DOTALL)
        if not pattern.search(text):
            print(f"update_readme: no <!-- {name}:start/end --> markers in README.md", file=sys.stderr)
            return 2
        body = source.read_text().strip()
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    readme.write_text(text)
    print("update_readme: README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
