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


def _write_fake_fashion(directory, n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    os.makedirs(directory, exist_ok=True)
    for key, fname in datasets.FASHION_MNIST_FILES.items():
        _write_idx(os.path.join(directory, fname), arrays[key])
    return arrays


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
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[1][0], c[1][0])  # different validation sets
    # ... drawn from the same training pool.
    pool_a = np.sort(np.concatenate([a[0][1], a[1][1]]))
    pool_c = np.sort(np.concatenate([c[0][1], c[1][1]]))
    np.testing.assert_array_equal(pool_a, pool_c)


def test_load_prints_its_source(capsys):
    datasets.load("digits")
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "kerasreg.datasets: digits from scikit-learn's bundled copy "
        "(sklearn.datasets.load_digits)"
    ]


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


def test_fashion_mnist_from_local_files(tmp_path, monkeypatch, capsys):
    empty, full = tmp_path / "cache", tmp_path / "debian"
    raw = _write_fake_fashion(full, n_train=10, n_test=4)
    monkeypatch.setattr(
        datasets,
        "_fashion_mnist_local_sources",
        lambda: [("the empty cache", str(empty)), ("the fake package", str(full))],
    )
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = datasets.load(
        "fashion_mnist", validation_split=0.2, seed=1
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
    (x_tr, _), _, (x_te, y_te) = datasets.load("fashion_mnist", 0.0)
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


def test_fashion_mnist_skips_unreadable_source(tmp_path, monkeypatch, capsys):
    broken, good = tmp_path / "broken", tmp_path / "good"
    _write_fake_fashion(good)
    broken.mkdir()
    for fname in datasets.FASHION_MNIST_FILES.values():
        (broken / fname).write_bytes(b"not gzip")
    monkeypatch.setattr(
        datasets,
        "_fashion_mnist_local_sources",
        lambda: [("the broken one", str(broken)), ("the good one", str(good))],
    )
    datasets.load("fashion_mnist")
    out = capsys.readouterr().out
    assert "skipping the broken one" in out
    assert "fashion_mnist from the good one" in out


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
