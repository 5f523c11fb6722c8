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

.PHONY: demo test test-tensorflow test-jax bench fashion-mnist clean

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

clean:
	rm -rf $(VENV) build *.egg-info
