"""Calibration and diversity metrics for classifiers and their ensembles.

The functions take numpy-convertible arrays and return Python floats:
`nll`, `brier`, `expected_calibration_error` score predicted class
probabilities `probs` (shape `(N, classes)`) against labels `y_true` given as
integers (shape `(N,)`) or one-hot rows (shape `(N, classes)`);
`disagreement` measures how often ensemble members pick different classes.
A single column of probabilities (shape `(N,)` or `(N, 1)`) is read as the
probability of class 1 of a binary problem.

`ExpectedCalibrationError` and `BrierScore` are the same measures as
`keras.metrics.Metric` objects, to pass to `compile(metrics=[...])`. (For the
negative log-likelihood use Keras' own
`keras.metrics.SparseCategoricalCrossentropy`.)
"""

import keras
import numpy as np
from keras import ops

from kerasreg import _checks
from kerasreg._registry import register

_EPS = 1e-12


def _as_probs(probs):
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        probs = probs[:, None]
    if probs.ndim != 2:
        raise ValueError(
            "Invalid value received for argument `probs`. Expected an array "
            "of shape (N, classes). Received: probs.shape="
            f"{probs.shape}"
        )
    if probs.shape[1] == 1:
        probs = np.concatenate([1.0 - probs, probs], axis=1)
    return probs


def _as_labels(y_true, probs):
    """Integer labels from int labels or one-hot rows, checked against probs."""
    y_true = np.asarray(y_true)
    n, classes = probs.shape
    if y_true.ndim == 2 and y_true.shape[1] == classes and classes > 1:
        labels = np.argmax(y_true, axis=1)
    else:
        labels = y_true.reshape(-1)
        if labels.dtype.kind == "f":
            if not np.all(labels == np.round(labels)):
                raise ValueError(
                    "Invalid value received for argument `y_true`. Expected "
                    "integer class labels or one-hot rows. Received: "
                    f"y_true with shape {y_true.shape} and non-integer values"
                )
        labels = labels.astype(np.int64)
    if labels.shape[0] != n:
        raise ValueError(
            "Invalid value received for argument `y_true`. Expected one label "
            f"per row of `probs` ({n} rows). Received: y_true.shape="
            f"{y_true.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            "Invalid value received for argument `y_true`. Expected labels in "
            f"[0, {classes - 1}]. Received: labels from {labels.min()} to "
            f"{labels.max()}"
        )
    return labels


def nll(y_true, probs):
    """Mean negative log-likelihood of the true class.

    `-mean(log p[i, y_i])`, with probabilities clipped at `1e-12` so that a
    confident wrong answer costs about 27.6 nats instead of infinity.

    Args:
        y_true: Integer labels of shape `(N,)` or one-hot rows `(N, classes)`.
        probs: Predicted probabilities of shape `(N, classes)`.

    Returns:
        A float.

    Example:

    ```python
    >>> round(nll([0, 1], [[0.5, 0.5], [0.25, 0.75]]), 4)
    0.4904

    ```
    """
    probs = _as_probs(probs)
    labels = _as_labels(y_true, probs)
    p = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(p, _EPS, 1.0))))


def brier(y_true, probs):
    """Multi-class Brier score (Brier, 1950).

    `mean_i sum_c (p[i, c] - onehot(y_i)[c]) ** 2`: 0 for perfect confident
    answers, 2 for confident wrong ones.

    Args:
        y_true: Integer labels of shape `(N,)` or one-hot rows `(N, classes)`.
        probs: Predicted probabilities of shape `(N, classes)`.

    Returns:
        A float.

    Example:

    ```python
    >>> round(brier([0, 1], [[0.5, 0.5], [0.25, 0.75]]), 4)
    0.3125

    ```
    """
    probs = _as_probs(probs)
    labels = _as_labels(y_true, probs)
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def expected_calibration_error(y_true, probs, n_bins=15):
    """Expected calibration error (Guo et al., 2017), L1, uniform bins.

    Rows are put in `n_bins` equal-width bins of confidence (the top
    probability; bin `b` holds confidences in `(b / n_bins, (b + 1) / n_bins]`,
    the first bin also holds 0). The error is
    `sum_b (n_b / N) * |accuracy_b - mean confidence_b|`.

    Args:
        y_true: Integer labels of shape `(N,)` or one-hot rows `(N, classes)`.
        probs: Predicted probabilities of shape `(N, classes)`.
        n_bins: Positive integer, the number of confidence bins. Defaults to
            `15`.

    Returns:
        A float between 0 and 1.

    Example:

    ```python
    >>> y = [0, 0, 1, 1]
    >>> p = [[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]]
    >>> round(expected_calibration_error(y, p, n_bins=10), 4)
    0.1

    ```
    """
    n_bins = _check_n_bins(n_bins)
    probs = _as_probs(probs)
    labels = _as_labels(y_true, probs)
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = _bin_index(confidence, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    return float(np.sum(np.abs(correct_sum - conf_sum)) / counts.sum())


def disagreement(member_probs):
    """Mean pairwise disagreement of ensemble members.

    For every pair of members, the fraction of rows on which their argmax
    classes differ, averaged over the pairs. 0 when all members agree
    everywhere (and for a single member).

    Args:
        member_probs: Array of shape `(members, N, classes)`, e.g.
            `Ensemble.member_predictions(x)`.

    Returns:
        A float between 0 and 1.

    Example:

    ```python
    >>> p = [[[0.9, 0.1], [0.8, 0.2]],
    ...      [[0.9, 0.1], [0.3, 0.7]],
    ...      [[0.2, 0.8], [0.3, 0.7]]]
    >>> round(disagreement(p), 4)
    0.6667

    ```
    """
    member_probs = np.asarray(member_probs, dtype=np.float64)
    if member_probs.ndim == 2:
        member_probs = member_probs[..., None]
    if member_probs.ndim != 3:
        raise ValueError(
            "Invalid value received for argument `member_probs`. Expected an "
            "array of shape (members, N, classes). Received: "
            f"member_probs.shape={member_probs.shape}"
        )
    if member_probs.shape[-1] == 1:
        member_probs = np.concatenate([1.0 - member_probs, member_probs], -1)
    preds = member_probs.argmax(axis=-1)
    m = preds.shape[0]
    if m < 2 or preds.shape[1] == 0:
        return 0.0
    total = 0.0
    for i in range(m):
        for j in range(i + 1, m):
            total += np.mean(preds[i] != preds[j])
    return float(total / (m * (m - 1) / 2))


def _check_n_bins(n_bins):
    _checks.int_at_least("n_bins", n_bins, 1)
    return int(n_bins)


def _bin_index(confidence, n_bins):
    # Bin b holds (b / n_bins, (b + 1) / n_bins]; 0 goes to bin 0.
    idx = np.ceil(confidence * n_bins).astype(np.int64) - 1
    return np.clip(idx, 0, n_bins - 1)


def _labels_and_probs_tensors(y_true, y_pred):
    """Symbolic counterpart of `_as_probs` + `_as_labels` for Keras metrics."""
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) == 1:
        y_pred = ops.expand_dims(y_pred, -1)
    if y_pred.shape[-1] == 1:
        y_pred = ops.concatenate([1.0 - y_pred, y_pred], axis=-1)
    y_pred = ops.reshape(y_pred, (-1, y_pred.shape[-1]))
    classes = y_pred.shape[-1]
    y_true = ops.convert_to_tensor(y_true)
    if (
        len(y_true.shape) >= 2
        and y_true.shape[-1] == classes
        and classes > 1
    ):
        labels = ops.argmax(ops.reshape(y_true, (-1, classes)), axis=-1)
    else:
        labels = ops.reshape(y_true, (-1,))
    return ops.cast(labels, "int32"), y_pred


@register
class ExpectedCalibrationError(keras.metrics.Metric):
    """Expected calibration error as a streaming Keras metric.

    Accumulates, over batches, the number of rows, the summed confidence and
    the number of correct answers in each of `n_bins` uniform confidence bins
    (see `kerasreg.metrics.expected_calibration_error`, which it equals on the
    same data), and reports `sum_b |correct_b - confidence_b| / N`.

    Args:
        n_bins: Positive integer, the number of confidence bins. Defaults to
            `15`.
        name: String, the metric name. Defaults to `"ece"`.
        dtype: Data type of the metric result. Defaults to `None`.

    Example:

    ```python
    >>> m = ExpectedCalibrationError(n_bins=10)
    >>> m.update_state([0, 0, 1, 1],
    ...                [[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    >>> round(float(m.result()), 4)
    0.1

    ```
    """

    def __init__(self, n_bins=15, name="ece", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.n_bins = _check_n_bins(n_bins)
        self.counts = self.add_variable(
            shape=(self.n_bins,), initializer="zeros", name="counts"
        )
        self.confidence_sums = self.add_variable(
            shape=(self.n_bins,), initializer="zeros", name="confidence_sums"
        )
        self.correct_sums = self.add_variable(
            shape=(self.n_bins,), initializer="zeros", name="correct_sums"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, probs = _labels_and_probs_tensors(y_true, y_pred)
        probs = ops.cast(probs, self.dtype)
        confidence = ops.max(probs, axis=-1)
        correct = ops.cast(
            ops.equal(ops.cast(ops.argmax(probs, axis=-1), "int32"), labels),
            self.dtype,
        )
        if sample_weight is None:
            weight = ops.ones_like(confidence)
        else:
            weight = ops.reshape(
                ops.cast(sample_weight, self.dtype), (-1,)
            ) * ops.ones_like(confidence)
        bins = ops.cast(ops.ceil(confidence * self.n_bins), "int32") - 1
        bins = ops.clip(bins, 0, self.n_bins - 1)
        onehot = ops.one_hot(bins, self.n_bins, dtype=self.dtype)
        weighted = onehot * ops.expand_dims(weight, -1)
        self.counts.assign_add(ops.sum(weighted, axis=0))
        self.confidence_sums.assign_add(
            ops.sum(weighted * ops.expand_dims(confidence, -1), axis=0)
        )
        self.correct_sums.assign_add(
            ops.sum(weighted * ops.expand_dims(correct, -1), axis=0)
        )

    def result(self):
        total = ops.sum(self.counts)
        gap = ops.sum(ops.abs(self.correct_sums - self.confidence_sums))
        return ops.divide_no_nan(gap, total)

    def reset_state(self):
        for v in (self.counts, self.confidence_sums, self.correct_sums):
            v.assign(ops.zeros(v.shape, dtype=v.dtype))

    def get_config(self):
        return {"n_bins": self.n_bins, "name": self.name, "dtype": self.dtype}


def _brier_per_row(y_true, y_pred):
    labels, probs = _labels_and_probs_tensors(y_true, y_pred)
    onehot = ops.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
    return ops.sum(ops.square(probs - onehot), axis=-1)


@register
class BrierScore(keras.metrics.MeanMetricWrapper):
    """Multi-class Brier score as a Keras metric (mean over rows).

    Equals `kerasreg.metrics.brier` on the same data. Labels may be integers
    or one-hot rows.

    Args:
        name: String, the metric name. Defaults to `"brier"`.
        dtype: Data type of the metric result. Defaults to `None`.

    Example:

    ```python
    >>> m = BrierScore()
    >>> m.update_state([0, 1], [[0.5, 0.5], [0.25, 0.75]])
    >>> round(float(m.result()), 4)
    0.3125

    ```
    """

    def __init__(self, name="brier", dtype=None):
        super().__init__(fn=_brier_per_row, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
