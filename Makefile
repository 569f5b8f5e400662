# Two entry points for a fresh machine with nothing but Python: `make quickstart`, `make test`.
# Each creates .venv and installs everything, the CPU build of PyTorch pinned first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,lightning,hf]'
	touch $(STAMP)

.PHONY: install quickstart test test-fast lint bench report-screenshot gpu-wheels gpu-check
install: $(STAMP)

# The sweep the README's next commands name (fishleg-runs/quickstart); a previous one is replaced.
quickstart: $(STAMP)
	$(VENV)/bin/fishleg-tune search search_spaces/quickstart.yaml --overwrite

# The whole suite, slow (multi-node, fault-injection) tests included: what CI runs. Two pytest
# workers, one test file each at a time (a file's tests share its fixtures and run in order).
test: $(STAMP)
	$(PY) -m pytest -m "slow or not slow" -n 2 --dist loadfile --durations=15

# The default, fast selection (slow tests skipped).
test-fast: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check fishleg tuning tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/step_time.py

# docs/report.png: the report of a finished quickstart sweep (SWEEP=...) as Chromium draws it.
SWEEP ?= fishleg-runs/quickstart
report-screenshot: $(STAMP)
	$(VENV)/bin/fishleg-tune report $(SWEEP)
	$(PY) -m tests.browser $(SWEEP)/report.html docs/report.png

# The wheels the `fishleg` package needs beyond torch, PyYAML and typing_extensions, for the
# lent GPU machine's Python (PYVER, 3.12 there), at the versions installed here; see
# benchmarks/gpu_check.sh. `carry: [".whl"]` takes them along.
WHEELS ?= .whl
PYVER ?= 3.12
GPU_WHEELS := pydantic pydantic-core annotated-types typing-inspection typing-extensions pytorch_optimizer
gpu-wheels: $(STAMP)
	rm -rf $(WHEELS)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version $(PYVER) --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d $(WHEELS) $$($(PY) -c 'import sys; from importlib.metadata import version; print(*(f"{n}=={version(n)}" for n in sys.argv[1:]))' $(GPU_WHEELS))

# The GPU checks (on a machine without CUDA the GPU parts are skipped with the reason).
gpu-check: gpu-wheels
	PY=$(PY) bash benchmarks/gpu_check.sh
