"""Tests for kerasreg.ensembles.average_weights and recompute_batchnorm."""

import keras
import numpy as np
import pytest
from keras import ops

import kerasreg
from kerasreg.ensembles import average_weights
from kerasreg.ensembles import recompute_batchnorm


def _numpy(model):
    return [np.array(ops.convert_to_numpy(v)) for v in model.weights]


def _dense_model(units=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(2)]
    )


def _assert_statistics(model, expected):
    """bn1/bn2 moving mean and variance equal `expected[name]`."""
    for name in ("bn1", "bn2"):
        layer = model.get_layer(name)
        np.testing.assert_allclose(
            ops.convert_to_numpy(layer.moving_mean), expected[name][0],
            rtol=1e-4, atol=1e-5,
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(layer.moving_variance), expected[name][1],
            rtol=1e-4, atol=1e-5,
        )


def test_average_of_two_models_is_the_mean():
    a, b = _dense_model(seed=1), _dense_model(seed=2)
    averaged = average_weights([a, b])
    for got, wa, wb in zip(_numpy(averaged), _numpy(a), _numpy(b), strict=True):
        np.testing.assert_allclose(got, (wa + wb) / 2, rtol=1e-6, atol=1e-7)
    assert averaged is not a and averaged is not b


def test_weighted_average():
    a, b = _dense_model(seed=1), _dense_model(seed=2)
    averaged = average_weights([a, b], weights=[3.0, 1.0])
    for got, wa, wb in zip(_numpy(averaged), _numpy(a), _numpy(b), strict=True):
        np.testing.assert_allclose(
            got, 0.75 * wa + 0.25 * wb, rtol=1e-6, atol=1e-7
        )


def test_average_weights_bad_input():
    with pytest.raises(ValueError, match="argument `models`"):
        average_weights([])
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 5\)"):
        average_weights([_dense_model(3), _dense_model(5)])
    with pytest.raises(ValueError, match="argument `weights`"):
        average_weights([_dense_model(), _dense_model()], weights=[1.0])
    with pytest.raises(ValueError, match="argument `weights`"):
        average_weights([_dense_model(), _dense_model()], weights=[1.0, -1.0])


class _HalfMomentumBN(keras.layers.BatchNormalization):
    """A subclass, as kerasreg's BatchNormalization is one."""


def _bn_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(3, name="d1")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(h)
    h = keras.layers.Dense(2, name="d2")(h)
    h = _HalfMomentumBN(momentum=0.5, name="bn2")(h)
    return keras.Model(inputs, h)


def _numpy_reference(model, x, batch_size):
    """Equal-weight mean over batches of the pre-BN batch mean/biased var."""
    get = lambda name: [  # noqa: E731
        ops.convert_to_numpy(w).astype("float64")
        for w in model.get_layer(name).weights
    ]
    k1, b1 = get("d1")
    g1, be1 = get("bn1")[:2]
    k2, b2 = get("d2")
    eps = model.get_layer("bn1").epsilon
    stats = {"bn1": [], "bn2": []}
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size].astype("float64")
        a1 = batch @ k1 + b1
        m1, v1 = a1.mean(0), a1.var(0)
        stats["bn1"].append((m1, v1))
        h1 = g1 * (a1 - m1) / np.sqrt(v1 + eps) + be1
        a2 = h1 @ k2 + b2
        stats["bn2"].append((a2.mean(0), a2.var(0)))
    return {
        name: (np.mean([m for m, _ in s], 0), np.mean([v for _, v in s], 0))
        for name, s in stats.items()
    }


@pytest.mark.parametrize("as_generator", [False, True])
def test_recompute_batchnorm_matches_numpy(as_generator):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(100, 4)) * 3 + 1).astype("float32")
    model = _bn_model()
    before = {
        v.path: np.array(ops.convert_to_numpy(v))
        for v in model.weights
        if "moving" not in v.path
    }
    expected = _numpy_reference(model, x, batch_size=32)
    data = (
        ((x[i : i + 32], np.zeros(len(x[i : i + 32]))) for i in range(0, 100, 32))
        if as_generator
        else x
    )
    recompute_batchnorm(model, data, batch_size=32)
    _assert_statistics(model, expected)
    assert model.get_layer("bn1").momentum == 0.9
    assert model.get_layer("bn2").momentum == 0.5
    for v in model.weights:
        if "moving" not in v.path:
            np.testing.assert_array_equal(ops.convert_to_numpy(v), before[v.path])


def test_recompute_batchnorm_steps_limits_the_batches():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, 4)).astype("float32")
    model = _bn_model()
    expected = _numpy_reference(model, x[:64], batch_size=32)
    recompute_batchnorm(model, x, batch_size=32, steps=2)
    np.testing.assert_allclose(
        ops.convert_to_numpy(model.get_layer("bn1").moving_mean),
        expected["bn1"][0], rtol=1e-4, atol=1e-5,
    )


def test_recompute_batchnorm_bad_input():
    x = np.zeros((8, 4), "float32")
    plain = _dense_model()
    before = _numpy(plain)
    with pytest.warns(UserWarning, match="no built BatchNormalization"):
        assert recompute_batchnorm(plain, x) is plain
    for got, want in zip(_numpy(plain), before, strict=True):
        np.testing.assert_array_equal(got, want)
    model = _bn_model()
    with pytest.raises(ValueError, match="at least one batch"):
        recompute_batchnorm(model, np.zeros((0, 4), "float32"))
    with pytest.raises(ValueError, match="argument `batch_size`"):
        recompute_batchnorm(model, x, batch_size=0)
    with pytest.raises(ValueError, match="argument `steps`"):
        recompute_batchnorm(model, x, steps=0)
    assert model.get_layer("bn1").momentum == 0.9


def _nested_bn_model():
    """Keras' BN and kerasreg's (default and cumulative) in a nested model."""
    keras.utils.set_random_seed(3)
    inner = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="d1"),
            kerasreg.BatchNormalization(name="kbn"),  # momentum 0.99
        ],
        name="inner",
    )
    inputs = keras.Input((4,))
    h = inner(inputs)
    h = keras.layers.Dense(3, name="d2")(h)
    h = keras.layers.BatchNormalization(momentum=0.8, name="bn")(h)
    h = keras.layers.Dense(2, name="d3")(h)
    h = kerasreg.BatchNormalization(momentum=None, name="cbn")(h)
    model = keras.Model(inputs, h)
    rng = np.random.default_rng(4)
    for layer in _bn_layers(model).values():
        layer.gamma.assign(rng.uniform(0.5, 2.0, 3 if layer.name != "cbn" else 2))
        layer.beta.assign(rng.normal(size=3 if layer.name != "cbn" else 2))
    return model


def _bn_layers(model):
    inner = model.get_layer("inner")
    return {
        "kbn": inner.get_layer("kbn"),
        "bn": model.get_layer("bn"),
        "cbn": model.get_layer("cbn"),
    }


def _nested_reference(model, batches):
    """Per-BN-layer list of (batch mean, biased batch variance), in numpy."""
    w = lambda layer: [  # noqa: E731
        ops.convert_to_numpy(v).astype("float64") for v in layer.weights
    ]
    inner = model.get_layer("inner")
    dense = [inner.get_layer("d1"), model.get_layer("d2"), model.get_layer("d3")]
    bns = list(_bn_layers(model).values())
    stats = {layer.name: [] for layer in bns}
    for batch in batches:
        h = batch.astype("float64")
        for d, bn in zip(dense, bns, strict=True):
            k, b = w(d)
            a = h @ k + b
            m, v = a.mean(0), a.var(0)
            stats[bn.name].append((m, v))
            gamma, beta = w(bn)[:2]
            h = gamma * (a - m) / np.sqrt(v + bn.epsilon) + beta
    return stats


def test_recompute_batchnorm_nested_keras_and_kerasreg_layers():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(70, 4)).astype("float32")
    x[64:] += 4.0  # the last, partial batch (6 rows) differs
    model = _nested_bn_model()
    layers = _bn_layers(model)
    counts = {name: len(layer.weights) for name, layer in layers.items()}
    assert counts == {"kbn": 4, "bn": 4, "cbn": 5}  # Keras' 4 (+ counter)
    layers["cbn"].num_batches_tracked.assign(9.0)
    before = {
        v.path: np.array(ops.convert_to_numpy(v))
        for v in model.weights
        if "moving" not in v.path and "num_batches" not in v.path
    }
    batches = [x[:32], x[32:64], x[64:]]
    stats = _nested_reference(model, batches)
    recompute_batchnorm(model, x, batch_size=32)
    for name, layer in layers.items():
        # Every batch has the same weight, the partial one too.
        mean = np.mean([m for m, _ in stats[name]], axis=0)
        var = np.mean([v for _, v in stats[name]], axis=0)
        np.testing.assert_allclose(
            ops.convert_to_numpy(layer.moving_mean), mean, rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(layer.moving_variance), var, rtol=1e-5,
            atol=1e-5,
        )
    # Weighting rows instead of batches would give another mean (the first
    # layer's inputs differ between batches; later ones are normalized).
    by_rows = np.average([m for m, _ in stats["kbn"]], axis=0, weights=[32, 32, 6])
    got = ops.convert_to_numpy(layers["kbn"].moving_mean)
    assert np.max(np.abs(by_rows - got)) > 0.1
    assert {n: layer.momentum for n, layer in layers.items()} == {
        "kbn": 0.99, "bn": 0.8, "cbn": None
    }
    assert {n: len(layer.weights) for n, layer in layers.items()} == counts
    assert layers["kbn"].num_batches_tracked is None
    assert float(ops.convert_to_numpy(layers["cbn"].num_batches_tracked)) == 3
    for v in model.weights:
        if v.path in before:
            np.testing.assert_array_equal(ops.convert_to_numpy(v), before[v.path])


def test_recompute_batchnorm_ignores_broken_old_statistics():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(64, 4)).astype("float32")
    model = _bn_model()
    expected = _numpy_reference(model, x, batch_size=32)
    for name in ("bn1", "bn2"):
        layer = model.get_layer(name)
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, np.nan))
        layer.moving_variance.assign(np.full(layer.moving_mean.shape, np.inf))
    recompute_batchnorm(model, x, batch_size=32)
    _assert_statistics(model, expected)


def test_recompute_batchnorm_failure_restores_statistics_and_momentum():
    model = _bn_model()
    before = [np.array(ops.convert_to_numpy(v)) for v in model.weights]

    def batches():
        yield np.ones((8, 4), "float32")
        raise RuntimeError("data source broke")

    with pytest.raises(RuntimeError, match="data source broke"):
        recompute_batchnorm(model, batches())
    for v, want in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(v), want)
    assert model.get_layer("bn1").momentum == 0.9
    assert model.get_layer("bn2").momentum == 0.5


def my_loss(y_true, y_pred):  # an ordinary, unregistered Python loss
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


class Shift(keras.layers.Layer):  # an unregistered custom layer
    def build(self, input_shape):
        self.shift = self.add_weight(shape=(input_shape[-1],),
                                     initializer="random_normal")

    def call(self, x):
        return x + self.shift


def test_average_weights_unregistered_loss_and_layer_uncompiled():
    def make(seed):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((4,)), Shift(),
                                  keras.layers.Dense(2)])
        model.compile("sgd", my_loss)
        return model

    a, b = make(1), make(2)
    averaged = average_weights([a, b])
    assert not averaged.compiled
    assert isinstance(averaged.layers[0], Shift)
    for got, wa, wb in zip(_numpy(averaged), _numpy(a), _numpy(b), strict=True):
        np.testing.assert_allclose(got, (wa + wb) / 2, rtol=1e-6, atol=1e-7)
