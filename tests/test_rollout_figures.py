"""A sampling task's report (task grpo) on synthetic records written by the real record writer, no model.

Records carry the per-step rollout series (`metrics.rollout`), the base model's probe rollout
(`metrics.base_rollout`) and the generation speed (`speed.generation_*`), as schema v5 names them.
The report draws `rollout_curves` from them (axis labels read back from the PNG's `peftlab:axes`
text, as tests/test_task_figures.py does), skips it with its reason where no record has a rollout,
and shows a `gen tok/s` column only where records measured one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from peftlab.records.results import load_records, records_frame, write_record
from peftlab.reporting import figures
from peftlab.reporting.frame import summarise, tidy_runs
from peftlab.reporting.style import AXES_KEY, method_styles
from peftlab.reporting.tables import display_frame
from peftlab.task_specs import resolve_task
from tests.test_report import METHODS, make_records, synthetic_record

GRPO = {"full": (0.55, 35.0), "lora": (0.50, 60.0)}  # label -> (test pass@1, generation tokens/s)
STEPS = 12


def _rollout(step: int, rng: random.Random, *, entropy: bool) -> dict:
    """One optimiser step's rollout, as peftlab/runtime/train.py `rollout` records it: reward climbs with the step."""
    reward = min(1.0, 0.1 + 0.06 * step + rng.uniform(-0.05, 0.05))
    point = {
        "step": step,
        "reward": reward,
        "reward_std": 0.3,
        "correct": reward,
        "format_rate": 0.9,
        "zero_std_fraction": max(0.0, 0.8 - 0.05 * step + rng.uniform(-0.05, 0.05)),
        "completion_tokens": 6.0,
        "generated_tokens": 48,
    }
    if entropy:
        point["entropy"] = 1.5 - 0.08 * step
    return point


def grpo_record(experiment: str, label: str, seed: int, *, rollout: bool = True, entropy: bool = True) -> dict:
    """A finished grpo run's record: the classification fixture's shape with grpo's task block, scores and rollouts."""
    method, _, trainable, peak, tps, saved, hyper = METHODS[label]
    passed, gen = GRPO[label]
    rec = synthetic_record(
        experiment, label, method, seed, passed, trainable, peak, tps, saved, hyper, forgetting=False
    )
    rng = random.Random(f"{label}-{seed}-grpo")
    score = passed + rng.uniform(-0.02, 0.02)
    rec["task"] = resolve_task("grpo").record_block()
    rec["data"].update({"num_labels": None, "label_names": None, "sizes": {"train": 75, "validation": 7, "test": 64}})
    rec["metrics"] = {
        "test": {
            "pass_at_1": score,
            "reward": score,
            "format_rate": 0.9,
            "completion_tokens": 6.0,
            "n": 64,
            "entropy": 0.3,
            "kl_to_base": 0.4,
        },
        "validation": {"pass_at_1": score - 0.01, "reward": score - 0.01},
        "final_train_loss": 0.0,
        "curve": [{"step": STEPS, "train_loss": 0.0, "val_pass_at_1": score - 0.01, "val_reward": score - 0.01}],
    }
    if rollout:
        rec["metrics"]["rollout"] = [_rollout(step, rng, entropy=entropy) for step in range(1, STEPS + 1)]
        rec["metrics"]["base_rollout"] = {"prompts": 8, **_rollout(0, rng, entropy=entropy)}
        del rec["metrics"]["base_rollout"]["step"]
        rec["speed"].update(generation_tokens_per_s=gen + rng.uniform(-2, 2), generation_share=0.3)
    return rec


def grpo_results(results_dir: Path, seeds=(0, 1, 2), **kwargs) -> Path:
    for label in GRPO:
        for seed in seeds:
            write_record(results_dir, grpo_record(results_dir.name, label, seed, **kwargs))
    return results_dir


def _frames(results_dir: Path) -> tuple:
    frame = records_frame(load_records([results_dir]))
    return tidy_runs(frame), summarise(frame)


def _axes(png: Path) -> list[dict[str, str]]:
    from PIL import Image

    with Image.open(png) as image:
        return json.loads(image.text[AXES_KEY])


@pytest.fixture(scope="module")
def grpo_report(tmp_path_factory):
    """The report of two methods × three seeds of synthetic grpo records (of its figures, rollout_curves only:
    the others have their own tests, and drawing them would only make this one slow)."""
    from peftlab.cli.report import write_report

    results = grpo_results(tmp_path_factory.mktemp("res") / "grpo_try")
    out = tmp_path_factory.mktemp("report")
    said: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "FIGURES", {"rollout_curves": figures.rollout_curves})
        written = write_report([results], out, log=said.append)
    return out, written, said


def test_rollout_curves_is_one_of_the_reports_figures():
    assert list(figures.FIGURES).index("rollout_curves") == list(figures.FIGURES).index("training_curves") + 1


def test_the_report_draws_rollout_curves_with_named_panels(grpo_report):
    out, written, said = grpo_report
    for ext in ("png", "pdf"):
        path = out / "figures" / f"rollout_curves.{ext}"
        assert path in written and path.stat().st_size > 5000, path
    assert not any(line.startswith("skipped rollout_curves") for line in said)
    panels = _axes(out / "figures" / "rollout_curves.png")
    assert [p["y"] for p in panels] == [
        figures.rollout_words("reward"),
        figures.rollout_words("zero_std_fraction"),
        figures.rollout_words("entropy"),
    ]
    assert panels[0]["y"].startswith("rollout reward") and "no learning signal" in panels[1]["y"]
    assert panels[-1]["x"] == "optimiser step"


def test_the_summary_gets_a_gen_tok_s_column_with_a_seed_interval(grpo_report):
    out, _, _ = grpo_report
    md = (out / "summary.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells.index("gen tok/s") == cells.index("train tok/s") + 1  # the cost beside training's
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    for label, (_, gen) in GRPO.items():
        row = summary.loc[label]
        assert row["generation_tokens_per_s"] == pytest.approx(gen, abs=2.0)
        assert row["generation_tokens_per_s_low"] < row["generation_tokens_per_s"] < row["generation_tokens_per_s_high"]
    assert summary.loc["lora", "generation_tokens_per_s_mark"] == "best"  # 60 vs 35 tok/s: beyond seed noise
    assert r"Gen.\ tok/s" in (out / "summary.tex").read_text()
    assert r"\grpotryLoraGenTokPerSec" in (out / "macros.tex").read_text()


def test_runs_csv_holds_the_generation_speed_and_the_base_probe_but_no_series(grpo_report):
    out, _, _ = grpo_report
    runs = pd.read_csv(out / "runs.csv")
    assert {"generation_tokens_per_s", "generation_share", "base_rollout_reward"} <= set(runs.columns)
    assert runs["generation_share"].eq(0.3).all() and runs["base_rollout_reward"].notna().all()
    assert "rollout" not in runs.columns and "curve" not in runs.columns  # per-step series stay in the records


def test_bands_and_base_lines_follow_the_seeds(tmp_path, monkeypatch):
    """Mean line per method, min–max band over its seeds, dashed base-probe line at the mean of its runs."""
    runs, summary = _frames(grpo_results(tmp_path / "g"))
    points = figures._rollout_points(runs)
    assert len(points) == len(GRPO) * 3 * STEPS and set(points["label"]) == set(GRPO)
    captured = {}
    real_save = figures.style.save

    def keep(fig, out, stem):
        captured["fig"] = fig
        return real_save(fig, out, stem)

    monkeypatch.setattr(figures.style, "save", keep)
    figures.rollout_curves(runs, summary, method_styles(list(summary["method"])), tmp_path / "fig")
    top = captured["fig"].axes[0]
    lora = runs[runs["label"] == "lora"]
    base = lora["base_rollout_reward"].mean()
    dashed = [line for line in top.get_lines() if line.get_linestyle() == "--" and len(line.get_ydata()) == 2]
    assert any(line.get_ydata()[0] == pytest.approx(base) for line in dashed)
    mean_line = next(line for line in top.get_lines() if line.get_label() == "lora")
    expected = points[points["label"] == "lora"].groupby("step")["reward"].mean()
    assert list(mean_line.get_ydata()) == pytest.approx(list(expected))
    legend = [t.get_text() for t in captured["fig"].legends[0].get_texts()]
    assert figures.ROLLOUT_BAND in legend and "base model, before step 1 (probe)" in legend


def test_without_entropy_the_figure_has_two_panels(tmp_path):
    runs, summary = _frames(grpo_results(tmp_path / "g", seeds=(0,), entropy=False))
    png, _ = figures.rollout_curves(runs, summary, method_styles(list(summary["method"])), tmp_path / "fig")
    assert [p["y"] for p in _axes(png)] == [figures.rollout_words("reward"), figures.rollout_words("zero_std_fraction")]


def test_records_without_rollouts_skip_the_figure_with_its_reason(tmp_path, monkeypatch):
    runs, summary = _frames(make_records(tmp_path / "cls", sweep=False, forgetting=False, seeds=(0,)))
    out = tmp_path / "fig"
    out.mkdir()
    (out / "rollout_curves.png").write_bytes(b"stale")  # a figure of older records would mislead
    monkeypatch.setattr(figures, "FIGURES", {"rollout_curves": figures.rollout_curves})
    said: list[str] = []
    assert figures.write_figures(runs, summary, out, log=said.append) == []
    assert said == [
        "skipped rollout_curves: no per-step rollout series in these records (metrics.rollout: a sampling task's)"
    ]
    assert not (out / "rollout_curves.png").exists()
    # a grpo run without rollouts (a zero-shot row, an older record) skips the same way
    runs, summary = _frames(grpo_results(tmp_path / "g", seeds=(0,), rollout=False))
    with pytest.raises(figures.Skipped, match="no per-step rollout series"):
        figures.rollout_curves(runs, summary, method_styles(list(summary["method"])), out)


def test_gen_tok_s_appears_only_where_records_measured_it(tmp_path):
    _, with_gen = _frames(grpo_results(tmp_path / "g", seeds=(0, 1)))
    _, without = _frames(grpo_results(tmp_path / "h", seeds=(0, 1), rollout=False))
    _, classification = _frames(make_records(tmp_path / "cls", sweep=False, forgetting=False, seeds=(0,)))
    assert "gen tok/s" in display_frame(with_gen, latex=False).columns
    for summary in (without, classification):
        shown = display_frame(summary, latex=False).columns
        assert "gen tok/s" not in shown and "train tok/s" in shown
        assert r"Gen.\ tok/s" not in display_frame(summary, latex=True).columns
