"""The Optuna history figure plots the study's own objectives, each with the best so far in its direction."""

from __future__ import annotations

from pathlib import Path

import pytest

from peftlab.records.record import RunRecord
from peftlab.records.results import records_frame
from peftlab.reporting import figures
from peftlab.reporting.frame import tidy_runs

LOSSES = [0.9, 0.5, 0.7, 0.4, 0.6]
PARAMS = [8000, 4000, 16000, 2000, 4000]


def _trial_record(number: int) -> dict:
    return {
        "experiment": "search",
        "label": f"lora[trial={number}]",
        "method": "lora",
        "seed": 0,
        "status": "ok",
        "metrics": {"validation": {"accuracy": 0.5 + 0.01 * number, "loss": LOSSES[number]}},
        "trial": {
            "number": number,
            "params": {"lr": 1e-3 * (number + 1)},
            "state": "COMPLETE",
            "values": {"val_loss": LOSSES[number], "trainable_params": PARAMS[number]},
            "directions": {"val_loss": "minimize", "trainable_params": "minimize"},
        },
    }


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list:
    """The figures handed to `style.save`, kept open for inspection."""
    kept: list = []
    monkeypatch.setattr(figures.style, "save", lambda fig, out, stem: kept.append(fig) or [out / f"{stem}.png"])
    return kept


def test_history_plots_each_objective_with_its_own_best_so_far(drawn: list, tmp_path: Path) -> None:
    runs = tidy_runs(
        records_frame([RunRecord.model_validate({"run_id": f"t{n}", **_trial_record(n)}) for n in range(5)])
    )
    figures.optuna_history(runs, None, {}, tmp_path)
    (fig,) = drawn
    axes = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [ax.get_ylabel() for ax in axes] == [
        "val loss\n(lower is better)",
        "trainable params\n(lower is better)",
    ]
    for ax, values in zip(axes, (LOSSES, PARAMS), strict=True):
        (scatter,) = ax.collections
        assert [float(y) for _, y in scatter.get_offsets()] == values  # the objective, not validation accuracy
        (best,) = ax.get_lines()
        running_min = [min(values[: i + 1]) for i in range(len(values))]
        assert [float(y) for y in best.get_ydata()] == running_min  # minimised: the running minimum
