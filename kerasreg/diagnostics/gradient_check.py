"""Gradient check: backend autodiff against central differences, in float64."""

import math

import keras
import numpy as np

from kerasreg import _backend
from kerasreg import _checks

# The cs231n bands for the relative error |a - n| / max(|a|, |n|).
_WRONG = 1e-2
_SUSPICIOUS = 1e-4
_GOOD = 1e-7

_FLOAT_POLICIES = {
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "mixed_float16",
    "mixed_bfloat16",
}


def _verdict(error):
    if not np.isfinite(error) or error > _WRONG:
        return "wrong"
    if error > _SUSPICIOUS:
        return "suspicious"
    if error >= _GOOD:
        return "ok-with-kinks"
    return "good"


class GradientCheckReport:
    """Result of `gradient_check`.

    Attributes:
        max_relative_error: Float. Largest relative error
            `|a - n| / max(|a|, |n|)` over every checked parameter entry
            (`0` when both are zero).
        verdict: String, from the cs231n bands: `"good"` (< 1e-7),
            `"ok-with-kinks"` (1e-7 to 1e-4: fine for kinked functions such
            as ReLU, too high for tanh/softmax), `"suspicious"` (1e-4 to
            1e-2) or `"wrong"` (> 1e-2, or not finite).
        per_weight: Dict mapping each trainable weight's path to the largest
            relative error over its checked entries.
        checked: Dict mapping each weight's path to the number of entries
            checked (all of them unless `max_params` was set).
        worst: Dict mapping each weight's path to its worst entry:
            `{"index": tuple, "analytic": float, "numeric": float}`.
        h: Float. The finite-difference step used.
    """

    def __init__(self, per_weight, checked, worst, h):
        self.per_weight = dict(per_weight)
        self.checked = dict(checked)
        self.worst = dict(worst)
        self.h = h
        errors = list(self.per_weight.values())
        if any(not np.isfinite(e) for e in errors):
            self.max_relative_error = float("nan")
        else:
            self.max_relative_error = float(max(errors, default=0.0))
        self.verdict = _verdict(self.max_relative_error)

    def __repr__(self):
        return (
            f"<GradientCheckReport verdict={self.verdict!r} "
            f"max_relative_error={self.max_relative_error:.3e}>"
        )

    def __str__(self):
        width = max([len("weight")] + [len(name) for name in self.per_weight])
        lines = [
            f"Gradient check (central differences, h={self.h:g}, float64): "
            f"{self.verdict}, max relative error {self.max_relative_error:.3e}",
            f"{'weight':<{width}}  {'checked':>7}  {'rel. error':>10}  verdict",
        ]
        for name, error in self.per_weight.items():
            lines.append(
                f"{name:<{width}}  {self.checked[name]:>7d}  "
                f"{error:>10.3e}  {_verdict(error)}"
            )
        lines.append(
            "bands: > 1e-2 wrong, 1e-4..1e-2 suspicious, 1e-7..1e-4 ok only "
            "for kinked functions (ReLU), < 1e-7 good"
        )
        return "\n".join(lines)


def _to_float64_config(config):
    """Rewrites every floating dtype policy in a serialized model to float64."""
    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if key == "dtype" and isinstance(value, str) and value in _FLOAT_POLICIES:
                out[key] = "float64"
            elif (
                key == "dtype"
                and isinstance(value, dict)
                and value.get("class_name") == "DTypePolicy"
                and value.get("config", {}).get("name") in _FLOAT_POLICIES
            ):
                out[key] = {**value, "config": {**value["config"], "name": "float64"}}
            else:
                out[key] = _to_float64_config(value)
        return out
    if isinstance(config, list):
        return [_to_float64_config(value) for value in config]
    return config


def _as_float64(data):
    if data is None:
        return None

    def convert(a):
        a = np.asarray(keras.ops.convert_to_numpy(a))
        return a.astype("float64") if np.issubdtype(a.dtype, np.floating) else a

    return keras.tree.map_structure(convert, data)


def _float64_clone(model, x64):
    """A float64 copy of `model` with the same weights (call in float64_scope)."""
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    try:
        clone = keras.saving.deserialize_keras_object(_to_float64_config(config))
    except Exception as error:  # pragma: no cover - depends on user models
        raise ValueError(
            "gradient_check needs to rebuild the model in float64 from its "
            "config; this failed. Register custom layers with "
            "`keras.saving.register_keras_serializable` and give them a "
            f"`get_config`. Original error: {error}"
        ) from error
    if not clone.built:
        clone(x64, training=False)
    weights = model.get_weights()
    clone_weights = clone.get_weights()
    if len(weights) != len(clone_weights) or any(
        np.shape(a) != np.shape(b) for a, b in zip(weights, clone_weights)
    ):
        raise ValueError(
            "gradient_check could not copy the weights into a float64 clone "
            "of the model: its rebuilt weights do not match."
        )
    clone.set_weights(
        [
            np.asarray(w, dtype=np.asarray(c).dtype)
            if np.issubdtype(np.asarray(c).dtype, np.floating)
            else w
            for w, c in zip(weights, clone_weights)
        ]
    )
    return clone


def _float64_loss(loss):
    """Rebuilds a loss so it computes in float64 (call in float64_scope)."""
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        try:
            loss = loss.__class__.from_config(loss.get_config())
        except Exception:  # pragma: no cover - custom losses
            pass
    return loss


def _objective(loss, y):
    """The scalar whose gradient is checked, as a function of `y_pred`."""
    if y is None:
        if loss is None:
            return lambda y_pred: sum(
                0.5 * keras.ops.mean(keras.ops.square(p))
                for p in keras.tree.flatten(y_pred)
            )
        return lambda y_pred: keras.ops.mean(loss(y_pred))
    losses = list(loss) if isinstance(loss, (list, tuple)) else [loss]
    losses = [_float64_loss(fn) for fn in losses]

    def objective(y_pred):
        preds = keras.tree.flatten(y_pred)
        targets = keras.tree.flatten(y)
        if len(losses) == 1 and len(preds) > 1:
            pairs = [(losses[0], t, p) for t, p in zip(targets, preds)]
        else:
            pairs = list(zip(losses, targets, preds))
        return sum(keras.ops.mean(fn(t, p)) for fn, t, p in pairs)

    return objective


def _check_args(h, max_params, seed):
    _checks.positive_float("h", h)
    if max_params is not None:
        _checks.int_at_least("max_params", max_params, 1)
    if not _checks.is_integer(seed):
        raise _checks.invalid("seed", seed, "an integer")


def gradient_check(model, x, y=None, loss=None, h=1e-5, max_params=None, seed=0):
    """Compares backend gradients with central differences, in float64.

    As in the cs231n notes: for each trainable parameter entry `w`, the
    numerical gradient `(f(w + h) - f(w - h)) / 2h` of the loss `f` on the
    batch `(x, y)` is compared with the analytic gradient `a` from the
    backend's automatic differentiation, through the relative error
    `|a - n| / max(|a|, |n|)` (0 when both are zero). Everything is computed
    on a float64 copy of the model (same weights; on jax with 64-bit mode
    switched on for the duration, see `kerasreg._backend`), with
    `training=False` and the random state frozen, so dropout and other
    randomness are off. Regularization losses of the model
    (`model.losses`) are included.

    Reading the result (cs231n bands): > 1e-2 the gradient is probably
    wrong; 1e-2 to 1e-4 should make you uneasy; below 1e-4 is fine for
    objectives with kinks (ReLU, max pooling) but too high without them
    (tanh, softmax); below 1e-7 you should be happy. Errors grow with depth.

    Args:
        model: A Keras model (Sequential, functional, or subclassed with a
            `get_config`). Custom layers must be registered serializable, as
            the check rebuilds the model in float64 from its config.
        x: A batch of inputs (keep it small: the check does two forward
            passes per checked parameter entry).
        y: Targets for the loss, or `None`. Without targets the checked
            scalar is `loss(y_pred)` if `loss` is given, else
            `0.5 * mean(y_pred ** 2)`. Defaults to `None`.
        loss: Loss (name, `keras.losses.Loss`, or function `fn(y_true,
            y_pred)`; a list for several outputs), or `None` to use the
            model's compiled loss. Defaults to `None`.
        h: Positive float. Finite-difference step. Defaults to `1e-5`.
        max_params: Positive integer or `None`. Check at most this many
            entries of each weight tensor, drawn at random (seeded by
            `seed`). Defaults to `None` (every entry).
        seed: Integer. Seed of the sub-sampling. Defaults to `0`.

    Returns:
        A `GradientCheckReport` with `max_relative_error`, `verdict`,
        `per_weight`, `checked`, `worst`, and a readable `str()`.

    Example:

    ```python
    import keras
    import numpy as np
    import kerasreg

    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(5, activation="tanh"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4))
    y = keras.utils.to_categorical(rng.integers(0, 3, 8), 3)
    report = kerasreg.gradient_check(model, x, y,
                                     loss="categorical_crossentropy")
    print(report)  # verdict "good", max relative error < 1e-7
    ```
    """
    _check_args(h, max_params, seed)
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value received for argument `model`. "
            f"Expected a keras.Model. Received: model={model!r}"
        )
    if loss is None and y is not None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                "Invalid value received for argument `loss`. Expected a loss "
                "when the model is not compiled with one and `y` is given. "
                "Received: loss=None"
            )
    if not model.built:
        model(x, training=False)
    names = [v.path for v in model.trainable_variables]
    h = float(h)
    rng = np.random.default_rng(int(seed))

    with _backend.float64_scope():
        x64 = _as_float64(x)
        y64 = _as_float64(y)
        clone = _float64_clone(model, x64)
        trainable = clone.trainable_variables
        if len(trainable) != len(names):
            raise ValueError(
                "gradient_check could not match the trainable weights of the "
                "model with those of its float64 clone."
            )
        non_trainable = [v.value for v in clone.non_trainable_variables]
        objective = _objective(loss, y64)

        def f(params):
            y_pred, _, extra_losses = clone.stateless_call(
                list(params),
                non_trainable,
                x64,
                training=False,
                return_losses=True,
            )
            value = objective(y_pred)
            for extra in extra_losses:
                value = value + keras.ops.cast(extra, "float64")
            return value

        params = [
            np.array(keras.ops.convert_to_numpy(v.value), dtype="float64")
            for v in trainable
        ]
        _, analytic = _backend.value_and_grad(f, params)
        f_compiled = _backend.compile_function(f)

        def evaluate():
            return float(keras.ops.convert_to_numpy(f_compiled(params)))

        per_weight, checked, worst = {}, {}, {}
        for name, value, grad in zip(names, params, analytic):
            flat = value.reshape(-1)
            if max_params is not None and flat.size > max_params:
                indices = np.sort(rng.choice(flat.size, size=max_params, replace=False))
            else:
                indices = np.arange(flat.size)
            worst_error, worst_entry = 0.0, None
            for index in indices:
                original = flat[index]
                flat[index] = original + h
                plus = evaluate()
                flat[index] = original - h
                minus = evaluate()
                flat[index] = original
                numeric = (plus - minus) / (2.0 * h)
                a = float(grad.reshape(-1)[index])
                scale = max(abs(a), abs(numeric))
                error = 0.0 if scale == 0.0 else abs(a - numeric) / scale
                if math.isnan(error):
                    error = float("inf")
                if worst_entry is None or error > worst_error:
                    worst_error = error
                    worst_entry = {
                        "index": tuple(
                            int(i) for i in np.unravel_index(index, value.shape)
                        ),
                        "analytic": a,
                        "numeric": numeric,
                    }
            per_weight[name] = float(worst_error)
            checked[name] = int(len(indices))
            worst[name] = worst_entry
    return GradientCheckReport(per_weight, checked, worst, h)
