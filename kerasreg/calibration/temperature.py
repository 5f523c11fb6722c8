"""Temperature scaling: one scalar that calibrates a trained classifier.

Guo et al. (2017), "On Calibration of Modern Neural Networks": dividing the
logits by a single temperature `T > 0`, fitted by minimizing the negative
log-likelihood on a held-out validation set, removes most of a network's
over-confidence without changing any prediction (the argmax is unchanged).
Ashukha et al. (2020) recommend comparing ensembles and other uncertainty
methods by their NLL after this scaling.

The fit is done once, in numpy, on the model's outputs for the validation
set: with `z` the logits (or the log-probabilities, for a model that ends in
a softmax: `softmax(log p / T)` rescales the same way) and `b = 1 / T`, the
NLL `mean(logsumexp(b * z) - b * z_y)` is convex in `b` (its second
derivative is the mean variance of `z` under `softmax(b * z)`), so a
bracketed Newton iteration finds its minimum to machine precision.

The log of a softmax's probabilities is its logits less a per-row constant,
to the precision of the dtype, however small the probabilities: they are
not clipped at an arbitrary epsilon (which would change the temperature of
an over-confident model), only at the smallest positive normal float of
their dtype, below which the backends flush a softmax's result to zero.
"""

import math
import warnings

import keras
import numpy as np
from keras import ops

from kerasreg import _checks
from kerasreg import metrics as _metrics
from kerasreg._masks import carry_mask
from kerasreg._registry import register
from kerasreg._wrapper import ModelWrapper

# The smallest positive normal float of each dtype: probabilities are
# clipped at their dtype's before the log. Smaller ones come out of the
# backends' softmax and sigmoid as 0 (subnormals are flushed to zero on
# CPU), so this clips only the exact zeros of an underflow.
_SMALLEST_NORMAL = {
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
    "float32": 2.0**-126,
    "float64": 2.0**-1022,
}
# The temperature is searched in [T_MIN, T_MAX].
T_MIN = 1e-2
T_MAX = 1e2
# A softmax's rows sum to 1 within this (bfloat16 reaches ~4e-3).
_SUM_TOL = 1e-2


def _probability_floor(dtype):
    """The smallest positive normal float of `dtype` (float64's for a dtype
    that is not a float: integers, Python lists)."""
    try:
        dtype = keras.backend.standardize_dtype(dtype)
    except (TypeError, ValueError):
        dtype = "float64"
    return _SMALLEST_NORMAL.get(dtype, _SMALLEST_NORMAL["float64"])


def _as_logits(outputs, from_logits):
    """Outputs (N, C) -> logits-like scores (N, C'), C' >= 2, float64.

    One column is a binary problem: probabilities `p` give
    `[log(1 - p), log p]`, logits `z` give `[0, z]`. Probabilities are
    clipped at the smallest positive normal float of their dtype
    (`_probability_floor`) before the log.
    """
    floor = _probability_floor(getattr(outputs, "dtype", "float64"))
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.shape[1] == 1:
        if from_logits:
            return np.concatenate([np.zeros_like(out), out], axis=1)
        out = np.concatenate([1.0 - out, out], axis=1)
    elif from_logits:
        return out
    return np.log(np.clip(out, floor, 1.0))


def _check_outputs(outputs, from_logits, x_name):
    """Raises unless `outputs` are finite (N, classes) probabilities
    (logits with `from_logits=True`) of at least one row."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise ValueError(
            f"Invalid value received for argument `{x_name}`. Expected model "
            "outputs of shape (N, classes). Received: outputs of shape "
            f"{out.shape}"
        )
    if out.shape[0] == 0:
        raise ValueError(
            f"Invalid value received for argument `{x_name}`. Expected a "
            "non-empty validation set. Received: 0 rows"
        )
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"Invalid value received for argument `{x_name}`. Expected finite "
            "model outputs. Received: outputs with NaN or infinite values"
        )
    negative = bool(np.any(out < -1e-6))
    if out.shape[1] == 1:
        looks_like_probs = not negative and not np.any(out > 1 + 1e-6)
        what = "values outside [0, 1]"
    else:
        sums = out.sum(axis=1)
        worst = sums[np.argmax(np.abs(sums - 1.0))]
        looks_like_probs = not negative and abs(worst - 1.0) <= _SUM_TOL
        what = "negative values" if negative else f"rows summing to {worst:.4g}"
    if not from_logits and not looks_like_probs:
        raise ValueError(
            "Invalid value received for argument `from_logits`. The model "
            f"outputs {what}: it looks like logits, so pass "
            "`from_logits=True` (or end the model with a softmax). Received: "
            "from_logits=False"
        )
    if from_logits and looks_like_probs and out.shape[1] > 1:
        raise ValueError(
            "Invalid value received for argument `from_logits`. The model "
            "outputs probabilities (non-negative rows summing to 1), not "
            "logits, so pass `from_logits=False`. Received: from_logits=True"
        )
    return out


def _check_labels(y_true, z, y_name):
    labels = _metrics.class_labels(y_true, z, name=y_name)
    if np.unique(labels).size < 2:
        raise ValueError(
            f"Invalid value received for argument `{y_name}`. Expected labels "
            "of at least two classes: with one class the NLL keeps falling "
            "as the temperature goes to 0. Received: "
            f"{y_name} with only class {labels[0]}"
        )
    return labels


def _nll_grad_hess(beta, z, labels):
    """NLL of softmax(beta * z) and its first two derivatives in beta."""
    s = beta * z
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    total = e.sum(axis=1, keepdims=True)
    p = e / total
    rows = np.arange(len(labels))
    nll = np.mean(np.log(total[:, 0]) - s[rows, labels])
    mean_z = np.sum(p * z, axis=1)
    grad = np.mean(mean_z - z[rows, labels])
    hess = np.mean(np.sum(p * z * z, axis=1) - mean_z**2)
    return nll, grad, hess


def _minimize(z, labels, tol=1e-12, max_iter=200):
    """`T` in [T_MIN, T_MAX] minimizing the NLL of softmax(z / T)."""
    z = z - z.max(axis=1, keepdims=True)
    lo, hi = 1.0 / T_MAX, 1.0 / T_MIN
    if _nll_grad_hess(lo, z, labels)[1] >= 0:
        return T_MAX, True
    if _nll_grad_hess(hi, z, labels)[1] <= 0:
        return T_MIN, True
    beta = 1.0
    for _ in range(max_iter):
        _, grad, hess = _nll_grad_hess(beta, z, labels)
        if grad > 0:
            hi = beta
        else:
            lo = beta
        step = beta - grad / hess if hess > 0 else math.nan
        if not lo < step < hi:
            step = math.sqrt(lo * hi)  # bisection, in log scale
        if abs(step - beta) <= tol * beta or hi - lo <= tol * lo:
            beta = step
            break
        beta = step
    return 1.0 / beta, False


def optimal_temperature(y_true, y_pred, from_logits=False):
    """The temperature minimizing the NLL of `softmax(log y_pred / T)`.

    Args:
        y_true: Integer labels of shape `(N,)` or one-hot rows
            `(N, classes)`, of at least two classes.
        y_pred: Predicted probabilities of shape `(N, classes)` (or `(N,)` /
            `(N, 1)` for the probability of class 1), or logits with
            `from_logits=True`.
        from_logits: Boolean, whether `y_pred` holds logits. Defaults to
            `False`.

    Returns:
        A float `T` in `[0.01, 100]` (found to a relative precision of about
        `1e-12`; a warning says when it is at a bound). `T > 1` softens
        over-confident predictions, `T < 1` sharpens under-confident ones.

    Example:

    ```python
    >>> import numpy as np
    >>> p = np.array([[0.99, 0.01], [0.99, 0.01], [0.01, 0.99], [0.99, 0.01]])
    >>> t = optimal_temperature([0, 0, 1, 1], p)  # one confident mistake
    >>> t > 1
    True

    ```
    """
    return _fit(y_true, y_pred, from_logits, "y_true", "y_pred")


def _fit(y_true, y_pred, from_logits, y_name, x_name):
    from_logits = _checks.boolean("from_logits", from_logits)
    _check_outputs(y_pred, from_logits, x_name)
    z = _as_logits(y_pred, from_logits)
    labels = _check_labels(y_true, z, y_name)
    temperature, at_bound = _minimize(z, labels)
    if at_bound:
        why = (
            "the predictions are no better than chance on it"
            if temperature == T_MAX
            else "the model makes no mistake on it"
        )
        warnings.warn(
            "The NLL-optimal temperature is at the bound of the search, "
            f"T={temperature:g} (searched in [{T_MIN:g}, {T_MAX:g}]): the "
            f"validation set is perhaps too small, or {why}.",
            stacklevel=3,
        )
    return float(temperature)


def apply_temperature(y_pred, temperature, from_logits=False):
    """Numpy `softmax(log y_pred / T)` (or `softmax(y_pred / T)` for logits).

    Args:
        y_pred: Probabilities of shape `(N, classes)` (one column: the
            probability of class 1), or logits with `from_logits=True`.
        temperature: Float > 0.
        from_logits: Boolean, whether `y_pred` holds logits. Defaults to
            `False`.

    Returns:
        A float64 numpy array of the shape of `y_pred`.

    Example:

    ```python
    >>> apply_temperature([[0.8, 0.2]], 2.0).round(4)
    array([[0.6667, 0.3333]])

    ```
    """
    temperature = _checks.positive_float("temperature", temperature)
    from_logits = _checks.boolean("from_logits", from_logits)
    out = np.asarray(y_pred)
    z = _as_logits(out, from_logits) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    if out.ndim == 1:
        return p[:, 1]
    if out.shape[-1] == 1:
        return p[:, 1:]
    return p


def _rows(x):
    """Number of rows of array-like inputs (or of their first array)."""
    first = keras.tree.flatten(x)[0] if not hasattr(x, "shape") else x
    shape = getattr(first, "shape", None)
    if shape is not None and len(shape) > 0:
        return shape[0]
    try:
        return len(first)
    except TypeError:
        return None


@register
class TemperatureScaling(ModelWrapper, keras.Model):
    """A classifier whose outputs are divided by a temperature.

    Outputs `softmax(log p / T)` where `p` are the wrapped model's
    probabilities (`softmax(z / T)` for a model that outputs logits `z`,
    `from_logits=True`; `sigmoid(logit / T)` for one output column). The
    argmax, hence the accuracy, is unchanged; `T > 1` softens the
    probabilities. Build it with `fit_temperature`, which fits `T` on a
    validation set (Guo et al., 2017).

    `log p` is exact to the dtype's precision: `p` is clipped only at the
    smallest positive normal float of its dtype (a softmax's underflow to
    0), as `fit_temperature` does. The model's Keras mask
    (`Embedding(mask_zero=True)`, `Masking`) stays on the output.

    The temperature is a non-trainable variable of the model, so it is
    saved with it (`.keras` files keep the wrapped model too).

    Args:
        model: A Keras classifier: any `keras.Model` whose outputs are class
            probabilities (a single model, an `Ensemble`, a
            `SnapshotEnsemble`, an `MCDropout`, ...), or logits with
            `from_logits=True`.
        temperature: Float > 0. Defaults to `1.0`.
        from_logits: Boolean, whether `model` outputs logits. Defaults to
            `False`.
        name: String, the model name. Defaults to `None`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg.calibration import TemperatureScaling

    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(3, activation="softmax")])
    scaled = TemperatureScaling(model, temperature=2.0)
    x = np.random.rand(8, 4).astype("float32")
    probs = scaled.predict(x, verbose=0)     # softmax(log p / 2)
    scaled.temperature                       # 2.0
    ```
    """

    def __init__(
        self, model, temperature=1.0, from_logits=False, name=None, **kwargs
    ):
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Invalid value received for argument `model`. Expected a "
                f"Keras model. Received: model={model!r}"
            )
        temperature = _checks.positive_float("temperature", temperature)
        from_logits = _checks.boolean("from_logits", from_logits)
        super().__init__(name=name, **kwargs)
        self.model = model
        self.from_logits = from_logits
        self._temperature = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(temperature),
            trainable=False,
            name="temperature",
        )
        if model.built:
            self.built = True

    @property
    def temperature(self):
        """The temperature `T`, as a Python float."""
        return float(ops.convert_to_numpy(self._temperature))

    def build(self, input_shape):
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        out = self.model(inputs, training=False)
        t = ops.cast(self._temperature, out.dtype)
        if self.from_logits:
            z = out
        else:
            # As `fit_temperature`: clipped only at the dtype's smallest
            # positive normal float (`_probability_floor`).
            floor = _probability_floor(out.dtype)
            z = ops.log(ops.clip(out, floor, 1.0))
            if out.shape[-1] == 1:
                z = z - ops.log(ops.clip(1.0 - out, floor, 1.0))
        if out.shape[-1] == 1:
            scaled = ops.sigmoid(z / t)
        else:
            scaled = ops.softmax(z / t, axis=-1)
        # The model's Keras mask (e.g. padded steps), for losses and metrics.
        return carry_mask(scaled, out)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "model": keras.saving.serialize_keras_object(self.model),
            "temperature": self.temperature,
            "from_logits": self.from_logits,
        }
        return {**base_config, **config}



def fit_temperature(
    model, x_val, y_val, from_logits=False, batch_size=None, verbose=0
):
    """Fits a temperature on a validation set; returns the scaled model.

    Runs `model.predict(x_val)` once, then finds in numpy the `T > 0`
    minimizing the validation negative log-likelihood of
    `softmax(log p / T)` (`softmax(z / T)` for logits), Guo et al. (2017).
    Fit on data the model was not trained on: on its training set a network
    looks well calibrated, or even under-confident.

    Args:
        model: A Keras classifier: any `keras.Model` whose `predict` returns
            class probabilities (a single model, an `Ensemble`, a
            `SnapshotEnsemble`, an `MCDropout`, ...), or logits with
            `from_logits=True`.
        x_val: Validation inputs (arrays, as for `predict`).
        y_val: Validation labels: integers of shape `(N,)` or one-hot rows
            `(N, classes)`, of at least two classes.
        from_logits: Boolean, whether `model` outputs logits. Defaults to
            `False`.
        batch_size: Integer, rows per prediction batch. Defaults to `None`.
        verbose: Verbosity of the prediction. Defaults to `0`.

    Returns:
        A `TemperatureScaling` model wrapping `model`; its `temperature`
        property gives `T`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg.calibration import fit_temperature

    x = np.random.rand(200, 8).astype("float32")
    y = (x[:, 0] > 0.5).astype("int32")
    model = keras.Sequential([keras.Input((8,)),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:100], y[:100], epochs=2, verbose=0)
    scaled = fit_temperature(model, x[100:], y[100:])
    print(scaled.temperature)
    probs = scaled.predict(x[100:], verbose=0)
    ```
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a Keras "
            f"model. Received: model={model!r}"
        )
    from_logits = _checks.boolean("from_logits", from_logits)
    if _rows(x_val) == 0:
        raise ValueError(
            "Invalid value received for argument `x_val`. Expected a "
            "non-empty validation set. Received: x_val with 0 rows"
        )
    outputs = model.predict(x_val, batch_size=batch_size, verbose=verbose)
    if isinstance(outputs, (list, tuple, dict)):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a model "
            f"with one output. Received: model='{model.name}' with "
            f"{len(outputs)} outputs"
        )
    temperature = _fit(y_val, outputs, from_logits, "y_val", "x_val")
    return TemperatureScaling(model, temperature, from_logits=from_logits)
