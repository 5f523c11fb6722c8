"""Shared test set-up: a hermetic session; every test starts from the same seed.

Before keras is imported (Keras reads `KERAS_HOME` once, at import):

- `KERAS_HOME` points at a fresh temporary folder, removed at exit, so that
  a warm `~/.keras` (a downloaded dataset, a `keras.json`) cannot hide a
  missing step; subprocesses (the examples) inherit it;
- `KERASREG_DATA_DIR` is unset: a dataset is found only where a test puts it;
- TensorFlow's C++ log is quieted (`TF_CPP_MIN_LOG_LEVEL=2`) unless set.

On jax, `_faster_jax_compiles` (below) makes compiling cheaper.

Fixtures: `backend`; `write_fashion_mnist` (writes tiny Fashion-MNIST IDX
files into a folder); `fashion_mnist_dir` (one such folder for the session,
large enough for the examples' `--quick` runs).
"""

import atexit
import gzip
import os
import shutil
import struct
import tempfile

_KERAS_HOME = tempfile.mkdtemp(prefix="kerasreg-tests-keras-home-")
atexit.register(shutil.rmtree, _KERAS_HOME, ignore_errors=True)
os.environ["KERAS_HOME"] = _KERAS_HOME
os.environ.pop("KERASREG_DATA_DIR", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The names of the files of `keras.datasets.fashion_mnist` and of the Debian
# package dataset-fashion-mnist (written out here, not taken from kerasreg).
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


def write_idx(path, array, type_code=0x08, gz=None):
    """Writes `array` as an IDX file; gzipped when `path` ends with .gz."""
    array = np.asarray(array)
    gz = str(path).endswith(".gz") if gz is None else gz
    header = bytes([0, 0, type_code, array.ndim])
    header += struct.pack(">" + "i" * array.ndim, *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(payload)


def write_fashion_mnist(directory, n_train=6, n_test=4, seed=0, gz=True):
    """Writes the four Fashion-MNIST IDX files; returns the uint8 arrays.

    Class `k`'s images have a bright band on rows `2k + 4 .. 2k + 6` over
    dark noise, so a model can learn them. `gz=False` writes the files
    unzipped (the names without `.gz`).
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 64, (n, 28, 28)).astype(np.uint8)
        for k in range(10):
            x[y == k, 2 * k + 4 : 2 * k + 7, :] += 160
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    os.makedirs(directory, exist_ok=True)
    for key, fname in FASHION_MNIST_FILES.items():
        name = fname if gz else fname[: -len(".gz")]
        write_idx(os.path.join(directory, name), arrays[key], gz=gz)
    return arrays


def _faster_jax_compiles():
    """On jax, compiling dominates the suite's time (each new model or fit
    compiles its steps); two settings of the jax process, unless set already:

    - `jax_disable_most_optimizations`: XLA skips its costly LLVM passes
      (about 40% less compile time); the tests still run the compiled
      programs, only less optimized ones; set in the environment too, for
      the subprocesses (examples, README snippets, demo).
      `JAX_DISABLE_MOST_OPTIMIZATIONS=0` runs the suite with jax's defaults.
    - a compilation cache in a fresh temporary folder, one per process
      (pytest-xdist workers do not share one: jax writes it without a lock),
      removed at exit: a program compiled once (the same model and step in
      another test or fit) is loaded, not compiled again.
    """
    if keras.backend.backend() != "jax":
        return
    import jax

    if "JAX_DISABLE_MOST_OPTIMIZATIONS" not in os.environ:
        jax.config.update("jax_disable_most_optimizations", True)
        # The examples, README snippets and demo runs are subprocesses.
        os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        cache = tempfile.mkdtemp(prefix="kerasreg-tests-jax-cache-")
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


_faster_jax_compiles()


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.backend.clear_session(free_memory=False)  # gc.collect costs ~0.25 s a test
    keras.utils.set_random_seed(1337)
    yield


@pytest.fixture
def backend():
    return keras.backend.backend()


@pytest.fixture(name="write_fashion_mnist")
def _write_fashion_mnist_fixture():
    return write_fashion_mnist


@pytest.fixture(scope="session")
def fashion_mnist_dir(tmp_path_factory):
    """A folder of tiny Fashion-MNIST files for `KERASREG_DATA_DIR`.

    2560 training images (with `validation_split=0.1`: 2304 training, 256
    validation, what `examples/tune_fashion_mnist.py --quick` uses) and 256
    test images.
    """
    directory = tmp_path_factory.mktemp("fashion-mnist")
    write_fashion_mnist(directory, n_train=2560, n_test=256, seed=0)
    return directory
