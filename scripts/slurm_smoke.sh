#!/usr/bin/env bash
# Smoke test of `--launcher slurm` on a real single-node SLURM (scripts/slurm_local.sh):
# submit a small grid as a job array of --join workers, wait for it, check that every planned
# run has exactly one record made by exactly one worker, and print the `sacct` lines.
#
#   scripts/slurm_smoke.sh                      a 6-run grid on builtin:minilm-l6 (about a minute)
#   scripts/slurm_smoke.sh EXP.yaml [k=v ...]   your experiment (keep it small)
#
# PYTHON: the interpreter with peftlab installed (default: python3 on PATH).
# PEFTLAB_SLURM_INSTALL=1: let slurm_local.sh apt-get install SLURM when it is missing.
# The results go to a fresh temporary folder (output_dir is overridden), printed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/peftlab-slurm-smoke.XXXXXX")

eval "$("$ROOT/scripts/slurm_local.sh" ${PEFTLAB_SLURM_INSTALL:+--install} | tail -1)"  # exports SLURM_CONF

if [[ $# -eq 0 ]]; then
    cat >"$WORK/smoke.yaml" <<'EOF'
name: slurm_smoke
model: builtin:minilm-l6
data: {source: builtin:rotten_tomatoes, max_length: 32, train_limit: 64, validation_limit: 16, test_limit: 16}
train: {steps: 2, batch_size: 8, eval_every: 2, eval_batch_size: 16}
seeds: [0, 1]
methods:
  - {method: lora, lr: 1.0e-3, grid: {r: [2, 4]}}
  - {method: ia3, lr: 1.0e-3}
launcher: {tasks: 2, time: 10, cpus_per_task: 1}
EOF
    set -- "$WORK/smoke.yaml"
fi
EXPERIMENT=$1
shift

cd "$WORK"
echo "slurm_smoke: $PYTHON -m peftlab.run $EXPERIMENT $* output_dir=$WORK/results --launcher slurm --no-report"
"$PYTHON" -m peftlab.run "$EXPERIMENT" "$@" "output_dir=$WORK/results" --launcher slurm --no-report | tee "$WORK/launcher.log"
JOB=$(sed -n 's/^peftlab: submitted slurm job \([0-9]*\).*/\1/p' "$WORK/launcher.log")
[[ -n $JOB ]] || { echo "slurm_smoke: no job id in the launcher's output" >&2; exit 1; }

# every planned run: exactly one record, status ok, and exactly one worker that finished it
"$PYTHON" - "$EXPERIMENT" "$WORK/results" "$@" <<'EOF'
import json, re, sys
from pathlib import Path
from peftlab.config import load_experiment
from peftlab.planners.grid import make_plan

path, results, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
experiment = load_experiment(path, [*overrides, f"output_dir={results}"])
planned = {spec.run_id: spec for spec in make_plan(experiment)}
runs = experiment.results_dir() / "runs"
records = {p.stem: json.loads(p.read_text()) for p in runs.glob("*.json")}
assert set(records) == set(planned), f"records {sorted(records)} != plan {sorted(planned)}"
bad = {run_id: r["status"] for run_id, r in records.items() if r["status"] != "ok"}
assert not bad, f"runs not ok: {bad}"
logs = "".join(p.read_text() for p in (experiment.results_dir() / "slurm").rglob("*.out"))
for spec in planned.values():
    done = len(re.findall(rf"✓ \[\d+/\d+\] {re.escape(spec.label)} s{spec.seed}:", logs))
    assert done == 1, f"{spec.label} seed {spec.seed} finished {done} times in the workers' logs"
print(f"slurm_smoke: {len(planned)} planned runs, {len(records)} records, each made exactly once, all ok")
EOF

# slurmctld hands job records to slurmdbd asynchronously: wait until sacct shows every task ended
for _ in $(seq 60); do
    states=$(sacct -j "$JOB" -X -n -o State 2>/dev/null | tr -d ' ')
    [[ -n $states ]] && ! grep -qE 'PENDING|RUNNING|REQUEUED|COMPLETING' <<<"$states" && break
    sleep 0.5
done
echo "slurm_smoke: sacct -j $JOB"
sacct -j "$JOB" --format=JobID%14,JobName%22,Partition,AllocCPUS,State,ExitCode,Elapsed,NodeList
echo "slurm_smoke: results in $WORK/results"
