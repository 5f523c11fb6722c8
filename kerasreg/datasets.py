"""Small image-classification datasets, loaded offline when possible.

`load()` returns the three splits a careful experiment needs: training data,
validation data for choosing hyperparameters, and a test set to be looked at
once. As the lecture notes insist, the training set is shuffled *before* the
validation set is cut off from it, because datasets are often stored in an
order (by class, by writer) that would otherwise bias the validation split.
"""

import gzip
import os
import tempfile
import warnings

import numpy as np

from kerasreg import _checks

DATASETS = ("digits", "fashion_mnist")

# Fraction of scikit-learn's digits held out as a fixed test set (digits ships
# with no test split of its own).
DIGITS_TEST_FRACTION = 0.2
# Seed of the digits test split: fixed, independent of `load(seed=...)`, so that
# every run is scored on the same test images, as with Fashion-MNIST.
DIGITS_TEST_SEED = 0

# The file names used both by `keras.datasets.fashion_mnist` (its cache,
# `~/.keras/datasets/fashion-mnist/`) and by the Debian package
# `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/`). A folder
# named by `data_dir` or `KERASREG_DATA_DIR` may also hold them unzipped
# (the names without `.gz`).
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
# The environment variable naming a folder of dataset files, read when
# `load()` gets no `data_dir`.
DATA_DIR_ENV = "KERASREG_DATA_DIR"
# How to get the real Fashion-MNIST, for the error messages.
FASHION_MNIST_HOW_TO = (
    "`make fashion-mnist` in a kerasreg checkout (as root on Debian/Ubuntu "
    "it runs `apt-get install dataset-fashion-mnist`)"
)

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def load(name, validation_split=0.1, seed=0, data_dir=None, verbose=0):
    """Loads a dataset as training, validation and test splits.

    The images are float32 arrays scaled to [0, 1] with a trailing channel
    axis; the labels are int32 class indices. Add a `keras.layers.Flatten()`
    in front of an MLP.

    - `"digits"`: scikit-learn's bundled 8x8 handwritten digits (1797 images,
      10 classes, no download). Images have shape `(N, 8, 8, 1)`, pixel values
      0-16 divided by 16. Digits has no test split of its own: a fixed,
      class-stratified 20% of the images (seeded with `DIGITS_TEST_SEED`,
      independent of `seed`) is the test set (359 images), the remaining 1438
      are the training pool. Needs scikit-learn (`pip install kerasreg[demo]`
      or `pip install scikit-learn`).
    - `"fashion_mnist"`: Zalando's Fashion-MNIST (60000 training, 10000 test
      images, 10 classes), shape `(N, 28, 28, 1)`, pixel values divided by 255.
      The four IDX files (`train-images-idx3-ubyte.gz`,
      `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
      `t10k-labels-idx1-ubyte.gz`, each gzipped or not) are read from the
      first of:

      1. `data_dir`, when given;
      2. else the folder named by the environment variable
         `KERASREG_DATA_DIR`, when set;
      3. else the Keras cache (`~/.keras/datasets/fashion-mnist/`, or
         `$KERAS_HOME/datasets/fashion-mnist/`: where
         `keras.datasets.fashion_mnist.load_data()` stores them), then the
         files of the Debian package `dataset-fashion-mnist`
         (`/usr/share/datasets/fashion-mnist/`; `make fashion-mnist`
         installs it), then a download by
         `keras.datasets.fashion_mnist.load_data()`.

      A folder named by `data_dir` or `KERASREG_DATA_DIR` must hold the files
      (directly or in a `fashion-mnist/` subfolder, so that the Keras cache's
      `datasets/` folder or `/usr/share/datasets` work too): nothing else is
      searched then, and a missing file is an error. With `verbose=1`, one
      line says which source was used; a source whose files cannot be read
      is skipped with a warning; when none works, a `FileNotFoundError`
      names the options.

    The training pool is shuffled with `seed`, then its first
    `int(validation_split * N)` examples become the validation set and the
    rest the training set (the lecture notes' recipe).

    Args:
        name: String. `"digits"` or `"fashion_mnist"`.
        validation_split: Float in [0, 1). Fraction of the training pool held
            out for validation. Defaults to `0.1`.
        seed: Non-negative integer seeding the shuffle before the validation
            split. Defaults to `0`.
        data_dir: String, path-like or `None`. Folder holding the dataset's
            files (`"fashion_mnist"` only; `"digits"` reads no files). `None`
            reads the environment variable `KERASREG_DATA_DIR`, then searches
            the Keras cache and the Debian package, then downloads. Defaults
            to `None`.
        verbose: `0` or `1` (or a boolean). With `1`, prints one line naming
            the source the data came from (`kerasreg.datasets: digits from
            ...`). Defaults to `0` (silent, as `keras.datasets` loaders).

    Returns:
        `(x_train, y_train), (x_val, y_val), (x_test, y_test)`.

    Raises:
        FileNotFoundError: the dataset's files are nowhere to be found (the
            message names the options).
        OSError: the files in `data_dir` / `KERASREG_DATA_DIR` are not
            readable IDX files.

    Example:

    ```python
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        kerasreg.datasets.load("digits", validation_split=0.1, seed=0)
    )
    assert x_train.shape[1:] == (8, 8, 1) and x_train.dtype == "float32"
    assert len(x_train) + len(x_val) == 1438 and len(x_test) == 359
    ```
    """
    verbose = _checks.verbose(verbose, (0, 1))
    splits, source = _load_with_source(name, validation_split, seed, data_dir)
    if verbose:
        print(f"kerasreg.datasets: {name} from {source}")
    return splits


def _load_with_source(name, validation_split=0.1, seed=0, data_dir=None):
    """`load()` without the printing; also returns a description of the source."""
    _validate(name, validation_split, seed, data_dir)
    if name == "digits":
        (x_pool, y_pool), (x_test, y_test), source = _digits()
    else:
        (x_pool, y_pool), (x_test, y_test), source = _fashion_mnist(data_dir)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_pool))
    x_pool, y_pool = x_pool[order], y_pool[order]
    n_val = int(validation_split * len(x_pool))
    splits = (
        (x_pool[n_val:], y_pool[n_val:]),
        (x_pool[:n_val], y_pool[:n_val]),
        (x_test, y_test),
    )
    return splits, source


def _validate(name, validation_split, seed, data_dir=None):
    if name not in DATASETS:
        raise ValueError(
            "Invalid value received for argument `name`. Expected one of "
            f"{DATASETS}. Received: name={name!r}"
        )
    _checks.float_between(
        "validation_split", validation_split, 0, 1, closed=(True, False)
    )
    _checks.int_at_least("seed", seed, 0)
    if data_dir is not None and (
        not isinstance(data_dir, (str, os.PathLike)) or not os.fspath(data_dir)
    ):
        raise _checks.invalid("data_dir", data_dir, "a path to a folder or None")


def _images(x, scale):
    """uint/float images (N, H, W) -> float32 (N, H, W, 1) in [0, 1]."""
    return (np.asarray(x, dtype=np.float32) / np.float32(scale))[..., None]


def _digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            'The "digits" dataset needs scikit-learn. Install it with '
            "`pip install kerasreg[demo]` (or `pip install scikit-learn`)."
        ) from e
    bunch = load_digits()
    x = _images(bunch.images, 16.0)
    y = bunch.target.astype(np.int32)
    test = _stratified_indices(y, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    pool = np.setdiff1d(np.arange(len(y)), test)
    source = "scikit-learn's bundled copy (sklearn.datasets.load_digits)"
    return (x[pool], y[pool]), (x[test], y[test]), source


def _stratified_indices(y, fraction, seed):
    """Sorted indices of a seeded sample holding `fraction` of each class."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        k = int(round(fraction * len(members)))
        chosen.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(chosen))


def _read_idx(path):
    """Reads an IDX file (optionally gzipped) into a numpy array.

    IDX: two zero bytes, a type code byte, a byte with the number of
    dimensions `d`, `d` big-endian int32 sizes, then the data in C order.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"Not an IDX file (bad magic number): {path}")
    dtype = _IDX_DTYPES.get(data[2])
    if dtype is None:
        raise ValueError(f"Unknown IDX type code 0x{data[2]:02x} in {path}")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data, ">i4", ndim, offset=4))
    count = int(np.prod(shape)) if shape else 1
    if len(data) - header != count * dtype.itemsize:
        raise ValueError(
            f"Truncated or oversized IDX file {path}: header says shape "
            f"{shape}, found {len(data) - header} bytes of data."
        )
    array = np.frombuffer(data, dtype, count, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _keras_cache_dir():
    """Where `keras.datasets.fashion_mnist.load_data()` stores its files.

    Mirrors Keras 3 (`keras.src.backend.config` and `keras.utils.get_file`):
    `$KERAS_HOME`, else `~/.keras` (`/tmp/.keras` when the home folder is not
    writable); `/tmp/.keras` again when that folder is not writable.
    """
    if "KERAS_HOME" in os.environ:
        home = os.environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    home = os.path.expanduser(home)
    if not os.access(home, os.W_OK):
        tmp = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
        home = os.path.join(tmp, ".keras")
    return os.path.join(home, "datasets", "fashion-mnist")


def _fashion_mnist_local_sources():
    """(description, directory) pairs searched, in order, before a download."""
    cache = _keras_cache_dir()
    return [
        (f"the Keras cache ({cache})", cache),
        (
            "the Debian package dataset-fashion-mnist "
            f"({DEBIAN_FASHION_MNIST_DIR})",
            DEBIAN_FASHION_MNIST_DIR,
        ),
    ]


def _fashion_mnist_paths(directory):
    """Paths of the four files in `directory` (gzipped or raw), missing names."""
    paths, missing = {}, []
    for key, gz_name in FASHION_MNIST_FILES.items():
        raw_name = gz_name[: -len(".gz")]
        for fname in (gz_name, raw_name):
            path = os.path.join(directory, fname)
            if os.path.isfile(path):
                paths[key] = path
                break
        else:
            missing.append(f"{raw_name}[.gz]")
    return paths, missing


def _read_fashion_mnist(paths):
    arrays = {key: _read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"The {split} images (shape {x.shape}) and labels (shape "
                f"{y.shape}) do not match: expected (N, H, W) and (N,)."
            )
    return (arrays["x_train"], arrays["y_train"]), (
        arrays["x_test"],
        arrays["y_test"],
    )


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def _fashion_mnist_from(label, data_dir):
    """Reads the files of a folder the caller named; no other place is tried."""
    data_dir = os.path.expanduser(os.fspath(data_dir))
    subdir = os.path.join(data_dir, "fashion-mnist")
    paths, missing = _fashion_mnist_paths(data_dir)
    if missing:
        sub_paths, sub_missing = _fashion_mnist_paths(subdir)
        if not sub_missing:
            paths, missing, data_dir = sub_paths, [], subdir
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST was not found in {label}={data_dir!r}: missing "
            f"{', '.join(missing)} there and in its fashion-mnist/ subfolder. "
            f"Put the four IDX files there (gzipped or not), point {label} at "
            "the folder holding them, or leave both data_dir and "
            f"{DATA_DIR_ENV} unset to use the Keras cache, the Debian package "
            f"dataset-fashion-mnist ({FASHION_MNIST_HOW_TO}) or a download."
        )
    try:
        raw = _read_fashion_mnist(paths)
    except (OSError, EOFError, ValueError) as e:
        raise OSError(
            f"The Fashion-MNIST files in {label}={data_dir!r} are not readable "
            f"IDX files ({_one_line(e)})."
        ) from e
    return raw, f"{label} ({data_dir})"


def _download_fashion_mnist():
    import keras

    return keras.datasets.fashion_mnist.load_data()


def _fashion_mnist_search():
    """The Keras cache, the Debian package, then a download."""
    sources = _fashion_mnist_local_sources()
    for description, directory in sources:
        paths, missing = _fashion_mnist_paths(directory)
        if missing:
            continue
        try:
            return _read_fashion_mnist(paths), description
        except (OSError, EOFError, ValueError) as e:
            warnings.warn(
                f"kerasreg.datasets: skipping {description}: "
                f"unreadable files ({_one_line(e)})",
                stacklevel=2,
            )
    try:
        raw = _download_fashion_mnist()
    except Exception as e:
        searched = " nor in ".join(description for description, _ in sources)
        raise FileNotFoundError(
            f"Fashion-MNIST was not found in {searched}, and the download "
            f"failed ({_one_line(e)}). Options: install the Debian package "
            f"dataset-fashion-mnist ({FASHION_MNIST_HOW_TO}); pass "
            f"`data_dir=` or set {DATA_DIR_ENV} to a folder holding the four "
            "IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzipped or "
            "not); or allow network access so that "
            "keras.datasets.fashion_mnist.load_data() can download it."
        ) from e
    return raw, "a download by keras.datasets.fashion_mnist.load_data()"


def _fashion_mnist(data_dir=None):
    if data_dir is not None:
        raw, source = _fashion_mnist_from("data_dir", data_dir)
    elif os.environ.get(DATA_DIR_ENV):
        raw, source = _fashion_mnist_from(DATA_DIR_ENV, os.environ[DATA_DIR_ENV])
    else:
        raw, source = _fashion_mnist_search()
    (x_train, y_train), (x_test, y_test) = raw
    return (
        (_images(x_train, 255.0), np.asarray(y_train, np.int32)),
        (_images(x_test, 255.0), np.asarray(y_test, np.int32)),
        source,
    )
