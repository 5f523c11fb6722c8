import keras
import numpy as np
import pytest

from kerasreg.diagnostics import overfitting_report
from kerasreg.diagnostics.overfitting import (
    DIVERGING, FLAT, HEALTHY, NOISY, OVERFITTING, UNDERFITTING)


def _history(**logs):
    history = keras.callbacks.History()
    history.history = {k: list(v) for k, v in logs.items()}
    return history


def test_overfitting_gap_large_and_growing(capsys):
    loss = [1.0, 0.6, 0.4, 0.25, 0.15, 0.1, 0.06, 0.04]
    val = [1.0, 0.7, 0.6, 0.6, 0.65, 0.7, 0.8, 0.9]
    report = overfitting_report(_history(loss=loss, val_loss=val))
    assert report.verdict == OVERFITTING
    assert report.gap == pytest.approx(list(np.subtract(val, loss)))
    assert "overfitting" in capsys.readouterr().out


def test_underfitting_close_and_poor():
    loss = [2.0, 1.6, 1.4, 1.3, 1.25, 1.22]
    val = [2.0, 1.62, 1.43, 1.32, 1.27, 1.24]
    acc = [0.2, 0.35, 0.45, 0.5, 0.52, 0.53]
    val_acc = [0.2, 0.34, 0.44, 0.49, 0.51, 0.52]
    report = overfitting_report(
        _history(loss=loss, val_loss=val, accuracy=acc, val_accuracy=val_acc),
        verbose=False)
    assert report.verdicts == [UNDERFITTING]
    assert report.accuracy_gap == pytest.approx(list(np.subtract(acc, val_acc)))


def test_noisy_loss():
    loss = [1.0, 0.8, 0.9, 0.7, 0.8, 0.6, 0.7, 0.5, 0.6, 0.45]
    val = [v + 0.01 for v in loss]
    report = overfitting_report(_history(loss=loss, val_loss=val), verbose=False)
    assert NOISY in report.verdicts


def test_flat_loss():
    loss = [2.3026, 2.3025, 2.3024, 2.3024, 2.3023]
    report = overfitting_report(_history(loss=loss, val_loss=loss), verbose=False)
    assert FLAT in report.verdicts


def test_rising_or_nan_loss():
    rising = [1.0, 1.5, 3.0, 8.0]
    report = overfitting_report(_history(loss=rising, val_loss=rising), verbose=False)
    assert report.verdict == DIVERGING
    nan = [1.0, 0.9, float("nan")]
    report = overfitting_report(_history(loss=nan, val_loss=[1.0, 0.9, 0.8]),
                                verbose=False)
    assert report.verdict == DIVERGING


def test_healthy_run():
    loss = [1.0, 0.5, 0.3, 0.2, 0.15]
    val = [1.02, 0.52, 0.32, 0.22, 0.17]
    acc = [0.6, 0.8, 0.9, 0.95, 0.97]
    report = overfitting_report(
        {"loss": loss, "val_loss": val, "acc": acc, "val_acc": acc},
        verbose=False)
    assert report.verdicts == [HEALTHY]
    assert "verdict" in str(report)
    assert report.to_dict()["epochs"] == 5


def test_real_fit_history():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [0.0]], "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    history = model.fit(x, y, validation_split=0.25, epochs=3, verbose=0)
    report = overfitting_report(history, verbose=False)
    assert report.loss == pytest.approx(history.history["loss"])
    assert report.epochs == 3


def test_bad_input():
    with pytest.raises(ValueError, match="validation_data"):
        overfitting_report(_history(loss=[1.0, 0.5]))
    with pytest.raises(ValueError, match="history"):
        overfitting_report([1.0, 0.5])
    with pytest.raises(ValueError, match="gap_threshold"):
        overfitting_report(_history(loss=[1.0], val_loss=[1.0]), gap_threshold=-1)


# Each threshold at a non-default value flips the verdict of a history the
# defaults call otherwise. The numbers in the comments are worked by hand.
_THRESHOLD_CASES = {
    # gap = val - loss = [0, .02, .04, .04, .04]; at the end relative gap
    # .04 / .50 = 0.08 (<= 0.1, > 0.05), grown by .04 from its minimum 0
    # (> 0.5 * 0.05 * 0.50 = .0125).
    "gap_threshold": (
        {"loss": [1.0, 0.8, 0.6, 0.5, 0.46],
         "val_loss": [1.0, 0.82, 0.64, 0.54, 0.50]},
        0.05, [HEALTHY], [OVERFITTING],
    ),
    # Loss up 3% (above 1% of its start, not above 5%): rising at 1%;
    # at 5% the relative change |-0.03| < 0.05 is flat.
    "flat_threshold": (
        {"loss": [1.0, 1.01, 1.02, 1.03], "val_loss": [1.0, 1.01, 1.02, 1.03]},
        0.05, [DIVERGING], [FLAT],
    ),
    # Steps -.3, +.05, -.25, -.1: the loss rises in 1 of 4 epochs (0.25,
    # not above 0.3, above 0.2); relative gap .02 / .42 < 0.1, not growing.
    "noise_threshold": (
        {"loss": [1.0, 0.7, 0.75, 0.5, 0.4],
         "val_loss": [1.02, 0.72, 0.77, 0.52, 0.42]},
        0.2, [HEALTHY], [NOISY],
    ),
    # Close curves (relative gap .01 / .46) ending at accuracy .85 / .84:
    # not poor below 0.8, poor below 0.9.
    "poor_accuracy": (
        {"loss": [1.0, 0.7, 0.5, 0.45], "val_loss": [1.01, 0.71, 0.51, 0.46],
         "accuracy": [0.5, 0.7, 0.8, 0.85],
         "val_accuracy": [0.5, 0.69, 0.79, 0.84]},
        0.9, [HEALTHY], [UNDERFITTING],
    ),
}


@pytest.mark.parametrize("argument", sorted(_THRESHOLD_CASES))
def test_each_threshold_flips_the_verdict(argument):
    logs, value, default_verdicts, verdicts = _THRESHOLD_CASES[argument]
    default = overfitting_report(_history(**logs), verbose=False)
    assert default.verdicts == default_verdicts
    report = overfitting_report(_history(**logs), verbose=False,
                                **{argument: value})
    assert report.verdicts == verdicts
    assert report.gap == pytest.approx(
        [v - t for t, v in zip(logs["loss"], logs["val_loss"], strict=True)])


def test_gap_threshold_above_the_gap_clears_overfitting():
    # The first test's run: relative gap at the end (0.9 - 0.04) / 0.9 = 0.956.
    loss = [1.0, 0.6, 0.4, 0.25, 0.15, 0.1, 0.06, 0.04]
    val = [1.0, 0.7, 0.6, 0.6, 0.65, 0.7, 0.8, 0.9]
    assert overfitting_report(_history(loss=loss, val_loss=val), verbose=False,
                              gap_threshold=0.95).verdict == OVERFITTING
    assert overfitting_report(_history(loss=loss, val_loss=val), verbose=False,
                              gap_threshold=0.96).verdicts == [HEALTHY]
