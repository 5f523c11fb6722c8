"""Tests for kerasreg.layers.Dropout: numerics against numpy, Keras harness."""

import re

import keras
import numpy as np
import pytest
from keras.src import testing

import kerasreg
from kerasreg.layers import Dropout


class DropoutLayerTest(testing.TestCase):
    # Keras' own harness case (rate=0.2, training=True) runs in
    # tests/test_keras_layer_tests.py; here the Monte-Carlo mode.
    def test_keras_harness_mc_rank4_noise_shape(self):
        self.run_layer_test(
            Dropout,
            init_kwargs={"rate": 0.5, "mc": True, "noise_shape": (None, 1, 1, 3), "seed": 3},
            input_shape=(2, 4, 4, 3),
            expected_output_shape=(2, 4, 4, 3),
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=1,
            expected_num_losses=0,
            supports_masking=True,
            assert_built_after_instantiation=True,
        )


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_keep_rate_and_exact_inverted_scaling(rate):
    x = np.random.default_rng(0).uniform(1.0, 2.0, (200, 500)).astype("float32")
    y = _np(Dropout(rate, seed=1)(x, training=True))
    kept = y != 0
    # Each unit kept with probability 1 - rate: binomial, n = 100000.
    n = x.size
    sd = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1 - rate)) < 5 * sd
    # Kept units are divided by 1 - rate, dropped ones are exactly 0.
    np.testing.assert_allclose(y[kept], x[kept] / np.float32(1 - rate), rtol=1e-6)
    assert np.all(y[~kept] == 0)


def test_identity_at_inference_and_trainable_false_still_drops():
    x = np.random.default_rng(1).normal(size=(8, 5, 3)).astype("float32")
    layer = Dropout(0.5, seed=2)
    np.testing.assert_array_equal(_np(layer(x)), x)
    np.testing.assert_array_equal(_np(layer(x, training=False)), x)
    layer.trainable = False  # as in Keras: no effect on dropout
    assert np.any(_np(layer(x, training=True)) == 0)


def test_rate_zero_and_one():
    x = np.ones((4, 6), "float32")
    np.testing.assert_array_equal(_np(Dropout(0.0, mc=True)(x, training=True)), x)
    np.testing.assert_array_equal(_np(Dropout(1.0, mc=True)(x)), np.zeros_like(x))


def test_mc_drops_at_inference_fresh_masks_and_unbiased_average():
    x = np.random.default_rng(2).uniform(1.0, 2.0, (50, 40)).astype("float32")
    layer = Dropout(0.25, mc=True, seed=4)
    a, b = _np(layer(x)), _np(layer(x, training=False))
    assert np.any(a == 0) and np.any(b == 0)
    assert not np.array_equal(a == 0, b == 0)
    # Average of many stochastic passes: E[y] = x (inverted dropout).
    passes = np.stack([_np(layer(x)) for _ in range(200)])
    # Per entry, the mean of 200 passes has sd x * sqrt(p / (1 - p) / 200).
    sd = x * np.sqrt(0.25 / 0.75 / 200)
    z = (passes.mean(axis=0) - x) / sd
    assert abs(z.mean()) < 5 / np.sqrt(x.size)
    assert 0.8 < z.std() < 1.2


def test_noise_shape_shares_mask():
    x = np.ones((6, 5, 8), "float32")
    y = _np(Dropout(0.5, noise_shape=(None, 1, None), seed=0)(x, training=True))
    for t in range(1, 5):
        np.testing.assert_array_equal(y[:, t, :], y[:, 0, :])


def test_mc_predict_under_jit_gives_new_masks_per_batch_and_call():
    inputs = keras.Input((30,))
    outputs = Dropout(0.5, mc=True, seed=5)(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(jit_compile=True)
    x = np.ones((16, 30), "float32")
    p1 = model.predict(x, batch_size=8, verbose=0)
    p2 = model.predict(x, batch_size=8, verbose=0)
    assert set(np.unique(p1)) <= {0.0, 2.0}
    assert not np.array_equal(p1[:8], p1[8:])  # two steps, two masks
    assert not np.array_equal(p1, p2)  # two calls, new masks


def test_plain_dropout_predict_is_identity():
    inputs = keras.Input((4,))
    outputs = Dropout(0.5, seed=6)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(3).normal(size=(10, 4)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_mask_propagates():
    x = np.array([[[1.0], [0.0], [2.0]]], "float32")
    masked = keras.layers.Masking(0.0)(x)
    layer = Dropout(0.5, mc=True)
    y = layer(masked)
    mask = _np(layer.compute_mask(masked, keras.ops.convert_to_tensor([[True, False, True]])))
    np.testing.assert_array_equal(mask, [[True, False, True]])
    assert y.shape == x.shape


def test_config_round_trip_and_drop_in():
    layer = Dropout(0.3, noise_shape=(None, 1), seed=7, mc=True, name="d")
    assert isinstance(layer, keras.layers.Dropout)
    config = layer.get_config()
    keras_config = keras.layers.Dropout(0.3, noise_shape=(None, 1), seed=7, name="d").get_config()
    assert set(config) == set(keras_config) | {"mc"}
    assert config["mc"] is True and config["rate"] == 0.3
    clone = Dropout.from_config(config)
    assert clone.get_config() == config
    # Keras' own config (no `mc`) loads into ours, with mc=False.
    assert Dropout.from_config(keras_config).mc is False
    assert Dropout(0.5).mc is False and Dropout(0.5).noise_shape is None


def test_keras_save_load_in_model(tmp_path):
    inputs = keras.Input((6,))
    h = keras.layers.Dense(6)(inputs)
    outputs = kerasreg.Dropout(0.4, mc=True, seed=8)(h)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.layers[-1]
    assert type(layer) is Dropout
    assert layer.mc is True and layer.rate == 0.4 and layer.seed == 8
    x = np.ones((64, 6), "float32")
    dense = _np(loaded.layers[1](x))
    y = loaded.predict(x, verbose=0)
    kept = y != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(y[kept], dense[kept] / 0.6, rtol=1e-5)


@pytest.mark.parametrize("rate", [1.5, -0.1, None, "0.5", float("nan"), True, [0.5]])
def test_bad_rate(rate):
    # Keras' wording; Keras itself fails with a bare TypeError for None/"0.5".
    with pytest.raises(
        ValueError,
        match=(
            r"Invalid value received for argument `rate`\. Expected a float "
            rf"value between 0 and 1\. Received: rate={re.escape(repr(rate))}$"
        ),
    ):
        Dropout(rate=rate)


def test_rate_accepts_what_keras_accepts():
    assert Dropout(0).rate == 0 and Dropout(1).rate == 1
    assert Dropout(np.float32(0.25)).rate == np.float32(0.25)


def test_bad_mc():
    with pytest.raises(ValueError, match=r"argument `mc`.*Received: mc=yes"):
        Dropout(0.5, mc="yes")


@pytest.mark.skipif(
    tuple(int(p) for p in keras.version().split(".")[:2]) < (3, 13),
    reason="Keras < 3.13 does not check noise_shape at construction",
)
def test_bad_noise_shape_uses_keras_wording():
    with pytest.raises(ValueError, match="argument `noise_shape`"):
        Dropout(0.5, noise_shape="bad")
