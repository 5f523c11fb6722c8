"""Tests for kerasreg.diagnostics.gradient_check."""

import keras
import numpy as np
import pytest

import kerasreg
from kerasreg.diagnostics import GradientCheckReport
from kerasreg.diagnostics import gradient_check


@keras.saving.register_keras_serializable(package="kerasreg_tests")
class WrongGradientDense(keras.layers.Layer):
    """`x @ kernel` whose backward pass is doubled (a deliberate bug).

    Forward value: `stop_gradient(z) + (2z - stop_gradient(2z)) = z` exactly;
    gradient: that of `2z`. Works on every backend.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer="glorot_uniform",
            name="kernel",
        )

    def call(self, inputs):
        z = keras.ops.matmul(inputs, self.kernel)
        doubled = 2.0 * z
        return keras.ops.stop_gradient(z) + (doubled - keras.ops.stop_gradient(doubled))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def data(n=8, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, n)]
    return x, y


def tanh_softmax(dropout=0.0):
    layers = [keras.Input((4,)), keras.layers.Dense(6, activation="tanh")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(3, activation="softmax"))
    return keras.Sequential(layers)


def test_dense_tanh_softmax_is_good():
    model = tanh_softmax(dropout=0.5)  # dropout must be switched off
    x, y = data()
    report = gradient_check(model, x, y, loss="categorical_crossentropy")
    assert isinstance(report, GradientCheckReport)
    assert report.verdict == "good"
    assert report.max_relative_error < 1e-7
    names = [v.path for v in model.trainable_variables]
    assert list(report.per_weight) == names
    sizes = {v.path: int(np.prod(v.shape)) for v in model.trainable_variables}
    assert report.checked == sizes
    assert report.max_relative_error == max(report.per_weight.values())
    text = str(report)
    assert "good" in text and all(name in text for name in names)
    # The float64 scope is undone afterwards.
    assert keras.config.floatx() == "float32"
    assert model.trainable_variables[0].dtype == "float32"


def test_uses_compiled_loss_and_functional_models():
    x, y = data(seed=1)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(5, activation="tanh")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy())
    report = gradient_check(model, x, y)
    assert report.verdict == "good"
    assert report.max_relative_error < 1e-7


def test_analytic_gradient_matches_closed_form_with_regularization():
    # Linear model, MSE and an L2 penalty: dL/dW = 2/N x^T (xW + b - y) + 2 l W.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 3))
    y = rng.normal(size=(10, 1))
    penalty = 0.3
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(penalty)),
        ]
    )
    w, b = (np.asarray(v, dtype="float64") for v in model.get_weights())
    report = gradient_check(model, x, y, loss="mse")
    assert report.verdict == "good"
    expected = 2 / len(x) * x.T @ (x @ w + b - y) + 2 * penalty * w
    kernel = model.layers[0].kernel.path
    worst = report.worst[kernel]
    np.testing.assert_allclose(worst["analytic"], expected[worst["index"]], rtol=1e-9)
    np.testing.assert_allclose(worst["numeric"], expected[worst["index"]], rtol=1e-7)


def test_flags_a_wrong_custom_gradient():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            WrongGradientDense(5, name="buggy"),
            keras.layers.Activation("tanh"),
            keras.layers.Dense(3, activation="softmax", name="fine"),
        ]
    )
    x, y = data(seed=3)
    report = gradient_check(model, x, y, loss="categorical_crossentropy")
    assert report.verdict == "wrong"
    buggy = model.get_layer("buggy").kernel.path
    # Analytic = 2 * numeric: relative error |2n - n| / |2n| = 0.5.
    np.testing.assert_allclose(report.per_weight[buggy], 0.5, rtol=1e-6)
    # Layers after the bug get correct gradients.
    for v in model.get_layer("fine").trainable_variables:
        assert report.per_weight[v.path] < 1e-7
    assert "wrong" in str(report)


def test_relu_network_is_fine_for_kinks():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x, y = data(seed=4)
    report = gradient_check(model, x, y, loss="categorical_crossentropy")
    assert report.verdict in ("good", "ok-with-kinks")
    assert report.max_relative_error < 1e-4


def test_relu_kink_error_matches_hand_computation():
    # One ReLU unit, w = 1, b = 0, inputs 0, 1, 2, 3: the first sample sits
    # exactly on the kink. Objective: mean(relu(x w + b)).
    # d/db: autodiff uses relu'(0) = 0 -> (0 + 1 + 1 + 1) / 4 = 0.75;
    # central difference sees (relu(h) - relu(-h)) / 2h = 0.5 for that
    # sample -> 3.5 / 4 = 0.875; relative error 0.125 / 0.875 = 1 / 7.
    # d/dw: the kink sample has x = 0, so both give (1 + 2 + 3) / 4.
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, activation="relu")]
    )
    model.set_weights([np.ones((1, 1), "float32"), np.zeros((1,), "float32")])
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    report = gradient_check(model, x, loss=keras.ops.mean)
    layer = model.layers[0]
    np.testing.assert_allclose(report.per_weight[layer.bias.path], 1 / 7, rtol=1e-6)
    assert report.per_weight[layer.kernel.path] < 1e-7
    assert report.worst[layer.bias.path]["analytic"] == pytest.approx(0.75)
    assert report.worst[layer.bias.path]["numeric"] == pytest.approx(0.875)
    assert report.verdict == "wrong"


def test_max_params_subsamples_each_weight():
    model = tanh_softmax()
    x, y = data(seed=5)
    full = gradient_check(model, x, y, loss="categorical_crossentropy")
    part = gradient_check(
        model, x, y, loss="categorical_crossentropy", max_params=4, seed=1
    )
    sizes = {v.path: int(np.prod(v.shape)) for v in model.trainable_variables}
    assert part.checked == {name: min(4, size) for name, size in sizes.items()}
    for name in sizes:
        assert part.per_weight[name] <= full.per_weight[name]
    again = gradient_check(
        model, x, y, loss="categorical_crossentropy", max_params=4, seed=1
    )
    assert again.per_weight == part.per_weight
    assert {n: w["index"] for n, w in again.worst.items()} == {
        n: w["index"] for n, w in part.worst.items()
    }


def test_objective_without_targets():
    # No y, no loss: 0.5 * mean(y_pred ** 2). For a linear Dense(1) with
    # zero bias the gradient w.r.t. the kernel is mean_i(x_i (x_i . w)).
    rng = np.random.default_rng(6)
    x = rng.normal(size=(6, 3))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    w = np.asarray(model.get_weights()[0], dtype="float64")
    report = gradient_check(model, x)
    assert report.verdict == "good"
    expected = x.T @ (x @ w) / len(x)
    worst = report.worst[model.layers[0].kernel.path]
    np.testing.assert_allclose(worst["analytic"], expected[worst["index"]], rtol=1e-9)


@pytest.mark.parametrize(
    "error,verdict",
    [
        (0.0, "good"),
        (5e-8, "good"),
        (1e-7, "ok-with-kinks"),
        (5e-5, "ok-with-kinks"),
        (5e-3, "suspicious"),
        (2e-2, "wrong"),
        (float("nan"), "wrong"),
    ],
)
def test_report_bands(error, verdict):
    report = GradientCheckReport(
        {"w": error, "b": 0.0}, {"w": 3, "b": 2}, {"w": None, "b": None}, 1e-5
    )
    assert report.verdict == verdict
    assert report.per_weight == {"w": error, "b": 0.0}
    assert verdict in str(report)
    assert kerasreg.gradient_check is gradient_check


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"h": 0}, r"argument `h`\. Expected a float value > 0\. Received: h=0"),
        ({"h": -1e-5}, r"Received: h=-1e-05"),
        (
            {"max_params": 0},
            r"argument `max_params`\. Expected an integer >= 1\. "
            r"Received: max_params=0",
        ),
        ({"seed": 1.5}, r"argument `seed`\. Expected an integer\. Received: seed=1\.5"),
    ],
)
def test_bad_arguments(kwargs, message):
    x, y = data()
    with pytest.raises(ValueError, match=message):
        gradient_check(tanh_softmax(), x, y, loss="mse", **kwargs)


def test_missing_loss_is_an_error():
    x, y = data()
    with pytest.raises(ValueError, match=r"argument `loss`.*Received: loss=None"):
        gradient_check(tanh_softmax(), x, y)
