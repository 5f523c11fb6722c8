import math

import keras
import numpy as np
import pytest

from kerasreg import metrics

Y = np.array([0, 1, 2, 1])
P = np.array(
    [
        [0.7, 0.2, 0.1],  # right, confidence 0.7
        [0.1, 0.8, 0.1],  # right, confidence 0.8
        [0.5, 0.3, 0.2],  # wrong, confidence 0.5
        [0.3, 0.3, 0.4],  # wrong, confidence 0.4
    ]
)


def test_nll_hand_computed():
    expected = -(math.log(0.7) + math.log(0.8) + math.log(0.2) + math.log(0.3)) / 4
    assert metrics.nll(Y, P) == pytest.approx(expected, abs=1e-12)


def test_one_hot_labels_equal_int_labels():
    onehot = np.eye(3)[Y]
    assert metrics.nll(onehot, P) == pytest.approx(metrics.nll(Y, P))
    assert metrics.brier(onehot, P) == pytest.approx(metrics.brier(Y, P))
    assert metrics.expected_calibration_error(onehot, P) == pytest.approx(
        metrics.expected_calibration_error(Y, P)
    )


def test_brier_hand_computed():
    rows = [
        0.3**2 + 0.2**2 + 0.1**2,
        0.1**2 + 0.2**2 + 0.1**2,
        0.5**2 + 0.3**2 + 0.8**2,
        0.3**2 + 0.7**2 + 0.4**2,
    ]
    assert metrics.brier(Y, P) == pytest.approx(sum(rows) / 4, abs=1e-12)


def test_nll_clips_zero_probability():
    assert metrics.nll([1], [[1.0, 0.0]]) == pytest.approx(-math.log(1e-12))


def test_ece_hand_computed_two_bins():
    # Bins (0, 0.5] and (0.5, 1]: {0.5 wrong, 0.4 wrong} and {0.7, 0.8 right}.
    low = abs(0.0 - (0.5 + 0.4)) / 4
    high = abs(2.0 - (0.7 + 0.8)) / 4
    assert metrics.expected_calibration_error(Y, P, n_bins=2) == pytest.approx(
        low + high, abs=1e-12
    )


def test_ece_hand_computed_default_bins():
    # 15 bins of width 1/15: confidences 0.4, 0.5, 0.7, 0.8 fall in four
    # different bins, so each bin holds one row.
    expected = (0.4 + 0.5 + (1 - 0.7) + (1 - 0.8)) / 4
    assert metrics.expected_calibration_error(Y, P) == pytest.approx(expected)


def test_ece_perfectly_calibrated_is_zero():
    y = np.array([0, 0, 0, 1])
    p = np.tile([0.75, 0.25], (4, 1))
    assert metrics.expected_calibration_error(y, p, n_bins=10) == pytest.approx(0)


def test_binary_single_column():
    y = np.array([1, 0])
    p = np.array([0.9, 0.2])
    assert metrics.nll(y, p) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)
    assert metrics.brier(y, p[:, None]) == pytest.approx(
        (2 * 0.1**2 + 2 * 0.2**2) / 2
    )


def test_disagreement_hand_computed():
    # Member argmax: [0, 0, 1], [0, 1, 1], [1, 1, 1].
    member_probs = np.array(
        [
            [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],
            [[0.8, 0.2], [0.3, 0.7], [0.1, 0.9]],
            [[0.4, 0.6], [0.1, 0.9], [0.3, 0.7]],
        ]
    )
    expected = (1 / 3 + 2 / 3 + 1 / 3) / 3
    assert metrics.disagreement(member_probs) == pytest.approx(expected)
    assert metrics.disagreement(member_probs[:1]) == 0.0


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: metrics.expected_calibration_error(Y, P, n_bins=0), "n_bins"),
        (lambda: metrics.expected_calibration_error(Y, P, n_bins=2.5), "n_bins"),
        (lambda: metrics.nll([0, 3, 1, 1], P), "y_true"),
        (lambda: metrics.nll([0, 1], P), "y_true"),
        (lambda: metrics.brier(Y, np.zeros((4, 3, 2))), "probs"),
        (lambda: metrics.disagreement(np.zeros((2, 3, 4, 5))), "member_probs"),
    ],
)
def test_bad_input(call, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        call()


def test_keras_ece_metric_accumulates_like_function():
    m = metrics.ExpectedCalibrationError(n_bins=15)
    m.update_state(Y[:2], P[:2])
    m.update_state(np.eye(3)[Y[2:]], P[2:])
    expected = (0.4 + 0.5 + 0.3 + 0.2) / 4
    assert float(m.result()) == pytest.approx(expected, abs=1e-6)
    m.reset_state()
    assert float(m.result()) == 0.0


def test_keras_ece_metric_sample_weight():
    m = metrics.ExpectedCalibrationError(n_bins=2)
    m.update_state(Y, P, sample_weight=np.array([1.0, 1.0, 2.0, 0.0]))
    # Bin (0, 0.5]: only row 2, weight 2, wrong, confidence 0.5.
    # Bin (0.5, 1]: rows 0, 1, right.  Total weight 4.
    expected = (abs(0 - 2 * 0.5) + abs(2 - (0.7 + 0.8))) / 4
    assert float(m.result()) == pytest.approx(expected, abs=1e-6)


def test_keras_metrics_in_compiled_evaluate():
    w = np.array([[1.0, -1.0, 0.5], [0.2, 0.3, -0.4]], dtype="float32")
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(3, activation="softmax")]
    )
    model.set_weights([w, np.zeros(3, dtype="float32")])
    model.compile(
        loss="sparse_categorical_crossentropy",
        metrics=[metrics.ExpectedCalibrationError(n_bins=5), metrics.BrierScore()],
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2)).astype("float32")
    y = rng.integers(0, 3, size=50)
    logits = x @ w
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    out = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert out["ece"] == pytest.approx(
        metrics.expected_calibration_error(y, probs, n_bins=5), abs=1e-5
    )
    assert out["brier"] == pytest.approx(metrics.brier(y, probs), abs=1e-5)


def test_keras_metric_config_round_trip():
    m = metrics.ExpectedCalibrationError(n_bins=7, name="calib")
    m2 = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
    assert isinstance(m2, metrics.ExpectedCalibrationError)
    assert (m2.n_bins, m2.name) == (7, "calib")
    b = metrics.BrierScore.from_config(metrics.BrierScore(name="b").get_config())
    assert b.name == "b"
    with pytest.raises(ValueError, match="argument `n_bins`"):
        metrics.ExpectedCalibrationError(n_bins=0)


_RNG = np.random.default_rng(3)
_Y6 = np.array([0, 1, 2, 2, 1, 0])
_P6 = _RNG.dirichlet(np.ones(3), size=6)
_B6 = _RNG.uniform(size=6)
_YB6 = np.array([1, 0, 1, 1, 0, 0])


@pytest.mark.parametrize(
    "y, p",
    [
        # int labels, (N, 1) labels, one-hot rows, binary single column.
        (_Y6, _P6),
        (_Y6[:, None], _P6),
        (np.eye(3)[_Y6], _P6),
        (_YB6, _B6),
        (_YB6, _B6[:, None]),
        (np.eye(2)[_YB6], _B6[:, None]),
    ],
)
def test_keras_metrics_equal_functions_on_every_layout(y, p):
    # Hand-computed references on the (N, 2) / (N, 3) form of the data.
    rows = p.reshape(len(p), -1)
    if rows.shape[1] == 1:
        rows = np.concatenate([1 - rows, rows], axis=1)
    labels = y.argmax(1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
    ref_brier = np.mean(np.sum((rows - np.eye(rows.shape[1])[labels]) ** 2, 1))
    conf, pred = rows.max(1), rows.argmax(1)
    bins = np.clip(np.ceil(conf * 4).astype(int) - 1, 0, 3)
    ref_ece = sum(
        abs(np.sum((pred == labels)[bins == b]) - np.sum(conf[bins == b]))
        for b in range(4)
    ) / len(rows)
    assert metrics.brier(y, p) == pytest.approx(ref_brier, abs=1e-12)
    assert metrics.expected_calibration_error(y, p, n_bins=4) == pytest.approx(
        ref_ece, abs=1e-12
    )
    m = metrics.ExpectedCalibrationError(n_bins=4)
    m.update_state(y, p.astype("float32"))
    assert float(m.result()) == pytest.approx(ref_ece, abs=1e-6)
    b = metrics.BrierScore()
    b.update_state(y, p.astype("float32"))
    assert float(b.result()) == pytest.approx(ref_brier, abs=1e-6)


def test_non_numeric_labels_are_rejected():
    with pytest.raises(ValueError, match="argument `y_true`.*dtype"):
        metrics.nll(np.array(["a", "b", "c", "d"]), P)
    with pytest.raises(ValueError, match="argument `y_true`.*non-integer"):
        metrics.brier([0.5, 1, 2, 1], P)


def test_labels_and_probabilities_reads_one_column_and_one_hot_rows():
    labels, probs = metrics.labels_and_probabilities(
        [[0, 1], [1, 0]], [0.8, 0.3]
    )
    assert labels.tolist() == [1, 0]
    np.testing.assert_allclose(probs, [[0.2, 0.8], [0.7, 0.3]])
    with pytest.raises(ValueError, match="y_true"):
        metrics.labels_and_probabilities([0, 2], [[0.5, 0.5], [0.5, 0.5]])
