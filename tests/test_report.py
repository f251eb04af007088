"""The report on synthetic records written by the real record writer: every table, macro and figure.

The records imitate recipe.py's shape (same keys), several methods × 3 seeds, a LoRA rank sweep and
forgetting deltas, with numbers chosen so that "best" is known in advance.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pandas as pd
import pytest

from peftlab.cli.report import main as report_main
from peftlab.cli.report import write_experiment_report, write_report
from peftlab.records.results import load_records, records_frame, write_record
from peftlab.reporting.latex import camel, escape
from peftlab.task_specs import resolve_task

# label -> (method, test accuracy, trainable params, peak MB, tokens/s, saved MB, hyperparameters)
METHODS = {
    "full": ("full", 0.86, 22_713_986, 1300.0, 550.0, 86.66, {}),
    "lora": ("lora", 0.84, 74_498, 1120.0, 990.0, 0.29, {"r": 8, "alpha": 16.0}),
    "qlora": ("qlora", 0.83, 74_498, 900.0, 660.0, 0.29, {"r": 8, "alpha": 16.0}),
    "prompt_tuning": ("prompt_tuning", 0.70, 8_450, 1110.0, 1200.0, 0.03, {"num_virtual_tokens": 20}),
    "prefix_tuning": ("prefix_tuning", 0.75, 92_930, 1010.0, 1090.0, 0.35, {"num_virtual_tokens": 20}),
}
RANKS = (2, 4, 8, 16)
SEEDS = (0, 1, 2)
PROBES = ("wikitext", "sst2_probe")
STEPS = (50, 100, 150)


def synthetic_record(
    experiment: str,
    label: str,
    method: str,
    seed: int,
    acc: float,
    trainable: int,
    peak: float,
    tps: float,
    saved: float,
    hyper: dict,
    *,
    forgetting: bool = True,
    trial: dict | None = None,
) -> dict:
    rng = random.Random(f"{label}-{seed}")
    acc = acc + rng.uniform(-0.01, 0.01)
    total = 22_713_986 + (0 if method == "full" else trainable - 1538)
    record = {
        "run_id": f"{re.sub(r'[^a-z0-9]+', '-', label)}-s{seed}-{zlib.crc32(label.encode()):08x}",
        "experiment": experiment,
        "label": label,
        "method": method,
        "seed": seed,
        "status": "ok",
        "error": None,
        "hyperparameters": {
            "lr": 2e-3,
            **hyper,
            "resolved_target_modules": ["query", "value"] if "r" in hyper else None,
        },
        "task": resolve_task("classification").record_block(),  # as the recipe writes it
        "config": {
            "model": "builtin:minilm-l6",
            "train": {
                "steps": STEPS[-1],
                "batch_size": 32,
                "grad_accum": 1,
                "scheduler": "linear",
                "warmup_ratio": 0.06,
                "eval_every": 50,
            },
        },
        "config_hash": f"{zlib.crc32(label.encode()):016x}",
        "data": {
            "source": "builtin:rotten_tomatoes",
            "fingerprint": "3b87d8312bbeec89",
            "sizes": {"train": 8568, "validation": 500, "test": 1000},
            "num_labels": 2,
            "label_names": ["negative", "positive"],
            "max_length": 64,
        },
        "model": {"spec": "builtin:minilm-l6", "kind": "builtin", "model_type": "bert", "dtype": "torch.float32"},
        "metrics": {
            "test": {"accuracy": acc, "f1_macro": acc - 0.005, "loss": 1 - acc, "n": 1000},
            "validation": {"accuracy": acc + 0.004, "f1_macro": acc, "loss": 1 - acc},
            "final_train_loss": 1 - acc,
            "curve": [
                {
                    "step": step,
                    "train_loss": 0.7 - 0.1 * i,
                    "val_accuracy": 0.5 + (acc - 0.5) * (i + 1) / len(STEPS) + rng.uniform(-0.01, 0.01),
                    "val_f1_macro": 0.5,
                    "val_loss": 0.6,
                }
                for i, step in enumerate(STEPS)
            ],
        },
        "params": {"trainable": trainable, "total": total, "trainable_pct": 100 * trainable / total},
        "memory": {"device": "cpu", "peak_mb": peak + rng.uniform(-5, 5), "measure": "peak RSS"},
        "speed": {"train_tokens_per_s": tps + rng.uniform(-20, 20), "train_samples_per_s": tps / 27},
        "time": {"train_s": 100.0, "total_s": 120.0},
        "size": {"saved_bytes": int(saved * 2**20), "saved_mb": saved, "what": "adapter"},
        "env": {
            "versions": {
                "peftlab": "0.1.0",
                "torch": "2.13.0+cpu",
                "transformers": "5.23.0",
                "peft": "0.21.2",
                "scikit-learn": "1.9.1",
            },
            "git": {"sha": None, "dirty": None},
            "device": {"type": "cpu", "name": "AMD EPYC", "cpu_count": 2, "torch_threads": 2, "python": "3.11.7"},
        },
    }
    if forgetting:  # delta = amount forgotten (positive = worse): here the better learner forgets more
        deltas = {p: (acc - 0.6) / (3 + i) for i, p in enumerate(PROBES)}
        record["forgetting"] = {p: {"before": 0.9, "after": 0.9 - d, "delta": d} for p, d in deltas.items()}
        record["learning"] = {"metric": "accuracy", "base": 0.5, "after": acc, "gain": acc - 0.5}
    if trial is not None:
        record["trial"] = trial
    return record


def make_records(
    results_dir: Path, *, sweep: bool = True, forgetting: bool = True, trials: bool = False, seeds=SEEDS
) -> Path:
    """A results/<experiment> folder of synthetic records; returns the folder."""
    experiment = results_dir.name
    for label, (method, acc, trainable, peak, tps, saved, hyper) in METHODS.items():
        for seed in seeds:
            write_record(
                results_dir,
                synthetic_record(
                    experiment, label, method, seed, acc, trainable, peak, tps, saved, hyper, forgetting=forgetting
                ),
            )
    if sweep:
        for r in RANKS:
            for seed in seeds:
                rec = synthetic_record(
                    experiment, f"lora_sweep[r={r}]", "lora", seed, 0.80 + 0.01 * (r.bit_length()), 74_498 * r // 8,
                    1120.0, 990.0, 0.29 * r / 8, {"r": r, "alpha": 2.0 * r}, forgetting=forgetting,
                )  # fmt: skip
                write_record(results_dir, rec)
    if trials:
        rng = random.Random(0)
        for number in range(8):
            lr, r = 10 ** rng.uniform(-4, -2), rng.choice([4, 8, 16])
            acc = 0.8 + 0.02 * (lr > 1e-3) + rng.uniform(0, 0.01)
            trial = {"number": number, "value": acc, "params": {"lr": lr, "r": r}}
            rec = synthetic_record(
                experiment, f"lora_search[trial={number}]", "lora", 0, acc, 74_498, 1120.0, 990.0, 0.29, {"r": r},
                forgetting=forgetting, trial=trial,
            )  # fmt: skip
            write_record(results_dir, rec)
    return results_dir


ALL_FIGURES = (
    "metric_vs_trainable_params",
    "metric_vs_memory",
    "throughput",
    "training_curves",
    "metric_vs_rank",
    "learning_vs_forgetting",
    "forgetting_vs_rank",
)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    results = make_records(tmp_path_factory.mktemp("res") / "bert_cls", trials=True)
    out = tmp_path_factory.mktemp("report")
    written = write_report([results], out)
    return results, out, written


def test_every_table_and_figure_is_written(full_report):
    _, out, written = full_report
    for name in ("summary.csv", "summary.md", "summary.tex", "macros.tex", "runs.csv"):
        assert (out / name).stat().st_size > 200, name
    for stem in (*ALL_FIGURES, "optuna_history", "optuna_importances"):
        for ext in ("png", "pdf"):
            path = out / "figures" / f"{stem}.{ext}"
            assert path in written and path.stat().st_size > 5000, path


def test_summary_has_interval_costs_and_forgetting_columns(full_report):
    _, out, _ = full_report
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    assert summary.loc["lora", "runs_ok"] == 3
    assert summary.loc["full", "test_accuracy_ci95"] > 0
    for probe in PROBES:
        assert f"forgetting_{probe}_mean" in summary.columns
    md = (out / "summary.md").read_text()
    assert "test acc" in md and "**" in md and "forgetting wikitext" in md


def test_best_values_are_marked_in_the_right_direction(full_report):
    _, out, _ = full_report
    tex = (out / "summary.tex").read_text()
    rows = {line.split("&")[0].strip(): line for line in tex.splitlines() if line.startswith(r"\texttt")}
    full, prompt = rows[r"\texttt{full}"], rows[r"\texttt{prompt\_tuning}"]
    cells = lambda row: [c.strip() for c in row.rstrip("\\ ").split("&")]  # noqa: E731
    header = next(line for line in tex.splitlines() if line.startswith("Method"))
    acc, share, speed = (cells(header).index(name) for name in ("Acc.", r"Train.\ \%", "Tok/s"))
    # highest accuracy: bold if significantly ahead of the runner-up, else marked tied for best
    assert cells(full)[acc].startswith(r"\textbf{") or r"$^\dagger$" in cells(full)[acc]
    assert not cells(prompt)[acc].startswith(r"\textbf{") and r"\dagger" not in cells(prompt)[acc]
    assert cells(prompt)[share].startswith(r"\textbf{")  # fewest trainable parameters (min)
    assert cells(prompt)[speed].startswith(r"\textbf{")  # fastest
    assert not cells(full)[share].startswith(r"\textbf{")  # 100% trainable is not best
    forget = [i for i, c in enumerate(cells(header)) if c.startswith("Forg.")]
    gain = cells(header).index("Gain")
    assert forget and cells(prompt)[forget[0]].startswith(r"\textbf{")  # forgets least: min is best
    leads = lambda cell: cell.startswith(r"\textbf{") or r"\dagger" in cell  # noqa: E731  (best, or tied for it)
    assert leads(cells(full)[gain]) and not leads(cells(full)[forget[0]])


def test_latex_table_is_escaped_and_booktabs(full_report):
    _, out, _ = full_report
    tex = (out / "summary.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"prompt\_tuning" in tex and r"lora\_sweep{[}r=2{]}" in tex
    text_outside_math = re.sub(r"\$[^$]*\$", "", tex)
    assert not re.search(r"(?<!\\)_", text_outside_math), "bare underscore in LaTeX"
    assert "±" not in tex  # unicode ± is not safe in pdflatex without inputenc tricks


def test_macros_hold_the_same_numbers_as_the_csv(full_report):
    _, out, _ = full_report
    macros = dict(re.findall(r"\\newcommand\{\\([A-Za-z]+)\}\{(.*)\}", (out / "macros.tex").read_text()))
    summary = pd.read_csv(out / "summary.csv")

    def number(text: str) -> float:
        return float(text.replace("{,}", "").replace("$-$", "-").replace("$+$", "+"))

    checks = {"Acc": ("test_accuracy_mean", 3), "AccCI": ("test_accuracy_ci95", 3), "FOne": ("test_f1_macro_mean", 3),
              "PeakMem": ("peak_memory_mb", 0), "TokPerSec": ("train_tokens_per_s", 0), "SavedMB": ("saved_mb", 2),
              "ForgetWikitext": ("forgetting_wikitext_mean", 3)}  # fmt: skip
    compared = 0
    for _, row in summary.iterrows():
        prefix = "bertcls" + camel(row["method"])
        for suffix, (column, digits) in checks.items():
            if pd.isna(row[column]):  # one seed: no interval, so no macro either
                assert prefix + suffix not in macros
                continue
            assert number(macros[prefix + suffix]) == pytest.approx(row[column], abs=0.51 * 10**-digits)
            compared += 1
        assert number(macros[prefix + "TrainPct"]) == pytest.approx(row["trainable_pct"], rel=0.01)
    assert compared >= 9 * len(checks)
    best = summary.loc[summary["test_accuracy_mean"].idxmax()]
    assert macros["bertclsBestAccMethod"].split(", ")[0] == escape(best["method"])  # the leader first (+ tied)
    assert macros["bertclsVersionScikitLearn"] == "1.9.1" and macros["bertclsDeviceName"] == "AMD EPYC"
    assert all(re.fullmatch(r"[A-Za-z]+", name) for name in macros)


def test_missing_data_skips_figures_without_error(tmp_path, capsys):
    results = make_records(tmp_path / "plain", sweep=False, forgetting=False, seeds=(0,))
    written = write_experiment_report(results)
    names = {p.name for p in written}
    assert "metric_vs_trainable_params.png" in names and "training_curves.pdf" in names
    for stem in ("metric_vs_rank", "learning_vs_forgetting", "forgetting_vs_rank", "optuna_history",
                 "optuna_importances"):  # fmt: skip
        assert not (results / "figures" / f"{stem}.png").exists()
    said = capsys.readouterr().out
    assert "skipped metric_vs_rank: no rank sweep" in said and "skipped learning_vs_forgetting" in said
    summary = pd.read_csv(results / "summary.csv")
    assert not any(c.startswith("forgetting_") for c in summary.columns)
    assert "Forg." not in (results / "summary.tex").read_text()


def test_cli_pools_experiments_into_out(tmp_path, capsys):
    a = make_records(tmp_path / "exp_a", sweep=False, forgetting=False, seeds=(0, 1))
    b = make_records(tmp_path / "exp_b", sweep=False, forgetting=False, seeds=(0, 1))
    assert report_main([str(a), str(b), "--out", str(tmp_path / "both")]) == 0
    summary = pd.read_csv(tmp_path / "both" / "summary.csv")
    assert set(summary["experiment"]) == {"exp_a", "exp_b"} and len(summary) == 2 * len(METHODS)
    macros = (tmp_path / "both" / "macros.tex").read_text()
    assert r"\expaLoraAcc" in macros and r"\expbLoraAcc" in macros
    assert report_main([str(tmp_path / "nothing")]) == 2


def test_macro_names_are_letters_only():
    assert camel("prompt_tuning") == "PromptTuning"
    assert camel("lora[r=16]") == "LoraROneSix" != camel("lora[r=1]")
    assert escape("a_b & 50% [x]") == r"a\_b \& 50\% {[}x{]}"


def _pdflatex_or_skip() -> None:
    """texlive from Debian where it is missing and this is root (a fresh CI machine), else a skip with why."""
    if shutil.which("pdflatex") is not None:
        return
    from apt_install import apt_install

    packages = ["texlive-latex-base", "texlive-latex-recommended", "texlive-latex-extra", "texlive-fonts-recommended"]
    why = apt_install([*packages, "latexmk"], lambda: shutil.which("pdflatex") is not None)
    if shutil.which("pdflatex") is None:
        pytest.skip(f"pdflatex not installed and not installable here: {why}")


def test_generated_table_and_macros_compile(full_report, tmp_path):
    _pdflatex_or_skip()
    _, out, _ = full_report
    doc = tmp_path / "doc.tex"
    doc.write_text(
        "\\documentclass{article}\\usepackage{booktabs}\\usepackage[margin=0.5in]{geometry}\n"
        f"\\input{{{out / 'macros.tex'}}}\n\\begin{{document}}\n\\small\n\\input{{{out / 'summary.tex'}}}\n\n"
        "Best: \\bertclsBestAccMethod{} with \\bertclsBestAcc{}; LoRA \\bertclsLoraTrainParams{} parameters.\n"
        "\\end{document}\n"
    )
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_load_records_sees_every_synthetic_record(tmp_path):
    results = make_records(tmp_path / "x", sweep=True, forgetting=True, seeds=(0, 1, 2))
    assert len(load_records([results])) == 3 * (len(METHODS) + len(RANKS))


def test_rank_sweep_table_has_one_cell_per_rank_with_its_seed_mean(full_report):
    _, out, written = full_report
    sweep = pd.read_csv(out / "rank_sweep.csv")
    assert out / "rank_sweep.md" in written
    assert list(sweep["rank"]) == sorted(RANKS) and set(sweep["line"]) == {"lora_sweep"}
    assert (sweep["seeds"] == len(SEEDS)).all()
    runs = pd.read_csv(out / "runs.csv")
    runs = runs[runs["label"].str.startswith("lora_sweep")]
    expected = runs.groupby("rank")["test_accuracy"].mean()  # the same cells, recomputed from the runs
    for _, row in sweep.iterrows():
        assert row["test_accuracy_mean"] == pytest.approx(expected[row["rank"]])
    md = (out / "rank_sweep.md").read_text()
    best = sweep.loc[sweep["test_accuracy_mean"].idxmax()]
    row = f"| {int(best['rank'])} | "
    assert row + f"**{best['test_accuracy_mean']:.3f}** [" in md or row + f"{best['test_accuracy_mean']:.3f}† [" in md
    assert (sweep["test_accuracy_low"] <= sweep["test_accuracy_mean"]).all()  # the bootstrap interval of each cell
    assert "; Δ " in md  # each rank's paired difference against the reference


def test_learning_front_keeps_the_runs_no_other_run_beats_on_both_counts():
    from peftlab.reporting.figures import learning_front

    points = [(0.10, 0.05), (0.20, 0.01), (0.30, 0.04), (0.15, 0.20), (0.30, 0.06)]
    assert learning_front(points) == [(0.20, 0.01), (0.30, 0.04)]


def test_a_row_that_trains_nothing_wins_no_cost_column(tmp_path):
    """Zero-shot has 0 trainable parameters and saves 0 MB: not a "best" cost, but still a best accuracy."""
    results = make_records(tmp_path / "sft", sweep=False, forgetting=False, seeds=(0, 1))
    for seed in (0, 1):
        rec = synthetic_record("sft", "zero_shot", "zero_shot", seed, 0.95, 0, 0.0, 0.0, 0.0, {}, forgetting=False)
        rec["memory"]["peak_mb"], rec["speed"]["train_tokens_per_s"] = None, None
        write_record(results, rec)
    write_report([results], tmp_path / "out")
    lines = (tmp_path / "out" / "summary.md").read_text().splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("| method")) :]
    table = table[: next((i for i, line in enumerate(table) if not line.startswith("|")), len(table))]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = {r.strip("|").split("|")[0].strip(): [c.strip() for c in r.strip("|").split("|")] for r in table[2:]}
    zero, prompt = rows["zero_shot"], rows["prompt_tuning"]
    assert zero[header.index("test acc (95% CI)")].startswith("**")  # the best accuracy is still marked
    for col in ("trainable %", "saved MB"):
        assert not zero[header.index(col)].startswith("**"), col
        assert prompt[header.index(col)].startswith("**"), col  # the cheapest method that trains


# ---------------------------------------------------------------- statistics (issue 12)


def records_with_predictions(
    results_dir: Path,
    accs: dict[str, float],
    seeds=(0, 1, 2),
    n: int = 600,
    hypers: dict[str, dict] | None = None,
    *,
    config: dict | None = None,
    text_answers: bool = False,
    seed_shift: dict[str, list[float]] | None = None,
) -> Path:
    """Synthetic records whose per-example predictions share a difficulty (as real methods' errors do).

    `config`: merged into every record's config (e.g. a `report` block); `text_answers`: gold and
    predictions as strings, as task sft writes them (no label ids: no macro-F1 or MCC); `seed_shift`:
    per method, an accuracy offset per seed (a method whose seeds spread widely).
    """
    import numpy as np

    from peftlab.records.predictions import example_ids, write_predictions

    ids = example_ids((f"text {i}", i % 2) for i in range(n))
    gold = [i % 2 for i in range(n)]
    rng = np.random.default_rng(0)
    hardness = rng.random(n)
    for label, acc in accs.items():
        method, _, trainable, peak, tps, saved, hyper = METHODS.get(label, METHODS["lora"])
        hyper = (hypers or {}).get(label, hyper)
        for seed in seeds:
            rec = synthetic_record(
                results_dir.name, label, method, seed, acc, trainable, peak, tps, saved, hyper, forgetting=False
            )
            rec["config"].update(config or {})
            shift = (seed_shift or {}).get(label, [0.0] * len(seeds))[list(seeds).index(seed)]
            correct = (hardness + rng.normal(0, 0.05, n)) < acc + shift
            rec["metrics"]["test"].update({"accuracy": float(correct.mean()), "n": n})
            prediction = [g if c else 1 - g for g, c in zip(gold, correct, strict=True)]
            answers = [f"answer {g}" for g in gold] if text_answers else gold
            if text_answers:
                prediction = [f"answer {p}" for p in prediction]
            block = {"id": ids, "gold": answers, "prediction": prediction, "correct": correct.tolist()}
            rec["predictions"] = write_predictions(results_dir, rec["run_id"], {"test": block})
            write_record(results_dir, rec)
    return results_dir


def _md_rows(md: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = md.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("| method")) :]
    table = table[: next((i for i, line in enumerate(table) if not line.startswith("|")), len(table))]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = {r.strip("|").split("|")[0].strip(): [c.strip() for c in r.strip("|").split("|")] for r in table[2:]}
    return header, rows


def test_a_method_whose_runs_all_failed_is_a_row_with_its_error_footnote(tmp_path):
    from peftlab.reporting.figures import missing_methods
    from peftlab.reporting.frame import summarise

    results = records_with_predictions(tmp_path / "bert_cls", {"full": 0.86, "lora": 0.84})
    for seed in (0, 1):
        rec = synthetic_record(
            "bert_cls", "qlora", "qlora", seed, 0.8, 74_498, 900.0, 660.0, 0.29, {}, forgetting=False
        )
        rec.update(status="failed", error="ImportError: bitsandbytes needs a CUDA GPU\nsecond line", metrics={})
        write_record(results, rec)
    write_report([results], tmp_path / "out")
    md = (tmp_path / "out" / "summary.md").read_text()
    header, rows = _md_rows(md)
    qlora = rows["qlora"]
    assert qlora[header.index("runs ok/planned")] == "0/3"
    assert qlora[header.index("not ok")] == "2 failed, 1 not run [1]"
    assert "- [1] qlora: 2 of 2 run(s) not ok; first error: ImportError: bitsandbytes needs a CUDA GPU" in md
    assert "second line" not in md
    tex = (tmp_path / "out" / "summary.tex").read_text()
    assert r"\texttt{qlora} & 0/3 & 2 failed, 1 not run$^{1}$" in tex
    assert (
        r"\newcommand{\bertclsTableNotes}{$^{1}$\,\texttt{qlora}: ImportError"
        in (tmp_path / "out" / "macros.tex").read_text()
    )
    summary = summarise(records_frame(load_records([results])))
    assert missing_methods(summary) == ["qlora (2 failed)"]  # named above the method figures


def test_bold_only_when_the_leader_is_significantly_ahead_of_every_other_method(tmp_path):
    tied = records_with_predictions(tmp_path / "tied", {"full": 0.850, "lora": 0.848, "prompt_tuning": 0.70})
    write_report([tied], tmp_path / "out_tied")
    md = (tmp_path / "out_tied" / "summary.md").read_text()
    header, rows = _md_rows(md)
    acc = header.index("test acc (95% CI)")
    assert not any(r[acc].startswith("**") for r in rows.values())
    assert "†" in rows["full"][acc] and "†" in rows["lora"][acc] and "†" not in rows["prompt_tuning"][acc]
    assert "No method is significantly best in test accuracy" in md
    macros = (tmp_path / "out_tied" / "macros.tex").read_text()
    assert "No variant is significantly the most accurate" in macros

    clear = records_with_predictions(tmp_path / "clear", {"full": 0.90, "lora": 0.80, "prompt_tuning": 0.70})
    write_report([clear], tmp_path / "out_clear")
    md = (tmp_path / "out_clear" / "summary.md").read_text()
    header, rows = _md_rows(md)
    assert rows["full"][acc].startswith("**") and not rows["lora"][acc].startswith("**")
    assert "(b) this training recipe" in md and "minimum detectable difference" in md
    assert "seeds agree" not in header  # dropped (issue 23): the (b) test answers what it pretended to
    assert rows["lora"][header.index("question")] == "recipe (b)"
    assert (
        rows["lora"][header.index("p (b, Holm)")] == "< 0.001"
        and rows["lora"][header.index("to resolve Δ")] == "resolved"
    )
    assert rows["lora"][header.index("MDD")].endswith("(b)")
    assert "Δ acc vs full, these models (a) [95% CI]" in header
    macros = (tmp_path / "out_clear" / "macros.tex").read_text()
    assert "significantly ahead of every other variant, the runner-up \\texttt{lora}" in macros
    assert "this training recipe" in macros
    assert (tmp_path / "out_clear" / "figures" / "paired_differences.png").stat().st_size > 5000


def test_reference_comes_from_the_records_or_the_cli_and_an_unknown_one_is_a_one_line_error(tmp_path, capsys):
    results = records_with_predictions(tmp_path / "bert_cls", {"full": 0.86, "lora": 0.84}, seeds=(0,))
    assert report_main([str(results), "--reference", "lora"]) == 0
    header, _ = _md_rows((results / "summary.md").read_text())
    assert "Δ acc vs lora, these models (a) [95% CI]" in header
    capsys.readouterr()
    (results / "summary.md").unlink()
    assert report_main([str(results), "--reference", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: report reference 'nope' is not a method") and len(err.splitlines()) == 1
    assert not (results / "summary.md").exists()  # nothing half-written


def test_records_without_predictions_or_with_altered_ones_fall_back_labelled(tmp_path, capsys):
    old = make_records(tmp_path / "old", sweep=False, forgetting=False, seeds=(0, 1))
    write_report([old], tmp_path / "out_old")
    assert "nested two-level bootstrap (no predictions" in (tmp_path / "out_old" / "summary.md").read_text()
    results = records_with_predictions(tmp_path / "bert_cls", {"full": 0.86, "lora": 0.84}, seeds=(0,))
    next((results / "runs").glob("lora*.predictions.jsonl.gz")).write_bytes(b"not gzip")
    write_report([results], tmp_path / "out")
    assert "sha256 differs" in capsys.readouterr().out
    assert "nested two-level bootstrap (no predictions" in (tmp_path / "out" / "summary.md").read_text()


def test_a_rank_table_pairs_each_rank_with_its_own_lines_reference_rank(tmp_path):
    """Δ in a rank table answers "does this rank differ from r = 8 of the same line?", not "from lora-qv[r=8]?"."""
    accs = {"lora-q[r=1]": 0.70, "lora-q[r=8]": 0.70, "lora-qv[r=1]": 0.72, "lora-qv[r=8]": 0.85}
    hypers = {label: {"r": int(label[-2]), "alpha": 2.0 * int(label[-2])} for label in accs}
    results = records_with_predictions(tmp_path / "rank", accs, hypers=hypers)
    write_report([results], tmp_path / "out", reference="lora-qv[r=8]")
    sweep = pd.read_csv(tmp_path / "out" / "rank_sweep.csv").set_index("label")
    assert (sweep["line_ref_rank"] == 8).all()
    # lora-q[r=1] equals lora-q[r=8] in accuracy; against lora-qv[r=8] it would be -0.15
    assert abs(sweep.loc["lora-q[r=1]", "vs_line_diff"]) < 0.03
    assert sweep.loc["lora-q[r=1]", "vs_line_p_holm"] > 0.05
    assert sweep.loc["lora-qv[r=1]", "vs_line_diff"] == pytest.approx(-0.13, abs=0.03)
    assert sweep.loc["lora-qv[r=1]", "vs_line_p_holm"] < 0.01
    assert sweep.loc["lora-qv[r=1]", "vs_line_question"] == "b"  # three seeds: the recipe question
    md = (tmp_path / "out" / "rank_sweep.md").read_text()
    assert "the same line at r = 8" in md and md.count("(line reference)") == 2


# ---------------------------------------------------------------- statistics (issue 23)


def test_one_seed_answers_these_models_and_says_the_recipe_question_is_not_estimable(tmp_path):
    results = records_with_predictions(tmp_path / "one", {"full": 0.86, "lora": 0.80}, seeds=(0,))
    write_report([results], tmp_path / "out")
    md = (tmp_path / "out" / "summary.md").read_text()
    header, rows = _md_rows(md)
    lora = rows["lora"]
    assert lora[header.index("question")] == "these models (a); (b) n.e.: 1 seed"
    assert lora[header.index("Δ acc vs full, recipe (b) [95% CI]")] == "not estimable (one seed)"
    assert lora[header.index("p (b, Holm)")] == ""
    assert lora[header.index("Δ acc vs full, these models (a) [95% CI]")].startswith("-0.0")
    assert lora[header.index("MDD")].endswith("(a)")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("method")
    assert pd.isna(summary.loc["lora", "vs_ref_b_low"]) and summary.loc["lora", "vs_ref_question"] == "a"
    # a sampled cost is never bold at one seed: there is no seed noise to be beyond
    assert not any(r[header.index("peak RSS (MB)")].startswith("**") for r in rows.values())
    assert "(a) these trained models" in md


def test_costs_have_intervals_over_seeds_and_bold_only_beyond_seed_noise(tmp_path):
    results = records_with_predictions(tmp_path / "costs", {"full": 0.86, "lora": 0.84, "qlora": 0.83})
    write_report([results], tmp_path / "out")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("method")
    assert (summary["peak_memory_mb_low"] < summary["peak_memory_mb"]).all()
    assert summary.loc["qlora", "peak_memory_mb_mark"] == "best"  # 900 MB vs 1,120 and 1,300, noise ±5 MB
    header, rows = _md_rows((tmp_path / "out" / "summary.md").read_text())
    assert (
        rows["qlora"][header.index("peak RSS (MB)")].startswith("**")
        and " [" in rows["qlora"][header.index("peak RSS (MB)")]
    )


def test_macro_f1_is_tested_by_the_engine_not_a_t_test_over_seeds(tmp_path):
    results = records_with_predictions(tmp_path / "f1", {"full": 0.90, "lora": 0.84, "prompt_tuning": 0.70})
    write_report([results], tmp_path / "out", metric="f1_macro")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("method")
    assert summary.loc["prompt_tuning", "test_f1_macro_mark"] not in ("best", "tied")  # was "tied" with t over 2 seeds
    assert summary.loc["full", "test_f1_macro_mark"] == "best"
    assert summary.loc["lora", "vs_ref_metric"] == "f1_macro" and summary.loc["lora", "vs_ref_b_high"] < 0
    assert summary.loc["full", "test_f1_macro_question"] == "b"
    header, _ = _md_rows((tmp_path / "out" / "summary.md").read_text())
    assert "Δ macro-F1 vs full, recipe (b) [95% CI]" in header


@pytest.mark.parametrize(
    "case, expected",
    [
        ("yaml-reference", "report.reference 'nope' of experiment"),
        ("no-predictions", "statistics on f1_macro need the runs' predictions files"),
        ("unknown-metric", "report metric 'bleu' is not produced by task classification (exp); allowed: accuracy"),
        ("not-produced", "report metric 'mcc' is not produced by"),
    ],
)
def test_bad_statistics_requests_are_one_line_errors_that_write_nothing(tmp_path, capsys, case, expected):
    args: list[str] = []
    if case == "yaml-reference":
        results = records_with_predictions(
            tmp_path / "exp", {"full": 0.86, "lora": 0.84}, seeds=(0,), config={"report": {"reference": "nope"}}
        )
    elif case == "no-predictions":
        results = make_records(tmp_path / "exp", sweep=False, forgetting=False, seeds=(0, 1))
        args = ["--metric", "f1_macro"]
    elif case == "unknown-metric":
        results = records_with_predictions(tmp_path / "exp", {"full": 0.86, "lora": 0.84}, seeds=(0,))
        args = ["--metric", "bleu"]
    else:
        results = records_with_predictions(
            tmp_path / "exp", {"full": 0.86, "lora": 0.84}, seeds=(0,), text_answers=True
        )
        args = ["--metric", "mcc"]
    before = sorted(p.name for p in results.iterdir())
    capsys.readouterr()
    assert report_main([str(results), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert sorted(p.name for p in results.iterdir()) == before  # nothing written


# ---------------------------------------------------------------- side numbers that agree with the interval (issue 29)


def test_a_duplicate_example_id_in_a_predictions_file_is_one_line_exit_2_naming_file_and_id(tmp_path, capsys):
    import json

    from peftlab.records.predictions import read_predictions, write_predictions

    results = records_with_predictions(tmp_path / "dup", {"full": 0.86, "lora": 0.84}, seeds=(0, 1))
    path = next((results / "runs").glob("lora*.json"))
    record = json.loads(path.read_text())
    test = read_predictions(results / "runs", record)["test"]
    ids = [str(i) for i in test.ids]
    ids[7] = ids[3]  # the same example twice: before, the last line silently won
    block = {"id": ids, **{k: list(v) for k, v in test.columns.items()}}
    record["predictions"] = write_predictions(results, record["run_id"], {"test": block})  # sha256 matches
    path.write_text(json.dumps(record))
    before = sorted(p.name for p in results.iterdir())
    capsys.readouterr()
    assert report_main([str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert record["predictions"]["file"] in err and repr(ids[3]) in err and "more than once" in err
    assert sorted(p.name for p in results.iterdir()) == before  # nothing written


def _to_resolve_rows(md: str) -> list[tuple[str, str, str, int]]:
    header, rows = _md_rows(md)
    out = []
    for method, row in rows.items():
        runs_ok = int(row[header.index("runs ok/planned")].split("/")[0])
        out.append((method, row[header.index("to resolve Δ")], row[header.index("p (b, Holm)")], runs_ok))
    return out


def test_to_resolve_never_names_the_seeds_already_run_for_a_row_holm_left_unresolved(tmp_path):
    """Many methods a little below the reference: Holm leaves several unresolved; none may say 'k seeds', k ≤ run."""
    accs = {"full": 0.86, **{f"m{k}": 0.86 - 0.004 * k for k in range(1, 9)}}
    results = records_with_predictions(tmp_path / "holm", accs, seeds=(0, 1, 2))
    write_report([results], tmp_path / "out")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    rows = _to_resolve_rows((tmp_path / "out" / "summary.md").read_text())
    unresolved = 0
    for method, text, p_holm, runs_ok in rows:
        if method == "full":
            continue
        if text.endswith(" seeds"):
            assert int(text.split()[0]) > runs_ok, (method, text, p_holm)
            unresolved += 1
        if text == "resolved":
            assert p_holm == "< 0.001" or float(p_holm) < 0.05
    assert unresolved > 0
    alpha = summary.set_index("method")["vs_ref_alpha"].dropna()
    assert (alpha < 0.05).any() and (alpha <= 0.05).all()  # the projections faced Holm's step-down α′


def test_a_wide_two_seed_spread_is_flagged_as_known_low_coverage_from_the_calibration_grid(tmp_path, monkeypatch):
    from peftlab.stats import calibration

    cells = tuple(
        {"seeds": 2, "n": 1000, "seed_sd": sd, "interaction": inter, "replicates": 500,
         "b_cover_acc": cover, "b_cover_diff": cover + 0.01}
        for sd, cover in ((0.0, 0.95), (0.02, 0.95), (0.05, 0.915)) for inter in (False, True)
    )  # fmt: skip
    monkeypatch.setattr(calibration, "known_cells", lambda path=None: cells)
    accs = {"full": 0.86, "lora": 0.84, "prompt_tuning": 0.75}
    results = records_with_predictions(
        tmp_path / "wide", accs, seeds=(0, 1), n=900, seed_shift={"prompt_tuning": [-0.05, 0.05]}
    )
    write_report([results], tmp_path / "out")
    md = (tmp_path / "out" / "summary.md").read_text()
    header, rows = _md_rows(md)
    assert rows["prompt_tuning"][header.index("question")] == "recipe (b) ‡"
    assert rows["lora"][header.index("question")] == "recipe (b)"
    assert rows["prompt_tuning"][header.index("Δ acc vs full, recipe (b) [95% CI]")].endswith("‡")
    assert "‡ prompt_tuning: its recipe (b) interval covers about 0.92, not 0.95" in md
    assert "2 seeds, seed sd ≥ 0.05, n = 1000" in md and "‡ lora" not in md
