"""Reading a training history the way the cs231n notes babysit a run."""

import keras
import numpy as np

from kerasreg import _checks

OVERFITTING = "overfitting: more regularization (L2, dropout) or more data"
UNDERFITTING = "underfitting: bigger model"
NOISY = "loss noisy: batch size may be small"
FLAT = "loss flat: learning rate may be too low"
DIVERGING = "loss rising or NaN: learning rate too high"
HEALTHY = "no problem seen: train and validation curves look healthy"


class OverfittingReport:
    """What `overfitting_report` found.

    Attributes:
        epochs: Number of epochs in the history.
        loss, val_loss: Lists of floats, per epoch.
        gap: List of floats, `val_loss - loss` per epoch.
        accuracy_name: The accuracy-like metric used (e.g. `"accuracy"`), or
            `None`.
        accuracy_gap: List of floats, train minus validation accuracy per
            epoch, or `None`.
        verdicts: List of strings, the diagnoses (at least one).
    """

    def __init__(self, loss, val_loss, accuracy_name, accuracy, val_accuracy,
                 verdicts):
        self.loss = list(loss)
        self.val_loss = list(val_loss)
        self.epochs = len(self.loss)
        self.gap = [v - t for t, v in zip(self.loss, self.val_loss)]
        self.accuracy_name = accuracy_name
        self.accuracy = None if accuracy is None else list(accuracy)
        self.val_accuracy = None if val_accuracy is None else list(val_accuracy)
        self.accuracy_gap = (
            None
            if accuracy is None
            else [t - v for t, v in zip(self.accuracy, self.val_accuracy)]
        )
        self.verdicts = list(verdicts)

    @property
    def verdict(self):
        """The first (most important) diagnosis."""
        return self.verdicts[0]

    def to_dict(self):
        return {
            "epochs": self.epochs,
            "loss": self.loss,
            "val_loss": self.val_loss,
            "gap": self.gap,
            "accuracy_name": self.accuracy_name,
            "accuracy_gap": self.accuracy_gap,
            "verdicts": self.verdicts,
        }

    def __str__(self):
        head = ["epoch", "loss", "val_loss", "gap"]
        if self.accuracy_gap is not None:
            head += [self.accuracy_name, "val_" + self.accuracy_name, "acc_gap"]
        rows = [head]
        for i in range(self.epochs):
            row = [str(i + 1)] + [
                f"{v:.4g}" for v in (self.loss[i], self.val_loss[i], self.gap[i])
            ]
            if self.accuracy_gap is not None:
                row += [
                    f"{v:.4g}"
                    for v in (
                        self.accuracy[i],
                        self.val_accuracy[i],
                        self.accuracy_gap[i],
                    )
                ]
            rows.append(row)
        widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        lines.append("verdict: " + "; ".join(self.verdicts))
        return "\n".join(lines)

    def __repr__(self):
        return str(self)


def _slope(values):
    values = np.asarray(values, dtype="float64")
    if len(values) < 2:
        return 0.0
    t = np.arange(len(values), dtype="float64")
    return float(np.polyfit(t, values, 1)[0])


def overfitting_report(
    history,
    gap_threshold=0.1,
    flat_threshold=0.01,
    noise_threshold=0.3,
    poor_accuracy=0.8,
    verbose=True,
):
    """Diagnoses a training run from its train and validation curves.

    Follows the cs231n notes on babysitting the learning process: the gap
    between training and validation measures overfitting; validation
    tracking training closely while both stay poor means the model is too
    small; the shape of the loss curve tells about the learning rate and the
    batch size. The verdicts, in order of urgency:

    - loss rising or NaN: "learning rate too high";
    - loss flat (relative drop below `flat_threshold`): "learning rate may
      be too low";
    - loss noisy (it goes up in more than `noise_threshold` of the epochs):
      "batch size may be small";
    - relative gap `(val_loss - loss) / val_loss` above `gap_threshold` at
      the end and grown from its smallest value by half that much: "overfitting: more
      regularization (L2, dropout) or more data";
    - curves close and accuracy (when recorded) below `poor_accuracy` on
      both: "underfitting: bigger model".

    Args:
        history: A `keras.callbacks.History` (what `model.fit` returns) or its
            `.history` dict. It must hold `val_loss`: pass `validation_data`
            (or `validation_split`) to `fit`.
        gap_threshold: Float between 0 and 1. Relative train/validation loss
            gap counted as large. Defaults to `0.1`.
        flat_threshold: Float between 0 and 1. Relative drop of the training
            loss below which it counts as flat. Defaults to `0.01`.
        noise_threshold: Float between 0 and 1. Fraction of epochs where the
            training loss rises above which it counts as noisy. Defaults to
            `0.3`.
        poor_accuracy: Float between 0 and 1. Accuracy below which both
            curves count as poor. Defaults to `0.8`.
        verbose: Boolean. Whether to print the report. Defaults to `True`.

    Returns:
        An `OverfittingReport` (`.gap`, `.verdicts`, `.verdict`,
        `.to_dict()`), also printed when `verbose`.

    Example:

    ```python
    import keras
    from kerasreg.diagnostics import overfitting_report

    history = keras.callbacks.History()
    history.history = {
        "loss": [1.0, 0.5, 0.3, 0.2, 0.1, 0.05],
        "val_loss": [1.0, 0.6, 0.55, 0.6, 0.7, 0.8],
    }
    report = overfitting_report(history)
    assert report.verdict.startswith("overfitting")
    ```
    """
    if isinstance(history, keras.callbacks.History):
        logs = history.history
    elif isinstance(history, dict):
        logs = history
    else:
        raise ValueError(
            "Invalid value received for argument `history`. Expected a "
            "`keras.callbacks.History` or its `.history` dict. "
            f"Received: history={history!r}"
        )
    if "loss" not in logs or not len(logs["loss"]):
        raise ValueError(
            "Invalid value received for argument `history`. Expected a "
            "training history with a `loss` entry. "
            f"Received: keys={sorted(logs)}"
        )
    if "val_loss" not in logs:
        raise ValueError(
            "Invalid value received for argument `history`. Expected "
            "validation metrics (`val_loss`): pass `validation_data` (or "
            "`validation_split`) to `model.fit`. "
            f"Received: keys={sorted(logs)}"
        )
    _checks.positive_float("gap_threshold", gap_threshold)
    _checks.float_between("flat_threshold", flat_threshold, 0, 1)
    _checks.float_between("noise_threshold", noise_threshold, 0, 1)
    _checks.float_between("poor_accuracy", poor_accuracy, 0, 1, closed=(False, True))
    verbose = _checks.verbose(verbose, (0, 1))

    loss = [float(v) for v in logs["loss"]]
    val_loss = [float(v) for v in logs["val_loss"]][: len(loss)]
    loss = loss[: len(val_loss)]
    accuracy_name = None
    for key in logs:
        if "acc" in key and not key.startswith("val_") and "val_" + key in logs:
            accuracy_name = key
            break
    accuracy = val_accuracy = None
    if accuracy_name is not None:
        accuracy = [float(v) for v in logs[accuracy_name]][: len(loss)]
        val_accuracy = [float(v) for v in logs["val_" + accuracy_name]][
            : len(loss)
        ]

    verdicts = []
    arr = np.asarray(loss)
    n = len(arr)
    if not np.all(np.isfinite(arr)) or not np.all(np.isfinite(val_loss)):
        verdicts.append(DIVERGING)
    elif n >= 2:
        steps = np.diff(arr)
        drop = (arr[0] - arr[-1]) / max(abs(arr[0]), 1e-12)
        ups = float(np.mean(steps > 0))
        if arr[-1] > arr[0] * (1 + flat_threshold) and _slope(arr) > 0:
            verdicts.append(DIVERGING)
        elif abs(drop) < flat_threshold:
            verdicts.append(FLAT)
        elif ups > noise_threshold:
            verdicts.append(NOISY)

    if DIVERGING not in verdicts:
        gap = np.asarray(val_loss) - arr
        rel_gap = gap / np.maximum(np.abs(val_loss), 1e-12)
        # Growing: the gap rose from its smallest value by a sizable amount.
        growth = gap[-1] - np.min(gap)
        growing = n >= 2 and growth > 0.5 * gap_threshold * abs(val_loss[-1])
        if rel_gap[-1] > gap_threshold and growing:
            verdicts.insert(0, OVERFITTING)
        elif (
            accuracy is not None
            and abs(rel_gap[-1]) <= gap_threshold
            and accuracy[-1] < poor_accuracy
            and val_accuracy[-1] < poor_accuracy
        ):
            verdicts.append(UNDERFITTING)
    if not verdicts:
        verdicts.append(HEALTHY)

    report = OverfittingReport(
        loss, val_loss, accuracy_name, accuracy, val_accuracy, verdicts
    )
    if verbose:
        print(report)
    return report
