"""Tests for kerasreg.initializers.lsuv."""

import keras
import numpy as np
import pytest

import kerasreg
from kerasreg.initializers import LSUVReport
from kerasreg.initializers import lsuv


def to_np(t):
    return np.asarray(keras.ops.convert_to_numpy(t), dtype="float64")


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(128, 20)).astype("float32")


def mlp():
    return keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(32, activation="relu", name="h1"),
            keras.layers.Dense(24, activation="tanh", name="h2"),
            keras.layers.Dense(5, activation="softmax", name="out"),
        ]
    )


def numpy_pre_activation_variances(model, x):
    """Independent numpy forward pass of the MLP above."""
    activations = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}
    h = x.astype("float64")
    variances = []
    for layer in model.layers:
        z = h @ to_np(layer.kernel) + to_np(layer.bias)
        variances.append(z.var())
        h = activations.get(layer.get_config()["activation"], lambda v: v)(z)
    return variances


def test_sequential_unit_variance(x):
    model = mlp()
    report = lsuv(model, x, tol=0.05, seed=0)
    assert isinstance(report, LSUVReport)
    assert [entry["layer"] for entry in report] == ["h1", "h2", "out"]
    variances = numpy_pre_activation_variances(model, x)
    for entry, expected in zip(report, variances, strict=True):
        assert abs(expected - 1) < 0.05
        np.testing.assert_allclose(entry["variance"], expected, rtol=1e-4)
        assert entry["converged"] is True
        assert 0 <= entry["iterations"] <= 10
    assert report.converged


def test_kernels_are_scaled_orthogonal(x):
    model = mlp()
    lsuv(model, x, seed=0)
    for layer in model.layers:
        w = to_np(layer.kernel)
        # Orthogonal rows (fan_in < fan_out) or columns, times one scale.
        gram = w @ w.T if w.shape[0] < w.shape[1] else w.T @ w
        scale = np.mean(np.diag(gram))
        np.testing.assert_allclose(gram / scale, np.eye(len(gram)), atol=1e-5)


def test_functional_conv_model():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 10, 10, 3)).astype("float32")
    inputs = keras.Input((10, 10, 3))
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(4, name="head")(h)
    model = keras.Model(inputs, outputs)
    report = lsuv(model, x, tol=0.02, seed=3)
    assert [entry["layer"] for entry in report] == ["conv", "head"]
    # Independent check: a fresh linear Conv2D with the same weights.
    conv = model.get_layer("conv")
    probe = keras.layers.Conv2D(8, 3)
    probe.build((None, 10, 10, 3))
    probe.set_weights(conv.get_weights())
    z = to_np(probe(x))
    assert abs(z.var() - 1) < 0.02
    np.testing.assert_allclose(report[0]["variance"], z.var(), rtol=1e-4)
    # The head sees the pooled ReLU features the initialized conv produces.
    features = keras.Model(inputs, model.get_layer("head").input)(x)
    head = model.get_layer("head")
    z_head = to_np(features) @ to_np(head.kernel) + to_np(head.bias)
    assert abs(z_head.var() - 1) < 0.02


def test_unbuilt_sequential_and_subclassed(x):
    unbuilt = keras.Sequential(
        [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    report = lsuv(unbuilt, x, seed=0)
    assert len(report) == 2 and report.converged

    class TwoLayer(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = keras.layers.Dense(16, activation="tanh")
            self.b = keras.layers.Dense(3)

        def call(self, inputs):
            return self.b(self.a(inputs))

    model = TwoLayer()
    report = lsuv(model, x, seed=0)
    h = x.astype("float64") @ to_np(model.a.kernel) + to_np(model.a.bias)
    assert abs(h.var() - 1) < 0.1
    np.testing.assert_allclose(report[0]["variance"], h.var(), rtol=1e-4)
    assert report.converged


def test_report_fields_and_str(x):
    report = lsuv(mlp(), x, tol=1e-9, max_iter=1, seed=0)
    # tol too strict for one rescaling: every layer does exactly one.
    assert [entry["iterations"] for entry in report] == [1, 1, 1]
    assert set(report[0]) == {"layer", "variance", "iterations", "converged"}
    text = str(report)
    for name in ("h1", "h2", "out", "variance", "iterations"):
        assert name in text
    assert "LSUVReport" in repr(report)
    assert kerasreg.lsuv is lsuv


def test_no_kernel_layer_is_an_error(x):
    model = keras.Sequential([keras.Input((20,)), keras.layers.Activation("relu")])
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `model`\. Expected a model "
        r"with at least one Dense or Conv layer\. Received: model=",
    ):
        lsuv(model, x)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"tol": 0}, r"argument `tol`\. Expected a float value > 0\. Received: tol=0"),
        ({"tol": -1.0}, r"Received: tol=-1\.0"),
        (
            {"max_iter": 0},
            r"argument `max_iter`\. Expected an integer >= 1\. "
            r"Received: max_iter=0",
        ),
        ({"max_iter": 2.5}, r"Received: max_iter=2\.5"),
        ({"seed": "a"}, r"argument `seed`.*Received: seed='a'"),
    ],
)
def test_bad_arguments(x, kwargs, message):
    with pytest.raises(ValueError, match=message):
        lsuv(mlp(), x, **kwargs)


def test_missing_batch_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `x`\. Expected a batch of "
        r"inputs.*Received: x=None",
    ):
        lsuv(mlp(), None)
    with pytest.raises(ValueError, match=r"argument `x`.*Received: x=None"):
        lsuv(mlp(), x=None)


@pytest.mark.parametrize(
    "args,message",
    [
        ((None,), r"argument `layers`\. Expected a list of dicts.*Received: layers=None"),
        (([{"layer": "a"}],), r"argument `layers`.*Received: layers=\[\{'layer': 'a'\}\]"),
        (([], 0), r"argument `tol`\. Expected a float value > 0\. Received: tol=0"),
    ],
)
def test_report_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        LSUVReport(*args)


def test_report_built_by_hand():
    entry = {"layer": "d", "variance": 1.02, "iterations": 2, "converged": True}
    report = LSUVReport([entry])
    assert report.tol == 0.1 and report.converged and len(report) == 1
    assert "d" in str(report)
