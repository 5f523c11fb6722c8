import math

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import kerasreg
from kerasreg.diagnostics import sanity_check


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x[:300] / 16.0).astype("float32"), y[:300]


def _mlp(out="softmax", regularizer=None, dropout=0.0, lr=0.01, classes=10,
         loss="sparse_categorical_crossentropy"):
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu",
                               kernel_regularizer=regularizer),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(classes, activation=out),
        ]
    )
    model.compile(keras.optimizers.Adam(lr), loss, metrics=["accuracy"])
    return model


@pytest.mark.slow
def test_softmax_mlp_initial_loss_is_ln10_and_passes(digits):
    x, y = digits
    report = sanity_check(_mlp(), x, y, n_overfit=10, epochs=100)
    check = report["initial_loss"]
    assert check.expected == pytest.approx(math.log(10))
    assert check.value == pytest.approx(2.303, rel=0.1)
    assert check.passed is True
    assert report["regularization"].passed is None  # no regularizer: skipped
    assert report["overfit"].passed is True
    assert report["overfit"].value < 0.05
    assert report["overfit"].details["accuracy"] == 1.0
    assert report.passed is True
    d = report.to_dict()
    assert [c["name"] for c in d["checks"]] == [
        "initial_loss", "regularization", "overfit"]
    text = str(report)
    assert "initial_loss" in text and "PASS" in text


@pytest.mark.slow
def test_user_model_is_untouched(digits):
    x, y = digits
    model = _mlp(regularizer=keras.regularizers.L2(1e-3), dropout=0.5)
    before = [w.copy() for w in model.get_weights()]
    sanity_check(model, x, y, n_overfit=10, epochs=5)
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert int(model.optimizer.iterations.numpy()) == 0
    assert isinstance(model.layers[1], keras.layers.Dropout)
    assert model.layers[0].kernel.regularizer is not None


@pytest.mark.slow
def test_relu_output_with_cross_entropy_fails(digits):
    x, y = digits
    report = sanity_check(_mlp(out="relu"), x, y, n_overfit=10, epochs=20)
    assert report.passed is False
    assert report["overfit"].passed is False
    assert "learning rate" in report["overfit"].advice
    assert "output activation" in report["overfit"].advice
    assert report["initial_loss"].passed is False
    assert "FAIL" in str(report)


@pytest.mark.slow
def test_contradictory_labels_cannot_be_overfit(digits):
    # Each input twice, with two different labels: the best achievable
    # cross-entropy is ln(2) (predict 1/2 on both), far above 0.05.
    x, y = digits
    x2 = np.concatenate([x[:5], x[:5]])
    y2 = np.concatenate([y[:5], (y[:5] + 1) % 10])
    report = sanity_check(_mlp(), x2, y2, n_overfit=10, epochs=30)
    assert report["overfit"].passed is False
    assert report["overfit"].value >= math.log(2) - 1e-3


def test_regularization_raises_the_loss_by_the_scaled_penalty(digits):
    x, y = digits
    l2 = 1e-3
    model = _mlp(regularizer=keras.regularizers.L2(l2))
    report = sanity_check(model, x, y, n_overfit=10, epochs=1,
                          regularization_factor=10.0)
    check = report["regularization"]
    assert check.passed is True
    penalty = l2 * float(np.sum(model.layers[0].kernel.numpy() ** 2))
    # Same data loss on both sides: the difference is 9 x the penalty.
    raised = check.details["loss_scaled"] - check.details["loss"]
    assert raised == pytest.approx(9 * penalty, rel=1e-3)
    # The initial-loss check runs with regularization off.
    assert check.details["loss"] - report["initial_loss"].value == (
        pytest.approx(penalty, rel=1e-3))


def test_sigmoid_binary_cross_entropy_expects_ln2():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid",
                              kernel_initializer="zeros")])
    model.compile("sgd", "binary_crossentropy")
    report = sanity_check(model, x, y, n_overfit=4, epochs=1)
    # Zero weights: p = 1/2 everywhere, loss exactly ln(2).
    assert report["initial_loss"].expected == pytest.approx(math.log(2))
    assert report["initial_loss"].value == pytest.approx(math.log(2), rel=1e-5)


def test_other_losses_report_the_value_only():
    x = np.ones((8, 2), "float32")
    y = np.full((8, 1), 3.0, "float32")
    model = keras.Sequential([keras.Input((2,)),
                              keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile("sgd", "mse")
    check = sanity_check(model, x, y, n_overfit=2, epochs=1)["initial_loss"]
    assert check.passed is None and check.expected is None
    assert check.value == pytest.approx(9.0)  # (0 - 3)^2


def test_bad_arguments(digits):
    x, y = digits
    uncompiled = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="compiled"):
        sanity_check(uncompiled, x, y)
    model = _mlp()
    with pytest.raises(ValueError, match="n_overfit"):
        sanity_check(model, x, y, n_overfit=0)
    with pytest.raises(ValueError, match="n_overfit"):
        sanity_check(model, x, y, n_overfit=len(x) + 1)
    with pytest.raises(ValueError, match="epochs"):
        sanity_check(model, x, y, epochs=0)
    with pytest.raises(ValueError, match="tolerance"):
        sanity_check(model, x, y, tolerance=-1)
    with pytest.raises(ValueError, match="same number"):
        sanity_check(model, x, y[:10])


def test_readme_snippet_model_overfits_with_default_optimizer_settings():
    # The README's snippet: a healthy L2-regularized ReLU MLP compiled with
    # plain "adam" (learning rate 1e-3). Full-batch Adam at 1e-3 reached
    # only 0.30 after 100 steps; the check's own optimizer must get it
    # below 0.05, with 100% training accuracy on the 20 examples.
    (x, y), _, _ = kerasreg.datasets.load("digits", seed=0)
    x = x.reshape(len(x), -1)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(
                64, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-4)
            ),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    report = sanity_check(model, x, y, n_overfit=20, epochs=100)
    check = report["overfit"]
    assert check.passed is True, str(report)
    assert check.value < 0.05
    assert check.details["accuracy"] == 1.0
    assert check.details["epochs_run"] <= 100
    assert check.details["learning_rate"] == 1e-2
    assert report.passed is True
    # The user's model and optimizer are untouched.
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert int(model.optimizer.iterations.numpy()) == 0


class McNet(keras.Model):
    """A subclassed model whose Monte-Carlo dropout drops at inference too."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.drop = kerasreg.Dropout(0.9, mc=True)
        self.out = keras.layers.Dense(10, activation="softmax")

    def call(self, inputs, training=False):
        return self.out(self.drop(self.hidden(inputs), training=training))


def test_monte_carlo_dropout_is_off_for_the_overfit_check(digits):
    x, y = digits
    model = McNet()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model(x[:1])
    report = sanity_check(model, x, y, n_overfit=10, epochs=100)
    assert report["overfit"].passed is True, str(report)
    assert report["overfit"].details["accuracy"] == 1.0
    assert model.drop.rate == 0.9 and model.drop.mc is True


def test_bad_learning_rates(digits):
    x, y = digits
    for bad in [(), (0.0,), "fast", (1e-2, -1.0)]:
        with pytest.raises(ValueError, match=r"argument `learning_rates`"):
            sanity_check(_mlp(), x, y, learning_rates=bad)


class GuideNet(keras.Model):
    """The Keras guide's subclassed model: no `**kwargs`, no `get_config`."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.out = keras.layers.Dense(10, activation="softmax")

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def test_subclassed_model_without_get_config(digits):
    x, y = digits
    keras.utils.set_random_seed(0)
    model = GuideNet()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model(x[:1])
    report = sanity_check(model, x, y, n_overfit=10, epochs=100)
    assert report["overfit"].passed is True, str(report)


def _constant_sigmoid(b, l2=None):
    """p = sigmoid(b) for every input: the losses are known by hand."""
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(
            1, activation="sigmoid", kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(b),
            bias_regularizer=None if l2 is None else keras.regularizers.L2(l2))])
    model.compile("sgd", "binary_crossentropy")
    return model


def _softplus(t):
    return math.log1p(math.exp(t))


def test_thresholds_flip_the_verdicts():
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.ones((8, 1), "float32")
    b, l2 = -0.2, 0.1
    model = _constant_sigmoid(b, l2)
    # Every label 1, p = sigmoid(-0.2): cross-entropy log(1 + e^0.2) = 0.798,
    # 15% above ln(2). The L2 penalty on the bias: l2 * b^2 = 0.004.
    loss, penalty = _softplus(-b), l2 * b**2
    assert abs(loss - math.log(2)) / math.log(2) == pytest.approx(0.1515, abs=1e-4)
    # One overfit step: the loss it reports is the one before its update.
    default = sanity_check(model, x, y, n_overfit=4, epochs=1)
    custom = sanity_check(model, x, y, n_overfit=4, epochs=1, tolerance=0.2,
                          target_loss=0.85, regularization_factor=3.0,
                          learning_rates=(0.5,))
    for report in (default, custom):
        assert report["initial_loss"].value == pytest.approx(loss, rel=1e-5)
        assert report["overfit"].value == pytest.approx(loss, rel=1e-5)
        assert report["regularization"].details["loss"] == pytest.approx(
            loss + penalty, rel=1e-5)
        assert report["overfit"].details["examples"] == 4
    # tolerance: 15% is outside 10%, inside 20%.
    assert default["initial_loss"].passed is False
    assert custom["initial_loss"].passed is True
    # target_loss: 0.798 is above 0.05, below 0.85 (reached with the first
    # learning rate, so the next one is not tried).
    assert default["overfit"].passed is False
    assert default["overfit"].details["learning_rates_tried"] == [1e-2, 1e-3]
    assert custom["overfit"].passed is True
    assert custom["overfit"].details["learning_rates_tried"] == [0.5]
    assert (default.passed, custom.passed) == (False, True)
    # regularization_factor: the loss rises by (factor - 1) * penalty.
    for report, factor in ((default, 10.0), (custom, 3.0)):
        check = report["regularization"]
        assert check.passed is True and check.details["factor"] == factor
        raised = check.details["loss_scaled"] - check.details["loss"]
        assert raised == pytest.approx((factor - 1) * penalty, rel=1e-3)


def test_max_eval_scores_a_subset():
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0], "float32")[:, None]
    model = _constant_sigmoid(-0.2)
    # Per example: -log sigmoid(-0.2) = 0.798 (label 1), -log(1 -
    # sigmoid(-0.2)) = 0.598 (label 0); on all 8: (3 * 0.798 + 5 * 0.598) / 8.
    one, zero = _softplus(0.2), _softplus(-0.2)
    mean = (3 * one + 5 * zero) / 8
    assert min(abs(mean - one), abs(mean - zero)) > 0.07
    # The default (max_eval=1024 > 8) scores all 8 examples; max_eval=1 one.
    report = sanity_check(model, x, y, n_overfit=2, epochs=1)
    assert report["initial_loss"].value == pytest.approx(mean, rel=1e-5)
    report = sanity_check(model, x, y, n_overfit=2, epochs=1, max_eval=1)
    value = report["initial_loss"].value
    assert value == pytest.approx(one, rel=1e-5) or value == pytest.approx(
        zero, rel=1e-5)
