# `make demo` and `make test` work on a fresh clone with only Python 3 and make:
# each creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU TensorFlow unless this machine has an NVIDIA GPU.
TF_PKG := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo tensorflow || echo tensorflow-cpu)
PYTEST_ARGS ?=
# Tests run in parallel processes (pytest-xdist), one per core, at most 4.
PYTEST := -m pytest -q -n auto --maxprocesses=4

.PHONY: demo test test-tensorflow test-jax bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install -q -e ".[test,demo,tuner,plot,jax]" $(TF_PKG)
	touch $@

demo: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/kerasreg demo $(DEMO_ARGS)

test: $(VENV)/.installed
	KERAS_BACKEND=tensorflow $(PY) $(PYTEST) $(PYTEST_ARGS)
	KERAS_BACKEND=jax $(PY) $(PYTEST) $(PYTEST_ARGS)

test-tensorflow: $(VENV)/.installed
	KERAS_BACKEND=tensorflow $(PY) $(PYTEST) $(PYTEST_ARGS)

test-jax: $(VENV)/.installed
	KERAS_BACKEND=jax $(PY) $(PYTEST) $(PYTEST_ARGS)

bench: $(VENV)/.installed
	KERAS_BACKEND=tensorflow $(PY) benchmarks/run.py
	KERAS_BACKEND=jax $(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
