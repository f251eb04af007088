# The two set-up commands (see README): each installs what it needs into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: main test fast-test lint bootstrap

main: bootstrap  ## run the main job: bert_cls on the builtin model and data, tables and figures
	$(PY) -m peftlab.run experiments/bert_cls.yaml

test: bootstrap  ## run every test (the slow ones train the real builtin MiniLM briefly)
	$(PY) -m pytest

fast-test: bootstrap
	$(PY) -m pytest -m "not slow" -q

lint: bootstrap
	$(PY) -m ruff check peftlab tests benchmarks

bootstrap:
	@VENV=$(VENV) ./scripts/bootstrap.sh
