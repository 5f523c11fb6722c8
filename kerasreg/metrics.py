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

import types

import keras
import numpy as np
from keras import ops

from kerasreg import _checks
from kerasreg._registry import register

_EPS = 1e-12

# Each measure is written once below, against the few `keras.ops` functions
# it needs (`xp`): the Keras metrics run it on `keras.ops` inside the compiled
# step, the numpy functions on this namespace of numpy equivalents, in
# float64 on every backend (JAX without x64 would compute `keras.ops` in
# float32) and without tensor conversions.
_numpy_ops = types.SimpleNamespace(
    abs=np.abs,
    argmax=np.argmax,
    cast=lambda x, dtype: np.asarray(x).astype(dtype),
    ceil=np.ceil,
    clip=np.clip,
    concatenate=np.concatenate,
    divide_no_nan=lambda x, y: x / y if y != 0 else np.zeros_like(x),
    equal=np.equal,
    expand_dims=np.expand_dims,
    max=np.max,
    one_hot=lambda x, num_classes, dtype=None: np.eye(
        num_classes, dtype=dtype
    )[x],
    ones_like=np.ones_like,
    reshape=np.reshape,
    segment_sum=lambda data, segment_ids, num_segments: np.bincount(
        segment_ids, weights=data, minlength=num_segments
    ),
    square=np.square,
    sum=np.sum,
)


def _rows(probs, xp):
    """Probabilities `(..., classes)` -> rows `(M, classes)`.

    One column (shape `(N,)` or `(N, 1)`) is the probability of class 1 of a
    binary problem: it becomes the two columns `[1 - p, p]`.
    """
    if len(probs.shape) == 1:
        probs = xp.expand_dims(probs, -1)
    if probs.shape[-1] == 1:
        probs = xp.concatenate([1.0 - probs, probs], axis=-1)
    return xp.reshape(probs, (-1, probs.shape[-1]))


def _labels(y_true, classes, xp):
    """Class labels `(M,)` from integer labels or one-hot rows `(..., classes)`.

    The labels keep the dtype of `y_true` (argmax indices for one-hot rows).
    """
    if len(y_true.shape) >= 2 and y_true.shape[-1] == classes and classes > 1:
        return xp.argmax(xp.reshape(y_true, (-1, classes)), axis=-1)
    return xp.reshape(y_true, (-1,))


def _bin_sums(labels, probs, n_bins, xp, weight=None):
    """Confidences and the per-bin sums the expected calibration error needs.

    Bin `b` holds the confidences (top probabilities) in
    `(b / n_bins, (b + 1) / n_bins]`; the first bin also holds 0. Returns
    `(confidence, counts, confidence_sums, correct_sums)`, the sums weighted
    by `weight` (one per row, default 1).
    """
    confidence = xp.max(probs, axis=-1)
    predicted = xp.cast(xp.argmax(probs, axis=-1), "int32")
    correct = xp.cast(
        xp.equal(predicted, xp.cast(labels, "int32")), probs.dtype
    )
    ones = xp.ones_like(confidence)
    weight = ones if weight is None else weight * ones
    bins = xp.cast(xp.ceil(confidence * n_bins), "int32") - 1
    bins = xp.clip(bins, 0, n_bins - 1)
    return (
        confidence,
        xp.segment_sum(weight, bins, num_segments=n_bins),
        xp.segment_sum(weight * confidence, bins, num_segments=n_bins),
        xp.segment_sum(weight * correct, bins, num_segments=n_bins),
    )


def _ece(counts, confidence_sums, correct_sums, xp):
    """`sum_b |correct_b - confidence_b| / N` (0 for no rows)."""
    gap = xp.sum(xp.abs(correct_sums - confidence_sums))
    return xp.divide_no_nan(gap, xp.sum(counts))


def _brier_rows(labels, probs, xp):
    """Per-row Brier score `sum_c (p[c] - onehot(y)[c]) ** 2`."""
    onehot = xp.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
    return xp.sum(xp.square(probs - onehot), axis=-1)


def probability_rows(probs):
    """Predicted probabilities as a float64 numpy array `(N, classes)`.

    For kerasreg's modules: one column (shape `(N,)` or `(N, 1)`) is the
    probability of class 1 and becomes `[1 - p, p]`.

    Args:
        probs: Array of shape `(N, classes)`, `(N,)` or `(N, 1)`.

    Returns:
        A float64 numpy array of shape `(N, classes)`, `classes >= 2`.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim not in (1, 2):
        raise ValueError(
            "Invalid value received for argument `probs`. Expected an array "
            "of shape (N, classes). Received: probs.shape="
            f"{probs.shape}"
        )
    return _rows(probs, _numpy_ops)


def class_labels(y_true, outputs, name="y_true"):
    """Checked int64 labels `(N,)` from integer labels or one-hot rows.

    For kerasreg's modules: `y_true` holds integer labels (integer-valued
    floats accepted) or one-hot rows of `outputs.shape[1]` columns, one per
    row of `outputs`, each in `[0, classes - 1]`.

    Args:
        y_true: Array of labels, shape `(N,)`, `(N, 1)` or `(N, classes)`.
        outputs: Array of shape `(N, classes)` the labels go with
            (probabilities from `probability_rows`, or logits).
        name: String, the argument name used in error messages. Defaults to
            `"y_true"`.

    Returns:
        An int64 numpy array of shape `(N,)`.
    """
    y_true = np.asarray(y_true)
    n, classes = outputs.shape
    labels = _labels(y_true, classes, _numpy_ops)
    kind = labels.dtype.kind
    if kind not in "iub" and not (
        kind == "f" and np.all(labels == np.round(labels))
    ):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected integer "
            "class labels or one-hot rows. Received: "
            f"{name} of shape {y_true.shape} and dtype {y_true.dtype}"
            + (" with non-integer values" if kind == "f" else "")
        )
    labels = labels.astype(np.int64)
    if labels.shape[0] != n:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected one "
            f"label per row of the predictions ({n} rows). Received: {name} "
            f"of shape {y_true.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected labels "
            f"in [0, {classes - 1}] ({classes} classes). Received: {name} "
            f"with labels from {labels.min()} to {labels.max()}"
        )
    return labels


def labels_and_probabilities(y_true, probs):
    """Checked labels and probability rows, in numpy, for the measures.

    For kerasreg's modules: `class_labels` of `y_true` against the
    `probability_rows` of `probs`.

    Args:
        y_true: Integer labels of shape `(N,)` or one-hot rows `(N, classes)`.
        probs: Predicted probabilities of shape `(N, classes)`, `(N,)` or
            `(N, 1)`.

    Returns:
        A tuple `(labels, probs)`: int64 labels of shape `(N,)` and float64
        probabilities of shape `(N, classes)`, `classes >= 2`.

    Example:

    ```python
    >>> labels, probs = labels_and_probabilities([[0, 1], [1, 0]], [0.8, 0.3])
    >>> labels.tolist(), probs.shape
    ([1, 0], (2, 2))

    ```
    """
    probs = probability_rows(probs)
    return class_labels(y_true, probs), probs


def calibration_bins(y_true, probs, n_bins=15):
    """Per-bin counts and sums of `expected_calibration_error`, in numpy.

    For kerasreg's modules (reliability diagrams). Bins as in
    `expected_calibration_error`.

    Args:
        y_true: Integer labels of shape `(N,)` or one-hot rows `(N, classes)`.
        probs: Predicted probabilities of shape `(N, classes)`.
        n_bins: Positive integer, the number of confidence bins. Defaults to
            `15`.

    Returns:
        A tuple of float64 numpy arrays `(confidence, counts,
        confidence_sums, correct_sums)`: the `N` confidences, and per bin the
        number of rows, their summed confidence and their number of correct
        answers.
    """
    n_bins = _check_n_bins(n_bins)
    labels, probs = labels_and_probabilities(y_true, probs)
    return _bin_sums(labels, probs, n_bins, _numpy_ops)


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
    labels, probs = labels_and_probabilities(y_true, probs)
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
    labels, probs = labels_and_probabilities(y_true, probs)
    return float(np.mean(_brier_rows(labels, probs, _numpy_ops)))


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
    _, counts, confidence_sums, correct_sums = calibration_bins(
        y_true, probs, n_bins
    )
    return float(_ece(counts, confidence_sums, correct_sums, _numpy_ops))


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
    m, n = member_probs.shape[:2]
    preds = _rows(member_probs, _numpy_ops).argmax(axis=-1).reshape(m, n)
    if m < 2 or n == 0:
        return 0.0
    total = 0.0
    for i in range(m):
        for j in range(i + 1, m):
            total += np.mean(preds[i] != preds[j])
    return float(total / (m * (m - 1) / 2))


def _check_n_bins(n_bins):
    _checks.int_at_least("n_bins", n_bins, 1)
    return int(n_bins)


def _labels_and_rows_tensors(y_true, y_pred):
    """`_labels` and `_rows` on tensors, for the Keras metrics (unchecked)."""
    probs = _rows(ops.convert_to_tensor(y_pred), ops)
    labels = _labels(ops.convert_to_tensor(y_true), probs.shape[-1], ops)
    return ops.cast(labels, "int32"), probs


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
        labels, probs = _labels_and_rows_tensors(y_true, y_pred)
        probs = ops.cast(probs, self.dtype)
        if sample_weight is not None:
            sample_weight = ops.reshape(
                ops.cast(sample_weight, self.dtype), (-1,)
            )
        _, counts, confidence_sums, correct_sums = _bin_sums(
            labels, probs, self.n_bins, ops, weight=sample_weight
        )
        self.counts.assign_add(counts)
        self.confidence_sums.assign_add(confidence_sums)
        self.correct_sums.assign_add(correct_sums)

    def result(self):
        return _ece(self.counts, self.confidence_sums, self.correct_sums, ops)

    def reset_state(self):
        for v in (self.counts, self.confidence_sums, self.correct_sums):
            v.assign(ops.zeros(v.shape, dtype=v.dtype))

    def get_config(self):
        return {"n_bins": self.n_bins, "name": self.name, "dtype": self.dtype}


def _brier_per_row(y_true, y_pred):
    labels, probs = _labels_and_rows_tensors(y_true, y_pred)
    return _brier_rows(labels, probs, ops)


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
