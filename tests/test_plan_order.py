"""Run order is not confounded with method: seed by seed across methods, each round rotated."""

from __future__ import annotations

from peftlab.config import load_experiment
from peftlab.planners.grid import make_plan

METHODS = "  - method: lora\n    lr: 1.0e-2\n  - method: ia3\n    lr: 1.0e-2\n  - method: full\n    lr: 1.0e-4\n"


def test_runs_go_seed_by_seed_and_every_method_leads_a_round(experiment_file):
    exp = load_experiment(experiment_file(methods=METHODS, seeds="[0, 1, 2]"))
    plan = make_plan(exp)
    assert [s.seed for s in plan] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    firsts = [plan[i].method for i in (0, 3, 6)]
    assert sorted(firsts) == ["full", "ia3", "lora"]  # each method is first in one round
    for i in (0, 3, 6):
        assert {s.method for s in plan[i : i + 3]} == {"ia3", "full", "lora"}


def test_the_order_keeps_the_run_ids_and_only_filters_them(experiment_file):
    exp = load_experiment(experiment_file(methods=METHODS, seeds="[0, 1]"))
    plan = make_plan(exp)
    assert len({s.run_id for s in plan}) == 6 and all(f"-s{s.seed}-" in s.run_id for s in plan)
    only = make_plan(exp, ["lora"])
    assert [s.run_id for s in only] == [s.run_id for s in plan if s.method == "lora"]
