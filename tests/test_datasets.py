import gzip
import os
import struct

import numpy as np
import pytest

from kerasreg import datasets


def _digits_reference():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32) / 16.0, bunch.target


def _original_indices(x, reference_images):
    """Maps each returned image back to its index in sklearn's digits."""
    lookup = {}
    for i, img in enumerate(reference_images):
        lookup.setdefault(img.tobytes(), []).append(i)
    return np.array([lookup[img[..., 0].tobytes()][0] for img in x])


def _write_idx(path, array, type_code=0x08, gz=True):
    array = np.asarray(array)
    header = bytes([0, 0, type_code, array.ndim])
    header += struct.pack(">" + "i" * array.ndim, *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(payload)


# --- digits ---------------------------------------------------------------


def test_digits_shapes_dtypes_ranges():
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = datasets.load("digits")
    ref_x, ref_y = _digits_reference()
    assert len(x_tr) + len(x_va) + len(x_te) == len(ref_y) == 1797
    for x, y in ((x_tr, y_tr), (x_va, y_va), (x_te, y_te)):
        assert x.shape[1:] == (8, 8, 1)
        assert x.dtype == np.float32
        assert y.dtype == np.int32
        assert len(x) == len(y)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) <= set(range(10))
    # The pixel values are sklearn's 0..16 divided by 16, labels unchanged.
    idx = _original_indices(x_te, ref_x)
    np.testing.assert_array_equal(x_te[..., 0], ref_x[idx])
    np.testing.assert_array_equal(y_te, ref_y[idx])
    assert x_tr.max() == 1.0


def test_digits_test_split_is_fixed_stratified_twenty_percent():
    ref_x, ref_y = _digits_reference()
    _, _, (x_te_a, y_te_a) = datasets.load("digits", seed=0)
    _, _, (x_te_b, _) = datasets.load("digits", seed=7)
    np.testing.assert_array_equal(x_te_a, x_te_b)  # independent of `seed`
    expected = [round(0.2 * c) for c in np.bincount(ref_y)]
    np.testing.assert_array_equal(np.bincount(y_te_a, minlength=10), expected)


def test_digits_split_sizes():
    for split in (0.0, 0.1, 0.25, 0.5):
        (x_tr, _), (x_va, y_va), (x_te, _) = datasets.load(
            "digits", validation_split=split
        )
        assert len(x_te) == 359
        assert len(x_va) == len(y_va) == int(split * 1438)
        assert len(x_tr) == 1438 - int(split * 1438)
    (_, _), (x_va, y_va), _ = datasets.load("digits", validation_split=0.0)
    assert x_va.shape == (0, 8, 8, 1) and y_va.shape == (0,)


def test_digits_shuffled_before_validation_split():
    ref_x, _ = _digits_reference()
    (x_tr, y_tr), (x_va, y_va), (x_te, _) = datasets.load(
        "digits", validation_split=0.2, seed=3
    )
    tr, va, te = (_original_indices(x, ref_x) for x in (x_tr, x_va, x_te))
    pool = np.setdiff1d(np.arange(1797), te)
    # Disjoint splits covering the pool.
    assert not set(tr) & set(va) and not (set(tr) | set(va)) & set(te)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), pool)
    # Unshuffled, the validation set would be the first 20% of the pool
    # (originals 0..~360); shuffled, it is drawn from all of it.
    assert not np.array_equal(np.sort(va), pool[: len(va)])
    assert va.max() > 1400 and va.min() < 100
    # The validation set holds every class in roughly its share.
    assert np.bincount(y_va, minlength=10).min() >= 15


def test_digits_deterministic_by_seed_and_seeds_differ():
    a = datasets.load("digits", seed=5)
    b = datasets.load("digits", seed=5)
    c = datasets.load("digits", seed=6)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[1][0], c[1][0])  # different validation sets
    # ... drawn from the same training pool.
    pool_a = np.sort(np.concatenate([a[0][1], a[1][1]]))
    pool_c = np.sort(np.concatenate([c[0][1], c[1][1]]))
    np.testing.assert_array_equal(pool_a, pool_c)


def test_load_prints_its_source_when_verbose(capsys):
    datasets.load("digits", verbose=1)
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "kerasreg.datasets: digits from scikit-learn's bundled copy "
        "(sklearn.datasets.load_digits)"
    ]


def test_load_is_silent_by_default(capsys):
    # Library code prints only when asked (as `keras.datasets` loaders).
    datasets.load("digits")
    datasets.load("digits", verbose=False)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"name": "mnist"}, "name"),
        ({"name": "Digits"}, "name"),
        ({"name": "digits", "validation_split": 1.0}, "validation_split"),
        ({"name": "digits", "validation_split": -0.1}, "validation_split"),
        ({"name": "digits", "validation_split": "0.1"}, "validation_split"),
        ({"name": "digits", "validation_split": True}, "validation_split"),
        ({"name": "digits", "seed": -1}, "seed"),
        ({"name": "digits", "seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError) as info:
        datasets.load(**kwargs)
    message = str(info.value)
    assert message.startswith(
        f"Invalid value received for argument `{argument}`."
    )
    assert f"Received: {argument}=" in message
    assert "\n" not in message


# --- IDX reader and fashion_mnist sources ----------------------------------


def test_read_idx_tiny_files(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", images)
    _write_idx(tmp_path / "y", np.array([7, 1], np.uint8), gz=False)
    _write_idx(tmp_path / "f.gz", np.array([[1.5, -2.0]], ">f4"), 0x0D)
    _write_idx(tmp_path / "i.gz", np.array([70000, -3], ">i4"), 0x0C)
    np.testing.assert_array_equal(datasets._read_idx(tmp_path / "x.gz"), images)
    np.testing.assert_array_equal(datasets._read_idx(tmp_path / "y"), [7, 1])
    np.testing.assert_array_equal(
        datasets._read_idx(tmp_path / "f.gz"), [[1.5, -2.0]]
    )
    np.testing.assert_array_equal(
        datasets._read_idx(tmp_path / "i.gz"), [70000, -3]
    )


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="bad magic"):
        datasets._read_idx(tmp_path / "bad")
    # Header says 3 items, 2 bytes follow.
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x03ab")
    with pytest.raises(ValueError, match="Truncated"):
        datasets._read_idx(tmp_path / "short")


def test_fashion_mnist_from_local_files(
    tmp_path, monkeypatch, capsys, write_fashion_mnist
):
    empty, full = tmp_path / "cache", tmp_path / "debian"
    raw = write_fashion_mnist(full, n_train=10, n_test=4)
    monkeypatch.setattr(
        datasets,
        "_fashion_mnist_local_sources",
        lambda: [("the empty cache", str(empty)), ("the fake package", str(full))],
    )
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = datasets.load(
        "fashion_mnist", validation_split=0.2, seed=1, verbose=1
    )
    assert "fashion_mnist from the fake package" in capsys.readouterr().out
    assert x_tr.shape == (8, 28, 28, 1) and x_va.shape == (2, 28, 28, 1)
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int32
    np.testing.assert_allclose(x_te[..., 0], raw["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_te, raw["y_test"])
    # Train + validation are a permutation of the raw training set.
    order = np.random.default_rng(1).permutation(10)
    np.testing.assert_array_equal(
        np.concatenate([y_va, y_tr]), raw["y_train"][order]
    )


def test_fashion_mnist_download_fallback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        datasets, "_fashion_mnist_local_sources", lambda: [("x", str(tmp_path))]
    )
    x = np.full((3, 28, 28), 255, np.uint8)
    monkeypatch.setattr(
        datasets,
        "_download_fashion_mnist",
        lambda: ((x, np.array([1, 2, 3])), (x[:1], np.array([4]))),
    )
    (x_tr, _), _, (x_te, y_te) = datasets.load("fashion_mnist", 0.0, verbose=1)
    assert "from a download by keras.datasets" in capsys.readouterr().out
    assert x_tr.shape == (3, 28, 28, 1) and float(x_tr.max()) == 1.0
    np.testing.assert_array_equal(y_te, [4])


def test_fashion_mnist_not_found_names_the_options(tmp_path, monkeypatch):
    monkeypatch.setattr(
        datasets, "_fashion_mnist_local_sources", lambda: [("x", str(tmp_path))]
    )

    def offline():
        raise Exception("URL fetch failure: [Errno -3] name resolution")

    monkeypatch.setattr(datasets, "_download_fashion_mnist", offline)
    with pytest.raises(FileNotFoundError) as info:
        datasets.load("fashion_mnist")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "network" in message and "name resolution" in message
    assert "\n" not in message


def test_fashion_mnist_skips_unreadable_source(
    tmp_path, monkeypatch, capsys, write_fashion_mnist
):
    broken, good = tmp_path / "broken", tmp_path / "good"
    write_fashion_mnist(good)
    broken.mkdir()
    for fname in datasets.FASHION_MNIST_FILES.values():
        (broken / fname).write_bytes(b"not gzip")
    monkeypatch.setattr(
        datasets,
        "_fashion_mnist_local_sources",
        lambda: [("the broken one", str(broken)), ("the good one", str(good))],
    )
    with pytest.warns(UserWarning, match="skipping the broken one: unreadable"):
        datasets.load("fashion_mnist", verbose=1)
    assert capsys.readouterr().out.splitlines() == [
        "kerasreg.datasets: fashion_mnist from the good one"
    ]


@pytest.mark.skipif(
    not os.path.isdir(datasets.DEBIAN_FASHION_MNIST_DIR),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_debian_package(monkeypatch):
    monkeypatch.setattr(
        datasets,
        "_fashion_mnist_local_sources",
        lambda: [("debian", datasets.DEBIAN_FASHION_MNIST_DIR)],
    )
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = datasets.load(
        "fashion_mnist", validation_split=0.1
    )
    assert x_tr.shape == (54000, 28, 28, 1) and x_va.shape == (6000, 28, 28, 1)
    assert x_te.shape == (10000, 28, 28, 1)
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
    counts = np.bincount(np.concatenate([y_tr, y_va]), minlength=10)
    np.testing.assert_array_equal(counts, [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_te, minlength=10), [1000] * 10)
    assert x_tr.min() == 0.0 and x_tr.max() == 1.0


# --- where fashion_mnist comes from: data_dir, KERASREG_DATA_DIR, the Keras
# --- cache, the Debian package, a download (all on tiny files written here)


def _no_download(monkeypatch):
    def download():
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(datasets, "_download_fashion_mnist", download)


def _check_arrays(splits, raw, validation_split=0.0, seed=0):
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    n = len(raw["y_train"])
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(validation_split * n)
    np.testing.assert_array_equal(
        np.concatenate([y_va, y_tr]), raw["y_train"][order]
    )
    np.testing.assert_allclose(
        np.concatenate([x_va, x_tr])[..., 0],
        raw["x_train"][order] / 255.0,
        rtol=1e-6,
    )
    assert len(x_va) == n_val
    np.testing.assert_allclose(x_te[..., 0], raw["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_te, raw["y_test"])
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int32


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_fashion_mnist_from_data_dir(tmp_path, monkeypatch, capsys, gz,
                                     write_fashion_mnist):
    _no_download(monkeypatch)
    raw = write_fashion_mnist(tmp_path / "fm", n_train=10, n_test=3, gz=gz)
    splits = datasets.load(
        "fashion_mnist", validation_split=0.2, seed=4, data_dir=tmp_path / "fm",
        verbose=1,
    )
    _check_arrays(splits, raw, validation_split=0.2, seed=4)
    assert capsys.readouterr().out.splitlines() == [
        f"kerasreg.datasets: fashion_mnist from data_dir ({tmp_path / 'fm'})"
    ]


def test_fashion_mnist_data_dir_may_hold_a_fashion_mnist_folder(
    tmp_path, monkeypatch, capsys, write_fashion_mnist
):
    # The layouts of the Keras cache (~/.keras/datasets/fashion-mnist/) and
    # of the Debian package (/usr/share/datasets/fashion-mnist/).
    _no_download(monkeypatch)
    raw = write_fashion_mnist(tmp_path / "datasets" / "fashion-mnist")
    splits = datasets.load(
        "fashion_mnist", 0.0, data_dir=str(tmp_path / "datasets"), verbose=1
    )
    _check_arrays(splits, raw)
    expected = tmp_path / "datasets" / "fashion-mnist"
    assert f"fashion_mnist from data_dir ({expected})" in capsys.readouterr().out


def test_fashion_mnist_from_environment_variable(
    tmp_path, monkeypatch, capsys, write_fashion_mnist
):
    _no_download(monkeypatch)
    raw = write_fashion_mnist(tmp_path / "env", seed=1)
    other = write_fashion_mnist(tmp_path / "arg", seed=2)
    monkeypatch.setenv("KERASREG_DATA_DIR", str(tmp_path / "env"))
    _check_arrays(datasets.load("fashion_mnist", 0.0, verbose=1), raw)
    assert (
        f"fashion_mnist from KERASREG_DATA_DIR ({tmp_path / 'env'})"
        in capsys.readouterr().out
    )
    # `data_dir` comes first.
    splits = datasets.load("fashion_mnist", 0.0, data_dir=tmp_path / "arg", verbose=1)
    _check_arrays(splits, other)
    assert "from data_dir" in capsys.readouterr().out


@pytest.mark.parametrize("via", ["data_dir", "KERASREG_DATA_DIR"])
def test_named_folder_without_the_files_is_an_error(
    tmp_path, monkeypatch, via, write_fashion_mnist
):
    # Only the named folder is searched: a full Keras cache is not used.
    _no_download(monkeypatch)
    write_fashion_mnist(tmp_path / "home" / "datasets" / "fashion-mnist")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train-images-idx3-ubyte.gz").write_bytes(b"")
    kwargs = {}
    if via == "data_dir":
        kwargs["data_dir"] = empty
    else:
        monkeypatch.setenv("KERASREG_DATA_DIR", str(empty))
    with pytest.raises(FileNotFoundError) as info:
        datasets.load("fashion_mnist", **kwargs)
    message = str(info.value)
    assert message.startswith(
        f"Fashion-MNIST was not found in {via}={str(empty)!r}: missing "
        "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
        "t10k-labels-idx1-ubyte[.gz]"
    )
    assert "make fashion-mnist" in message and "\n" not in message


def test_named_folder_with_unreadable_files(tmp_path, monkeypatch,
                                            write_fashion_mnist):
    _no_download(monkeypatch)
    write_fashion_mnist(tmp_path)
    # Labels cut short: the header says 4 test labels.
    write_idx_bytes = b"\x00\x00\x08\x01\x00\x00\x00\x04ab"
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(write_idx_bytes)
    with pytest.raises(OSError, match="not readable IDX files.*Truncated"):
        datasets.load("fashion_mnist", data_dir=tmp_path)


def test_images_and_labels_must_match(tmp_path, monkeypatch, write_fashion_mnist):
    write_fashion_mnist(tmp_path, n_train=6)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(OSError, match=r"train images .*\(6, 28, 28\).*\(5,\)"):
        datasets.load("fashion_mnist", data_dir=tmp_path)


def test_fashion_mnist_from_the_keras_cache(tmp_path, monkeypatch, capsys,
                                            write_fashion_mnist):
    _no_download(monkeypatch)
    cache = tmp_path / "keras-home" / "datasets" / "fashion-mnist"
    raw = write_fashion_mnist(cache, seed=3)
    write_fashion_mnist(tmp_path / "debian", seed=4)  # found later: unused
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "debian"))
    _check_arrays(datasets.load("fashion_mnist", 0.0, verbose=1), raw)
    assert capsys.readouterr().out.splitlines() == [
        f"kerasreg.datasets: fashion_mnist from the Keras cache ({cache})"
    ]


def test_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch, capsys,
                                               write_fashion_mnist):
    # `dpkg -c dataset-fashion-mnist_*.deb`: the four gzipped files in
    # /usr/share/datasets/fashion-mnist/.
    _no_download(monkeypatch)
    debian = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    raw = write_fashion_mnist(debian, seed=5)
    (tmp_path / "keras-home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", str(debian))
    _check_arrays(datasets.load("fashion_mnist", 0.0, verbose=1), raw)
    assert capsys.readouterr().out.splitlines() == [
        "kerasreg.datasets: fashion_mnist from the Debian package "
        f"dataset-fashion-mnist ({debian})"
    ]


def test_nothing_found_names_every_option(tmp_path, monkeypatch):
    (tmp_path / "keras-home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "no"))
    calls = []

    def offline():
        calls.append(1)
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(datasets, "_download_fashion_mnist", offline)
    with pytest.raises(FileNotFoundError) as info:
        datasets.load("fashion_mnist")
    assert calls == [1]
    message = str(info.value)
    cache = tmp_path / "keras-home" / "datasets" / "fashion-mnist"
    for words in (
        f"the Keras cache ({cache})",
        f"dataset-fashion-mnist ({tmp_path / 'no'})",
        "(URL fetch failure: no network)",
        "make fashion-mnist",
        "apt-get install dataset-fashion-mnist",
        "`data_dir=`",
        "KERASREG_DATA_DIR",
        "network access",
    ):
        assert words in message, words


def test_keras_cache_is_where_keras_puts_files(tmp_path, write_fashion_mnist):
    """`keras.utils.get_file` stores into the folder we search."""
    import keras

    source = tmp_path / "src"
    write_fashion_mnist(source)
    fname = datasets.FASHION_MNIST_FILES["y_test"]
    path = keras.utils.get_file(
        fname,
        origin=(source / fname).as_uri(),
        cache_subdir=os.path.join("datasets", "fashion-mnist"),
    )
    try:
        assert os.path.dirname(path) == datasets._keras_cache_dir()
        # The session's KERAS_HOME (tests/conftest.py), not ~/.keras.
        assert path.startswith(os.environ["KERAS_HOME"])
    finally:
        os.remove(path)


@pytest.mark.parametrize("data_dir", ["", 3, ["a"]])
def test_bad_data_dir(data_dir):
    with pytest.raises(ValueError) as info:
        datasets.load("fashion_mnist", data_dir=data_dir)
    assert str(info.value).startswith(
        "Invalid value received for argument `data_dir`. Expected a path to "
        f"a folder or None. Received: data_dir={data_dir!r}"
    )


def test_digits_ignores_data_dir(tmp_path):
    a = datasets.load("digits", data_dir=tmp_path)
    b = datasets.load("digits")
    np.testing.assert_array_equal(a[2][1], b[2][1])
