"""Tests for kerasreg.initializers.variance_scaling (Xavier, He, ScaledNormal)."""

import math

import keras
import numpy as np
import pytest

import kerasreg
from kerasreg.initializers import HeNormal
from kerasreg.initializers import HeUniform
from kerasreg.initializers import ScaledNormal
from kerasreg.initializers import XavierNormal
from kerasreg.initializers import XavierUniform


def sample(init, shape):
    return np.asarray(keras.ops.convert_to_numpy(init(shape)), dtype="float64")


def fans(shape):
    # Keras' convention, written out: Dense (fan_in, fan_out); conv
    # (*kernel_size, in_channels, out_channels).
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


# (initializer factory, shape, expected std from the notes' formulas)
CASES = [
    (lambda: XavierNormal(seed=1), (1000, 1000), math.sqrt(1 / 1000)),
    (lambda: XavierUniform(seed=1), (1000, 1000), math.sqrt(1 / 1000)),
    (lambda: XavierNormal(mode="fan_avg", seed=1), (500, 1500), math.sqrt(2 / 2000)),
    (lambda: XavierUniform(mode="fan_avg", seed=1), (500, 1500), math.sqrt(2 / 2000)),
    (lambda: XavierNormal(mode="fan_out", seed=1), (500, 1500), math.sqrt(1 / 1500)),
    (lambda: HeNormal(seed=1), (1000, 1000), math.sqrt(2 / 1000)),
    (lambda: HeUniform(seed=1), (1000, 1000), math.sqrt(2 / 1000)),
    (lambda: ScaledNormal(seed=1), (1000, 1000), 0.01),
    (lambda: ScaledNormal(stddev=0.2, seed=1), (1000, 1000), 0.2),
    # Conv kernels: fan_in = 3 * 3 * 64 = 576, fan_out = 3 * 3 * 128 = 1152.
    (lambda: HeNormal(seed=1), (3, 3, 64, 128), math.sqrt(2 / 576)),
    (lambda: HeUniform(seed=1), (3, 3, 64, 128), math.sqrt(2 / 576)),
    (lambda: XavierNormal(seed=1), (3, 3, 64, 128), math.sqrt(1 / 576)),
    (
        lambda: XavierUniform(mode="fan_avg", seed=1),
        (3, 3, 64, 128),
        math.sqrt(2 / (576 + 1152)),
    ),
]


@pytest.mark.parametrize("factory,shape,expected", CASES)
def test_standard_deviation_within_5_percent(factory, shape, expected):
    w = sample(factory(), shape)
    assert w.shape == shape
    assert abs(w.std() / expected - 1) < 0.05
    assert abs(w.mean()) < 0.05 * expected


def test_fan_convention_matches_keras():
    # Our expected stds above assume Keras' fans; check that assumption
    # against Keras' own VarianceScaling (untruncated, scale 1, fan_in).
    for shape in [(1000, 1000), (3, 3, 64, 128)]:
        fan_in, _ = fans(shape)
        keras_init = keras.initializers.VarianceScaling(
            scale=1.0, mode="fan_in", distribution="untruncated_normal", seed=3
        )
        ours = sample(XavierNormal(seed=3), shape)
        np.testing.assert_allclose(ours, sample(keras_init, shape), rtol=1e-6)
        assert abs(ours.std() * math.sqrt(fan_in) - 1) < 0.05


@pytest.mark.parametrize(
    "normal,uniform",
    [
        (XavierNormal(seed=2), XavierUniform(seed=2)),
        (XavierNormal(mode="fan_avg", seed=2), XavierUniform(mode="fan_avg", seed=2)),
        (HeNormal(seed=2), HeUniform(seed=2)),
    ],
)
def test_uniform_has_the_same_variance_as_normal(normal, uniform):
    shape = (1000, 1000)
    wn, wu = sample(normal, shape), sample(uniform, shape)
    assert abs(wu.var() / wn.var() - 1) < 0.05
    # U(-limit, limit) with limit = sqrt(3) * std: never beyond the limit,
    # and reaching close to it with a million draws.
    limit = math.sqrt(3) * wn.std()
    assert np.abs(wu).max() <= limit * 1.01
    assert np.abs(wu).max() > limit * 0.99


@pytest.mark.parametrize("init", [XavierNormal(seed=4), HeNormal(seed=4)])
def test_normal_is_not_truncated(init):
    # A normal truncated at 2 std (Keras' default) never goes beyond it;
    # a million untruncated draws have ~45,500 beyond 2 std, some beyond 4.
    w = sample(init, (1000, 1000))
    std = w.std()
    beyond = np.mean(np.abs(w) > 2 * std)
    assert abs(beyond - 0.0455) < 0.003
    assert np.abs(w).max() > 4 * std


def test_seed_makes_values_reproducible():
    a = sample(HeNormal(seed=7), (50, 40))
    b = sample(HeNormal(seed=7), (50, 40))
    c = sample(HeNormal(seed=8), (50, 40))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize(
    "init",
    [
        XavierNormal(mode="fan_avg", seed=5),
        XavierUniform(seed=5),
        HeNormal(seed=5),
        HeUniform(seed=5),
        ScaledNormal(stddev=0.3, seed=5),
    ],
)
def test_config_round_trip(init):
    config = init.get_config()
    restored = init.__class__.from_config(config)
    assert restored.get_config() == config
    np.testing.assert_array_equal(sample(init, (6, 4)), sample(restored, (6, 4)))
    serialized = keras.saving.serialize_keras_object(init)
    assert serialized["registered_name"] == f"kerasreg>{init.__class__.__name__}"
    again = keras.saving.deserialize_keras_object(serialized)
    assert type(again) is type(init)
    assert again.get_config() == config


def test_config_keys():
    assert XavierNormal(seed=1).get_config() == {"seed": 1, "mode": "fan_in"}
    assert HeUniform().get_config() == {"seed": None}
    assert ScaledNormal().get_config() == {"seed": None, "stddev": 0.01}


@pytest.mark.parametrize(
    "name,cls",
    [
        ("kerasreg>XavierNormal", XavierNormal),
        ("kerasreg>XavierUniform", XavierUniform),
        ("kerasreg>HeNormal", HeNormal),
        ("kerasreg>HeUniform", HeUniform),
        ("kerasreg>ScaledNormal", ScaledNormal),
    ],
)
def test_usable_by_name_string(name, cls):
    assert isinstance(keras.initializers.get(name), cls)
    layer = keras.layers.Dense(1000, kernel_initializer=name)
    layer.build((None, 1000))
    assert isinstance(layer.kernel_initializer, cls)
    expected = {
        XavierNormal: math.sqrt(1 / 1000),
        XavierUniform: math.sqrt(1 / 1000),
        HeNormal: math.sqrt(2 / 1000),
        HeUniform: math.sqrt(2 / 1000),
        ScaledNormal: 0.01,
    }[cls]
    std = keras.ops.convert_to_numpy(layer.kernel).std()
    assert abs(std / expected - 1) < 0.05


def test_top_level_exports():
    assert kerasreg.HeNormal is HeNormal
    assert kerasreg.XavierUniform is XavierUniform
    assert kerasreg.ScaledNormal is ScaledNormal


def test_keras_file_round_trip(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, kernel_initializer=HeUniform(seed=1)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                5,
                activation="tanh",
                kernel_initializer=XavierNormal(mode="fan_avg", seed=2),
            ),
            keras.layers.Dense(3, kernel_initializer="kerasreg>ScaledNormal"),
        ]
    )
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    conv, _, dense, head = loaded.layers
    assert isinstance(conv.kernel_initializer, HeUniform)
    assert conv.kernel_initializer.get_config() == {"seed": 1}
    assert isinstance(dense.kernel_initializer, XavierNormal)
    assert dense.kernel_initializer.mode == "fan_avg"
    assert isinstance(head.kernel_initializer, ScaledNormal)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)),
        keras.ops.convert_to_numpy(loaded(x)),
        rtol=1e-6,
    )


@pytest.mark.parametrize("cls", [XavierNormal, XavierUniform])
def test_bad_mode(cls):
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `mode`\. Expected one of "
        r".*Received: mode=bad",
    ):
        cls(mode="bad")


@pytest.mark.parametrize("stddev", [0, -0.1, "0.1", None, True])
def test_bad_stddev(stddev):
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `stddev`\. Expected a "
        rf"float value > 0\. Received: stddev={stddev!r}",
    ):
        ScaledNormal(stddev=stddev)
