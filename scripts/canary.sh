#!/usr/bin/env bash
# The canary (`make test-latest`): tomorrow's releases, today. A fresh .venv-latest gets the newest
# releases pyproject.toml allows, WITHOUT the lock, and runs the fast suite. Then every dependency
# whose newest release pyproject still excludes is tried on its own against tests/test_upstream.py
# (the known upstream incompatibilities and private APIs), so a held-back release that works again
# is seen too. Run it before `python scripts/lock.py refresh`; refresh only if it passed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-latest}
# torch stays the CPU pin here (its newest releases are multi-GB CUDA builds); CANARY_TORCH=torch tries the newest
TORCH_SPEC=${CANARY_TORCH:-torch==2.13.0}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MPLBACKEND=Agg
started=$(date +%s)
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
py="$VENV/bin/python"
"$py" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/bootstrap.txt
"$py" -m pip install -q --disable-pip-version-check "$TORCH_SPEC" 2>&1 | grep -v "^WARNING" || true
uv=("$VENV/bin/uv" pip install --quiet --python "$py")
extras=$("$PYTHON" -c "import sys; sys.path.insert(0, 'scripts'); import lock; print(','.join(lock.EXTRAS))")
"${uv[@]}" --no-build-isolation -e ".[$extras]"
"${uv[@]}" --require-hashes --no-deps -r requirements/assets.txt
echo "canary: newest allowed releases installed in $(( $(date +%s) - started ))s:"
"$py" - <<'PY'
from peftlab.records.environment import package_versions
print("  " + ", ".join(f"{k} {v}" for k, v in package_versions().items() if v and k != "peftlab"))
PY
status=0
"$py" -m pytest -m "not slow" -q -p no:cacheprovider || status=$?
echo "canary: held back (the newest release is outside pyproject.toml's range or a dependency's own):"
held=$("$VENV/bin/uv" pip list --python "$py" --outdated --format json 2>/dev/null | "$py" -c "
import json, sys
for p in json.load(sys.stdin):
    if p['name'] not in ('torch', 'pip'):
        print(p['name'] + '==' + p['latest_version'] + ' ' + p['version'])
")
if [ -z "$held" ]; then echo "  none"; fi
while read -r req current; do
  [ -n "$req" ] || continue
  echo "  $req (allowed: $current): tests/test_upstream.py with it"
  "${uv[@]}" "$req" >/dev/null 2>&1 || { echo "    could not be installed beside the rest"; continue; }
  "$py" -m pytest tests/test_upstream.py -q -p no:cacheprovider -rxX 2>&1 | grep -E "XFAIL|XPASS|FAILED|passed|failed" | sed 's/^/    /' || true
  "${uv[@]}" "${req%%==*}==$current" >/dev/null 2>&1
done <<< "$held"
echo "canary: $([ $status = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - started ))s (fast suite exit $status)"
exit $status
