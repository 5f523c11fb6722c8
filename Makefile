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

.PHONY: demo test test-tensorflow test-jax test-compat bench fashion-mnist docs docs-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install -q -e ".[test,demo,tuner,plot,jax,docs]" $(TF_PKG)
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

# `make test-compat` (not part of `make test`): the tests against the lowest
# Keras that pyproject.toml declares and the newest Keras release, each on the
# tensorflow and the jax backend, then a smoke run against keras-nightly. Each
# Keras gets its own virtualenv, .venv-compat/keras-<version>/, built from PyPI
# with the TensorFlow and JAX of its time (for the floor: those Keras' own CI
# pinned at that release). Results: benchmarks/RESULTS.md, "Keras compatibility".
# The subset: -m "not slow and not example" drops only the tests that train for
# more than a few seconds and the runs of examples/ (28 of 761); every module
# keeps its tests, and Keras' own layer tests (test_keras_layer_tests.py) run
# against each installed Keras. The nightly smoke run: the quick files of the
# ground layer (layers, initializers, schedules, callbacks, metrics).
COMPAT := .venv-compat
COMPAT_MARK := not slow and not example
KERAS_FLOOR := 3.10.0
KERAS_NEWEST := 3.15.1
COMPAT_DEPS_$(KERAS_FLOOR) := tensorflow-cpu==2.18.1 jax==0.6.0 jaxlib==0.6.0
COMPAT_DEPS_$(KERAS_NEWEST) := tensorflow-cpu==2.21.0 jax==0.10.2 jaxlib==0.10.2
COMPAT_DEPS_nightly := $(COMPAT_DEPS_$(KERAS_NEWEST))
COMPAT_SMOKE := tests/test_dropout.py tests/test_batch_normalization.py \
	tests/test_initializers.py tests/test_schedules.py \
	tests/test_callbacks_schedule.py tests/test_weight_ema.py tests/test_metrics.py
COMPAT_PIP = $(COMPAT)/keras-$*/bin/python -m pip install -q --progress-bar off

$(COMPAT)/keras-%/.installed: pyproject.toml
	$(PYTHON) -m venv $(COMPAT)/keras-$*
	$(COMPAT_PIP) --upgrade pip
	$(COMPAT_PIP) -e ".[test,tuner,plot]" $(COMPAT_DEPS_$*) \
		$(if $(filter nightly,$*),,keras==$*)
	touch $@

# keras-nightly ships the module `keras` too: it replaces the release that
# kerasreg's requirement pulled in, and is upgraded to the latest at each run.
$(COMPAT)/keras-nightly/.nightly: $(COMPAT)/keras-nightly/.installed
	$(COMPAT)/keras-nightly/bin/python -m pip uninstall -q -y keras
	touch $@

test-compat: $(COMPAT)/keras-$(KERAS_FLOOR)/.installed \
		$(COMPAT)/keras-$(KERAS_NEWEST)/.installed $(COMPAT)/keras-nightly/.nightly
	$(COMPAT)/keras-nightly/bin/python -m pip install -q --progress-bar off --pre --upgrade keras-nightly
	@failed=; for v in $(KERAS_FLOOR) $(KERAS_NEWEST); do \
		for b in tensorflow jax; do \
			echo "== Keras $$v, $$b backend"; \
			KERAS_BACKEND=$$b $(COMPAT)/keras-$$v/bin/python $(PYTEST) -m "$(COMPAT_MARK)" $(PYTEST_ARGS) \
				|| failed="$$failed keras-$$v/$$b"; \
		done; \
	done; \
	nightly=$$($(COMPAT)/keras-nightly/bin/python -c 'import keras; print(keras.__version__)'); \
	for b in tensorflow jax; do \
		echo "== keras-nightly $$nightly, $$b backend (smoke)"; \
		KERAS_BACKEND=$$b $(COMPAT)/keras-nightly/bin/python $(PYTEST) $(COMPAT_SMOKE) $(PYTEST_ARGS) \
			|| failed="$$failed keras-nightly/$$b"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-compat failed:$$failed"; exit 1; fi

bench: $(VENV)/.installed
	KERAS_BACKEND=tensorflow $(PY) benchmarks/run.py
	KERAS_BACKEND=jax $(PY) benchmarks/run.py

# The real Fashion-MNIST (`kerasreg.datasets.load("fashion_mnist")`, the
# `--dataset fashion_mnist` runs): the Debian/Ubuntu package
# dataset-fashion-mnist, installed with apt-get when run as root; otherwise
# prints what to do. The tests never need it.
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
fashion-mnist:
	@cache="$${KERAS_HOME:-$$HOME/.keras}/datasets/fashion-mnist"; \
	if [ -f $(FASHION_MNIST_DIR)/t10k-labels-idx1-ubyte.gz ]; then \
		echo "Fashion-MNIST is installed in $(FASHION_MNIST_DIR) (Debian package dataset-fashion-mnist)."; \
	elif [ -f "$$cache/t10k-labels-idx1-ubyte.gz" ]; then \
		echo "Fashion-MNIST is in the Keras cache ($$cache)."; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		set -e; \
		apt-get update -q; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dataset-fashion-mnist; \
		echo "Fashion-MNIST installed in $(FASHION_MNIST_DIR)."; \
	else \
		echo "Fashion-MNIST is not in $(FASHION_MNIST_DIR). Any one of these gets it:"; \
		if command -v apt-get >/dev/null 2>&1; then \
			echo "  sudo make fashion-mnist     (runs: apt-get install dataset-fashion-mnist)"; \
		fi; \
		echo "  let Keras download it once, into ~/.keras/datasets/fashion-mnist/ (needs network):"; \
		echo "    $(PY) -c 'import keras; keras.datasets.fashion_mnist.load_data()'   (make demo creates $(VENV))"; \
		echo "  or put its four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,"; \
		echo "    t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a folder and"; \
		echo "    export KERASREG_DATA_DIR=/that/folder"; \
		exit 1; \
	fi

# The docs site (docs/ + mkdocs.yml): `make docs` builds it into site/ with
# --strict (a broken link or anchor, a page left out of the nav or a docstring
# that mkdocstrings cannot parse fails the build), offline: no fonts or
# plugins fetched. Open site/index.html. It needs only the `docs` extra (the
# API pages are read from the sources, kerasreg is not imported).
# `make docs-check` (not part of `make test`) also takes screenshots of the
# home page, a guide and an API page with headless Chromium (Debian's package
# chromium, installed with apt-get when run as root) into site/screenshots/,
# and fails if one is missing or blank; look at them.
DOCS_PAGES := index guides/ensembles api/ensembles
DOCS_SHOTS := site/screenshots
CHROMIUM := chromium --headless --no-sandbox --disable-gpu \
	--disable-background-networking --disable-component-update --disable-sync \
	--no-first-run --window-size=1280,2000

$(VENV)/.docs-installed: $(PY) pyproject.toml
	$(PY) -m pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

docs-check: docs
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			set -e; \
			apt-get update -q; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; \
		else \
			echo "make docs-check needs Chromium: sudo apt-get install chromium (Debian/Ubuntu)"; \
			exit 1; \
		fi; \
	fi
	@mkdir -p $(DOCS_SHOTS)
	@set -e; for page in $(DOCS_PAGES); do \
		png=$(DOCS_SHOTS)/$$(echo $$page | tr / -).png; \
		rm -f $$png; \
		timeout 120 $(CHROMIUM) --screenshot=$$png "file://$(CURDIR)/site/$$page.html" >/dev/null 2>&1 || true; \
		size=$$(wc -c < $$png 2>/dev/null || echo 0); \
		if [ "$$size" -lt 50000 ]; then \
			echo "docs-check: no screenshot, or a blank one ($$size bytes), of site/$$page.html"; exit 1; \
		fi; \
		echo "site/$$page.html -> $$png ($$size bytes)"; \
	done

clean:
	rm -rf $(VENV) $(COMPAT) build *.egg-info site
