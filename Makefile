# The two set-up commands (see README): each installs what it needs into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: main test fast-test test-latest lint bootstrap lock

main: bootstrap  ## run the main job: bert_cls on the builtin model and data, tables and figures
	$(PY) -m peftlab.run experiments/bert_cls.yaml

test: bootstrap  ## run every test (the slow ones train the real builtin MiniLM briefly)
	$(PY) -m pytest

fast-test: bootstrap
	$(PY) -m pytest -m "not slow" -q

test-latest:  ## the canary: newest allowed releases without the lock, fast suite (run before `make lock`)
	./scripts/canary.sh

lock:  ## re-resolve requirements/*.txt to the newest releases pyproject allows (after the canary passed)
	@test -x $(PY) || { echo "error: make lock runs in $(VENV) (make bootstrap once, before editing pyproject.toml)" >&2; exit 2; }
	$(PY) scripts/lock.py refresh

lint: bootstrap
	$(PY) -m ruff check peftlab tests benchmarks

bootstrap:
	@VENV=$(VENV) ./scripts/bootstrap.sh
