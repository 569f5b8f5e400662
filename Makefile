# Two entry points for a fresh machine with nothing but Python: `make quickstart`, `make test`.
# Each creates .venv and installs everything, the CPU build of PyTorch pinned first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install quickstart test test-fast lint bench
install: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/fishleg-tune search search_spaces/quickstart.yaml --name quickstart-$$(date +%Y%m%d-%H%M%S)

# The whole suite, slow (multi-node, fault-injection) tests included: what CI runs.
test: $(STAMP)
	$(PY) -m pytest -m "slow or not slow"

# The default, fast selection (slow tests skipped).
test-fast: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check fishleg tuning tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/step_time.py
