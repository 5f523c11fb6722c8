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


def test_relu_kink_is_reported_as_a_kink_with_hand_computed_slopes():
    # One ReLU unit, w = 1, b = 0, inputs 0, 1, 2, 3: the first sample sits
    # exactly on the kink. Objective: mean(relu(x w + b)).
    # d/db: autodiff uses relu'(0) = 0 -> (0 + 1 + 1 + 1) / 4 = 0.75;
    # central difference sees (relu(h) - relu(-h)) / 2h = 0.5 for that
    # sample -> 3.5 / 4 = 0.875; relative error 0.125 / 0.875 = 1 / 7.
    # One-sided slopes: left 3 / 4 = 0.75 (= the analytic one), right
    # 4 / 4 = 1: a kink, not a wrong gradient.
    # d/dw: the kink sample has x = 0, so both give (1 + 2 + 3) / 4.
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, activation="relu")]
    )
    model.set_weights([np.ones((1, 1), "float32"), np.zeros((1,), "float32")])
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    report = gradient_check(model, x, loss=keras.ops.mean)
    layer = model.layers[0]
    bias, kernel = layer.bias.path, layer.kernel.path
    assert report.kinks == {kernel: 0, bias: 1}
    assert report.num_kinks == 1
    entry = report.kink_worst[bias]
    assert entry["index"] == (0,)
    assert entry["analytic"] == pytest.approx(0.75)
    assert entry["numeric"] == pytest.approx(0.875)
    assert entry["slope_minus"] == pytest.approx(0.75)
    assert entry["slope_plus"] == pytest.approx(1.0)
    np.testing.assert_allclose(entry["relative_error"], 1 / 7, rtol=1e-6)
    # The kink entry is left out of the error; the kernel is exact.
    assert report.per_weight[bias] == 0.0 and report.worst[bias] is None
    assert report.per_weight[kernel] < 1e-7
    assert report.verdict == "good"
    assert report.kink_worst[kernel] is None
    assert "crossed a kink" in str(report)


def digits_cnn(seed=0, wrong=False):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((8, 8, 1))]
    layers.append(keras.layers.Conv2D(2, 3, activation="relu", name="conv"))
    layers.append(keras.layers.Flatten())
    if wrong:
        layers += [WrongGradientDense(4, name="buggy"), keras.layers.ReLU()]
    layers.append(keras.layers.Dense(10, activation="softmax", name="out"))
    return keras.Sequential(layers)


def test_max_pooling_tie_is_a_kink_not_a_wrong_gradient():
    # z = x W + b with x = 1, W = [[1, 1]], b = [0, 0]: z = [1, 1], a tie
    # in max(z_0, z_1). Moving b_0 by +h raises the max (slope 1), by -h
    # leaves it at 1 (slope 0): the central difference gives 1/2. Autodiff
    # gives the whole gradient to one of the tied entries (1 and 0), or
    # splits it (1/2 each, then there is no error at all).
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(2, name="z"),
            keras.layers.Reshape((2, 1)),
            keras.layers.MaxPooling1D(2),
            keras.layers.Flatten(),
        ]
    )
    model.set_weights([np.ones((1, 2), "float32"), np.zeros((2,), "float32")])
    report = gradient_check(model, np.ones((1, 1)), loss=keras.ops.mean)
    assert report.verdict == "good", str(report)
    for v in model.trainable_variables:
        worst = report.kink_worst[v.path]
        if worst is None:  # split gradient: exact
            assert report.per_weight[v.path] < 1e-7
        else:
            assert report.kinks[v.path] == 2
            assert worst["numeric"] == pytest.approx(0.5)
            assert worst["analytic"] in (pytest.approx(0.0), pytest.approx(1.0))
            assert {round(worst["slope_minus"], 6), round(worst["slope_plus"], 6)} == {
                0.0,
                1.0,
            }


def digits_batch(n=4):
    (x, y), _, _ = kerasreg.datasets.load("digits", seed=0)
    return x[:n].reshape(n, 8, 8, 1), y[:n]


def test_relu_cnn_on_digits_reports_kinks_not_a_wrong_gradient():
    # Blank 3x3 patches of the digits give a pre-activation equal to the
    # (zero) conv bias: exactly on the ReLU kink, so each conv-bias check
    # crosses it. Before kinks were detected the verdict was "wrong".
    x, y = digits_batch()
    patches = np.lib.stride_tricks.sliding_window_view(x[..., 0], (3, 3), axis=(1, 2))
    assert np.any(np.all(patches == 0, axis=(-1, -2)))
    model = digits_cnn()
    report = gradient_check(
        model, x, y, loss="sparse_categorical_crossentropy", max_params=20
    )
    conv_bias = model.get_layer("conv").bias.path
    assert report.verdict != "wrong", str(report)
    assert report.verdict in ("good", "ok-with-kinks")
    assert report.kinks[conv_bias] >= 1
    assert report.num_kinks >= 1
    # Independent numpy backprop of the conv bias gradient, with ReLU'(0)
    # taken as 0 (what autodiff does: the slope below the kink) and as 1
    # (the slope above it, blank patches' units switched on).
    kernel, bias, w, c = (np.asarray(v, "float64") for v in model.get_weights())
    windows = np.lib.stride_tricks.sliding_window_view(x[..., 0], (3, 3), axis=(1, 2))
    z = np.einsum("nijab,abk->nijk", windows, kernel[:, :, 0, :]) + bias
    logits = np.maximum(z, 0).reshape(len(x), -1) @ w + c
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = (p - np.eye(10)[y]) / len(x)
    d_relu = (d_logits @ w.T).reshape(z.shape)
    below = np.sum(d_relu * (z > 0), axis=(0, 1, 2))
    above = np.sum(d_relu * (z >= 0), axis=(0, 1, 2))
    for k in range(2):
        if report.kink_worst[conv_bias] and report.kink_worst[conv_bias]["index"] == (k,):
            entry = report.kink_worst[conv_bias]
            assert entry["analytic"] == pytest.approx(below[k], rel=1e-9)
            slopes = sorted([entry["slope_minus"], entry["slope_plus"]])
            np.testing.assert_allclose(slopes, sorted([below[k], above[k]]), rtol=1e-3)
            assert entry["relative_error"] > 1e-2  # "wrong" if it were counted
    crossing = [k for k in range(2) if np.any(z[..., k] == 0)]
    assert report.kinks[conv_bias] == len(crossing) >= 1


def test_wrong_gradient_in_a_relu_cnn_is_still_wrong():
    x, y = digits_batch()
    model = digits_cnn(wrong=True)
    report = gradient_check(
        model, x, y, loss="sparse_categorical_crossentropy", max_params=20
    )
    assert report.verdict == "wrong"
    buggy = model.get_layer("buggy").kernel.path
    # Analytic = 2 * numeric away from kinks: relative error 0.5.
    np.testing.assert_allclose(report.per_weight[buggy], 0.5, rtol=1e-6)
    assert report.checked[buggy] - report.kinks[buggy] > report.checked[buggy] // 2


def test_step_h_gives_the_central_difference_with_that_step():
    # f(W, b) = 0.5 * mean(tanh(x W + b) ** 2) (no targets): numpy gives its
    # gradient in closed form and its central differences with any h.
    rng = np.random.default_rng(9)
    x = rng.normal(size=(5, 3))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="tanh")])
    model.set_weights([rng.normal(size=(3, 1)).astype("float32"),
                       np.array([0.3], "float32")])
    w, b = (np.asarray(v, dtype="float64") for v in model.get_weights())

    def f(w, b):
        return 0.5 * np.mean(np.tanh(x @ w + b) ** 2)

    t = np.tanh(x @ w + b)
    analytic = x.T @ (t * (1 - t**2)) / len(x)  # d f / d W
    kernel = model.layers[0].kernel.path
    errors = {}
    for h in (1e-5, 0.02):
        report = gradient_check(model, x, h=h)
        assert report.h == h and f"h={h:g}" in str(report)
        numeric = np.zeros_like(w)
        for i in range(3):
            step = np.zeros_like(w)
            step[i, 0] = h
            numeric[i, 0] = (f(w + step, b) - f(w - step, b)) / (2 * h)
        relative = np.abs(analytic - numeric) / np.maximum(np.abs(analytic), np.abs(numeric))
        worst = report.worst[kernel]
        assert worst["index"] == np.unravel_index(np.argmax(relative), w.shape)
        np.testing.assert_allclose(worst["analytic"], analytic[worst["index"]], rtol=1e-9)
        np.testing.assert_allclose(worst["numeric"], numeric[worst["index"]], rtol=1e-7)
        errors[h] = report.per_weight[kernel]
        if h == 0.02:  # the O(h^2) error of the difference dominates
            np.testing.assert_allclose(errors[h], relative.max(), rtol=1e-5)
            assert report.verdict == "suspicious"
    assert errors[1e-5] < 1e-7 < 1e-4 < errors[0.02]


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
        ({"h": float("nan")}, r"argument `h`\. Expected a float value > 0\. Received: h=nan"),
        ({"h": float("inf")}, r"Received: h=inf"),
        ({"h": "1e-5"}, r"Received: h='1e-5'"),
        ({"h": True}, r"Received: h=True"),
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


class UnregisteredLinear(keras.layers.Layer):
    """`x @ kernel`: a custom layer NOT registered as serializable."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="glorot_uniform"
        )

    def call(self, inputs):
        return keras.ops.matmul(inputs, self.kernel)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class UnregisteredNet(keras.Model):
    """A subclassed model (not registered) holding an unregistered layer."""

    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.linear = UnregisteredLinear(units)

    def call(self, inputs):
        return self.linear(inputs)


def unregistered_mse(y_true, y_pred):  # an unregistered loss function
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


def _unregistered_models():
    inputs = keras.Input((3,))
    functional = keras.Model(inputs, UnregisteredLinear(2)(inputs))
    return {
        "sequential": keras.Sequential([keras.Input((3,)), UnregisteredLinear(2)]),
        "functional": functional,
        "subclassed": UnregisteredNet(2),
    }


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_unregistered_custom_layer_and_loss(kind):
    # Checking one's own layer is the main use: it must not need the
    # registry, nor must a compiled unregistered loss get in the way.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 3))
    y = rng.normal(size=(6, 2))
    model = _unregistered_models()[kind]
    model.compile(optimizer="sgd", loss=unregistered_mse)
    model(x[:1])
    (w,) = (np.asarray(v, dtype="float64") for v in model.get_weights())
    report = gradient_check(model, x, y)  # the compiled (unregistered) loss
    assert report.verdict == "good", str(report)
    # MSE over 2 outputs and 6 rows: dL/dW = 2 / (6 * 2) x^T (x W - y).
    expected = 2 / (6 * 2) * x.T @ (x @ w - y)
    (path,) = report.per_weight
    worst = report.worst[path]
    np.testing.assert_allclose(worst["analytic"], expected[worst["index"]], rtol=1e-9)
    assert report.checked[path] == 6


def _dropout_model(dropout):
    keras.utils.set_random_seed(3)
    layers = [keras.Input((4,)), keras.layers.Dense(6, activation="tanh")]
    if dropout is not None:
        layers.append(dropout)
    layers.append(keras.layers.Dense(3, activation="softmax"))
    return keras.Sequential(layers)


@pytest.mark.parametrize(
    "dropout",
    [
        lambda: kerasreg.Dropout(0.5, mc=True),
        lambda: kerasreg.Dropout(0.5),
        lambda: keras.layers.GaussianNoise(1.0),
    ],
    ids=["mc", "plain", "noise"],
)
def test_dropout_is_off_even_in_mc_mode(dropout):
    x, y = data(seed=8)
    model = _dropout_model(dropout())
    reference = _dropout_model(None)  # same seed: same Dense weights
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    kwargs = dict(loss="categorical_crossentropy", max_params=6)
    first = gradient_check(model, x, y, **kwargs)
    second = gradient_check(model, x, y, **kwargs)
    expected = gradient_check(reference, x, y, **kwargs)
    assert first.worst == second.worst
    assert [w for w in first.worst.values()] == [w for w in expected.worst.values()]
    assert first.verdict == "good"
    # The user's layer still drops (MC dropout is untouched).
    if isinstance(model.layers[1], kerasreg.Dropout) and model.layers[1].mc:
        assert model.layers[1].rate == 0.5
        out = keras.ops.convert_to_numpy(model.layers[1](np.ones((4, 50))))
        assert np.any(out == 0)


def test_wrong_input_shape_is_a_clear_error():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.LayerNormalization(), keras.layers.Dense(3)]
    )
    with pytest.raises(
        ValueError,
        match=r"argument `x`\. Expected inputs of shape \(None, 4\).*"
        r"Received: x with shape \(8, 5\)",
    ):
        gradient_check(model, np.ones((8, 5)))
    with pytest.raises(ValueError, match=r"argument `x`.*Received: x=None"):
        gradient_check(model, None)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"per_weight": None}, r"argument `per_weight`.*Received: per_weight=None"),
        (
            {"per_weight": {"w": "big"}},
            r"argument `per_weight`.*Received: per_weight=\{'w': 'big'\}",
        ),
        ({"per_weight": {"w": 0.1}, "h": 0}, r"argument `h`.*Received: h=0"),
        (
            {"per_weight": {"w": 0.1}, "checked": 3},
            r"argument `checked`.*Received: checked=3",
        ),
    ],
)
def test_report_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradientCheckReport(**kwargs)


def test_report_positional_none():
    with pytest.raises(ValueError, match=r"per_weight=None"):
        GradientCheckReport(None)
    report = GradientCheckReport({"w": 0.0})
    assert report.verdict == "good" and report.num_kinks == 0
    assert "w" in str(report)
