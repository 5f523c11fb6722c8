"""Tests for kerasreg._cloning.clone_uncompiled on subclassed models."""

import keras
import numpy as np
import pytest

from kerasreg._cloning import clone_uncompiled


class GuideModel(keras.Model):
    """The Keras guide's subclassed model: no argument, no `get_config`."""

    def __init__(self):
        super().__init__()
        self.dense1 = keras.layers.Dense(4, activation="relu")
        self.dense2 = keras.layers.Dense(1)

    def call(self, inputs):
        return self.dense2(self.dense1(inputs))


class WithDefaults(keras.Model):
    """Arguments with defaults, `**kwargs`, no `get_config`."""

    def __init__(self, units=2, rate=0.5, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.rate = rate
        self.hidden = keras.layers.Dense(units)
        self.out = keras.layers.Dense(1)

    def call(self, inputs):
        return self.out(self.hidden(inputs))


class Required(keras.Model):
    def __init__(self, units):
        super().__init__()
        self.hidden = keras.layers.Dense(units)

    def call(self, inputs):
        return self.hidden(inputs)


class WithConfig(WithDefaults):
    def get_config(self):
        return {**super().get_config(), "units": self.units, "rate": self.rate}


def _built(model):
    model(np.zeros((2, 5), "float32"))
    return model


def test_subclassed_model_without_get_config_is_rebuilt():
    model = _built(GuideModel())
    model.compile("adam", "mse")
    clone = clone_uncompiled(model)
    assert type(clone) is GuideModel and not clone.compiled
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone(x)),
        keras.ops.convert_to_numpy(model(x)),
        rtol=1e-6,
    )
    assert len(clone.weights) == len(model.weights)


def test_arguments_keras_did_not_record_raise_instead_of_a_wrong_copy():
    # Keras' automatic config of a subclassed model holds the defaults
    # (units=2), not the arguments given.
    assert WithDefaults(3).get_config()["units"] == 2
    with pytest.raises(ValueError, match="weight shapes.*define `get_config"):
        clone_uncompiled(_built(WithDefaults(3)))
    with pytest.raises(ValueError, match="differs from it in `rate`"):
        clone_uncompiled(_built(WithDefaults(rate=0.1)))
    clone = clone_uncompiled(_built(WithDefaults()))
    assert (clone.units, clone.rate) == (2, 0.5)


def test_required_constructor_argument_raises():
    with pytest.raises(ValueError, match=r"`Required\(\)` fails"):
        clone_uncompiled(_built(Required(2)))


def test_own_get_config_is_used():
    clone = clone_uncompiled(_built(WithConfig(3, rate=0.1)))
    assert (clone.units, clone.rate) == (3, 0.1)
    assert [tuple(w.shape) for w in clone.weights] == [(5, 3), (3,), (3, 1), (1,)]


class Named(keras.Model):
    def __init__(self, name="named"):
        super().__init__(name=name)
        self.hidden = keras.layers.Dense(2)

    def call(self, inputs):
        return self.hidden(inputs)


def test_a_name_given_to_the_constructor_is_not_a_difference():
    clone = clone_uncompiled(_built(Named(name="mine")))
    assert isinstance(clone, Named)
