"""Small image-classification datasets, loaded offline when possible.

`load()` returns the three splits a careful experiment needs: training data,
validation data for choosing hyperparameters, and a test set to be looked at
once. As the lecture notes insist, the training set is shuffled *before* the
validation set is cut off from it, because datasets are often stored in an
order (by class, by writer) that would otherwise bias the validation split.
"""

import gzip
import os

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
# `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/`).
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def load(name, validation_split=0.1, seed=0):
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
      The files are looked for, in order, in the Keras cache
      (`~/.keras/datasets/fashion-mnist/`, or under `$KERAS_HOME`), then in the
      Debian package `dataset-fashion-mnist`
      (`/usr/share/datasets/fashion-mnist/`), and finally downloaded by
      `keras.datasets.fashion_mnist.load_data()`. One line says which source
      was used.

    The training pool is shuffled with `seed`, then its first
    `int(validation_split * N)` examples become the validation set and the
    rest the training set (the lecture notes' recipe).

    Args:
        name: String. `"digits"` or `"fashion_mnist"`.
        validation_split: Float in [0, 1). Fraction of the training pool held
            out for validation. Defaults to `0.1`.
        seed: Non-negative integer seeding the shuffle before the validation
            split. Defaults to `0`.

    Returns:
        `(x_train, y_train), (x_val, y_val), (x_test, y_test)`.

    Example:

    ```python
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        kerasreg.datasets.load("digits", validation_split=0.1, seed=0)
    )
    assert x_train.shape[1:] == (8, 8, 1) and x_train.dtype == "float32"
    assert len(x_train) + len(x_val) == 1438 and len(x_test) == 359
    ```
    """
    splits, source = _load_with_source(name, validation_split, seed)
    print(f"kerasreg.datasets: {name} from {source}")
    return splits


def _load_with_source(name, validation_split=0.1, seed=0):
    """`load()` without the printing; also returns a description of the source."""
    _validate(name, validation_split, seed)
    if name == "digits":
        (x_pool, y_pool), (x_test, y_test), source = _digits()
    else:
        (x_pool, y_pool), (x_test, y_test), source = _fashion_mnist()
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


def _validate(name, validation_split, seed):
    if name not in DATASETS:
        raise ValueError(
            "Invalid value received for argument `name`. Expected one of "
            f"{DATASETS}. Received: name={name!r}"
        )
    _checks.float_between(
        "validation_split", validation_split, 0, 1, closed=(True, False)
    )
    _checks.int_at_least("seed", seed, 0)


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


def _keras_cache_dirs():
    """Where `keras.utils.get_file` may have stored Fashion-MNIST."""
    if "KERAS_HOME" in os.environ:
        homes = [os.environ["KERAS_HOME"]]
    else:
        homes = [os.path.join(os.path.expanduser("~"), ".keras")]
    homes.append(os.path.join("/tmp", ".keras"))
    return [os.path.join(h, "datasets", "fashion-mnist") for h in homes]


def _fashion_mnist_local_sources():
    """(description, directory) pairs searched before any download."""
    sources = [(f"the Keras cache ({d})", d) for d in _keras_cache_dirs()]
    sources.append(
        (
            "the Debian package dataset-fashion-mnist "
            f"({DEBIAN_FASHION_MNIST_DIR})",
            DEBIAN_FASHION_MNIST_DIR,
        )
    )
    return sources


def _read_fashion_mnist_dir(directory):
    arrays = {
        key: _read_idx(os.path.join(directory, fname))
        for key, fname in FASHION_MNIST_FILES.items()
    }
    return (arrays["x_train"], arrays["y_train"]), (
        arrays["x_test"],
        arrays["y_test"],
    )


def _download_fashion_mnist():
    import keras

    return keras.datasets.fashion_mnist.load_data()


def _fashion_mnist():
    raw = None
    for description, directory in _fashion_mnist_local_sources():
        paths = [os.path.join(directory, f) for f in FASHION_MNIST_FILES.values()]
        if all(os.path.isfile(p) for p in paths):
            try:
                raw, source = _read_fashion_mnist_dir(directory), description
                break
            except (OSError, EOFError, ValueError) as e:
                reason = " ".join(str(e).split()) or type(e).__name__
                print(
                    f"kerasreg.datasets: skipping {description}: "
                    f"unreadable files ({reason})"
                )
    if raw is None:
        try:
            raw = _download_fashion_mnist()
        except Exception as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise FileNotFoundError(
                "Fashion-MNIST was not found in the Keras cache "
                f"({', '.join(_keras_cache_dirs())}) nor in "
                f"{DEBIAN_FASHION_MNIST_DIR}, and the download failed "
                f"({reason}). Install the Debian package "
                "(`apt-get install dataset-fashion-mnist`) or allow network "
                "access so that keras.datasets.fashion_mnist.load_data() can "
                "download it."
            ) from e
        source = "a download by keras.datasets.fashion_mnist.load_data()"
    (x_train, y_train), (x_test, y_test) = raw
    return (
        (_images(x_train, 255.0), np.asarray(y_train, np.int32)),
        (_images(x_test, 255.0), np.asarray(y_test, np.int32)),
        source,
    )
