"""`update_readme.py --check`: a fresh table against the published one, cell by cell; writes nothing."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import update_readme  # noqa: E402

PUBLISHED = """### bert_cls: test metrics (mean and 95% interval) and costs

| method        | test acc (95% CI)        | train tok/s              |   trainable params |
|:--------------|:-------------------------|:-------------------------|-------------------:|
| full          | **0.784** [0.763, 0.806] | 1,338 [1,250, 1,426]     |         22,713,986 |
| prompt_tuning | 0.551 [0.391, 0.711]     | 2,062 [2,008, 2,117]     |              4,610 |
"""


def _root(tmp_path: Path, fresh: str) -> Path:
    (tmp_path / "results" / "bert_cls").mkdir(parents=True)
    (tmp_path / "results" / "bert_cls" / "summary.md").write_text(fresh)
    (tmp_path / "README.md").write_text(
        f"intro\n<!-- bert_cls-summary:start -->\n{PUBLISHED}<!-- bert_cls-summary:end -->\n"
    )
    return tmp_path


def test_each_cell_matches_lies_within_or_lies_outside(tmp_path, capsys):
    fresh = PUBLISHED.replace("0.551 [0.391, 0.711]", "0.563 [0.40, 0.72]").replace("2,062 [", "2,500 [")
    root = _root(tmp_path, fresh)
    before = (root / "README.md").read_text()
    assert update_readme.main(["--check", "bert_cls-summary"], root=root) == 1  # one cell is outside
    out = capsys.readouterr().out
    assert re.search(r"full .*test acc.* 0\.784 vs 0\.784: matches to the digit", out)
    assert re.search(r"prompt_tuning .*test acc.* 0\.563 vs 0\.551: within the published interval", out)
    assert re.search(r"prompt_tuning .*train tok/s.* 2,500 vs 2,062: OUTSIDE the published interval", out)
    assert "4 cells: 2 match to the digit, 1 within the published interval, 1 outside" in out
    assert (root / "README.md").read_text() == before  # a check writes nothing


def test_the_same_table_matches_everywhere(tmp_path, capsys):
    assert update_readme.main(["--check", "bert_cls-summary"], root=_root(tmp_path, PUBLISHED)) == 0
    assert "4 cells: 4 match to the digit" in capsys.readouterr().out


def test_a_table_of_another_experiment_is_one_line_exit_2(tmp_path, capsys):
    root = _root(tmp_path, PUBLISHED.replace("### bert_cls:", "### smollm_sft:"))
    assert update_readme.main(["--check", "bert_cls-summary"], root=root) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'smollm_sft'" in err and "'bert_cls'" in err


def test_the_table_names_the_cpu_from_the_records_and_what_to_expect_elsewhere():
    from types import SimpleNamespace as Part

    from peftlab.reporting.environments import cpu_note

    def record(**device):  # the parts of a typed RunRecord that the note reads
        return Part(status="ok", env=Part(device=Part(**{"cpu_count": None, **device})))

    xeon = record(type="cpu", name="Intel Xeon Platinum 8480+", cpu_count=2)
    note = cpu_note([xeon, xeon])
    assert note.startswith("Measured on Intel Xeon Platinum 8480+ (2 cores).")
    assert "within its interval" in note and "--check" in note
    assert cpu_note([record(type="cuda", name="H100")]) == ""
