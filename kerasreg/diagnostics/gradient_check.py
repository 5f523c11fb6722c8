"""Gradient check: backend autodiff against central differences, in float64."""

import collections.abc
import math

import keras
import numpy as np

from kerasreg import _backend
from kerasreg import _cloning
from kerasreg import _checks
from kerasreg._stateless import inference_call
from kerasreg.diagnostics._dropout import switch_off_dropout

# The cs231n bands for the relative error |a - n| / max(|a|, |n|).
_WRONG = 1e-2
_SUSPICIOUS = 1e-4
_GOOD = 1e-7

# Kink detection (see `_crossed_kink`): the analytic gradient must match a
# one-sided slope to within this fraction of the slopes' jump, and the jump
# must account for the discrepancy |a - n| (exactly half the jump for a kink
# at w).
_KINK_SIDE_MATCH = 0.1
_KINK_EXPLAINS = 0.6

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


def _mapping_or_none(name, value, expected):
    if value is not None and not isinstance(value, collections.abc.Mapping):
        raise _checks.invalid(name, value, expected)
    return {} if value is None else dict(value)


class GradientCheckReport:
    """Result of `gradient_check`.

    Args:
        per_weight: Dict mapping each weight's path to the largest relative
            error over its checked entries that crossed no kink.
        checked: Dict mapping each weight's path to the number of entries
            checked, or `None` (unknown). Defaults to `None`.
        worst: Dict mapping each weight's path to its worst entry (see
            below), or `None`. Defaults to `None`.
        h: Positive float. The finite-difference step. Defaults to `1e-5`.
        kinks: Dict mapping each weight's path to the number of its entries
            whose check crossed a kink, or `None` (none). Defaults to `None`.
        kink_worst: Dict mapping each weight's path to its kink-crossing
            entry with the largest relative error, or `None`. Defaults to
            `None`.

    Attributes:
        max_relative_error: Float. Largest relative error
            `|a - n| / max(|a|, |n|)` over every checked parameter entry
            that crossed no kink (`0` when both are zero).
        verdict: String, from the cs231n bands applied to
            `max_relative_error`: `"good"` (< 1e-7), `"ok-with-kinks"`
            (1e-7 to 1e-4: fine for kinked functions such as ReLU, too high
            for tanh/softmax), `"suspicious"` (1e-4 to 1e-2) or `"wrong"`
            (> 1e-2, or not finite).
        per_weight: Dict mapping each trainable weight's path to the largest
            relative error over its checked entries that crossed no kink.
        checked: Dict mapping each weight's path to the number of entries
            checked (all of them unless `max_params` was set).
        worst: Dict mapping each weight's path to its worst entry that
            crossed no kink: `{"index": tuple, "analytic": float,
            "numeric": float}` (`None` when there is none).
        kinks: Dict mapping each weight's path to the number of its checked
            entries whose finite difference crossed a kink (see
            `gradient_check`): they are listed here, not counted in
            `max_relative_error`.
        kink_worst: Dict mapping each weight's path to its kink-crossing
            entry with the largest relative error: `{"index", "analytic",
            "numeric", "slope_minus", "slope_plus", "relative_error"}`, or
            `None`.
        num_kinks: Integer. Total number of kink-crossing entries.
        h: Float. The finite-difference step used.
    """

    def __init__(
        self, per_weight, checked=None, worst=None, h=1e-5, kinks=None, kink_worst=None
    ):
        expected = "a dict mapping weight paths to relative errors"
        if not isinstance(per_weight, collections.abc.Mapping) or not all(
            _checks.is_real(e) for e in per_weight.values()
        ):
            raise _checks.invalid("per_weight", per_weight, expected)
        self.per_weight = {name: float(e) for name, e in per_weight.items()}
        self.checked = _mapping_or_none(
            "checked", checked, "a dict mapping weight paths to entry counts, or None"
        )
        self.worst = _mapping_or_none(
            "worst", worst, "a dict mapping weight paths to entries, or None"
        )
        self.h = _checks.positive_float("h", h)
        self.kinks = _mapping_or_none(
            "kinks", kinks, "a dict mapping weight paths to kink counts, or None"
        )
        self.kink_worst = _mapping_or_none(
            "kink_worst", kink_worst, "a dict mapping weight paths to entries, or None"
        )
        errors = list(self.per_weight.values())
        if any(not np.isfinite(e) for e in errors):
            self.max_relative_error = float("nan")
        else:
            self.max_relative_error = float(max(errors, default=0.0))
        self.verdict = _verdict(self.max_relative_error)

    @property
    def num_kinks(self):
        return int(sum(self.kinks.values()))

    def __repr__(self):
        return (
            f"<GradientCheckReport verdict={self.verdict!r} "
            f"max_relative_error={self.max_relative_error:.3e} "
            f"kinks={self.num_kinks}>"
        )

    def __str__(self):
        width = max([len("weight")] + [len(name) for name in self.per_weight])
        lines = [
            f"Gradient check (central differences, h={self.h:g}, float64): "
            f"{self.verdict}, max relative error {self.max_relative_error:.3e}",
            f"{'weight':<{width}}  {'checked':>7}  {'kinks':>5}  "
            f"{'rel. error':>10}  verdict",
        ]
        for name, error in self.per_weight.items():
            checked = self.checked.get(name)
            checked = "-" if checked is None else str(checked)
            lines.append(
                f"{name:<{width}}  {checked:>7}  {self.kinks.get(name, 0):>5d}  "
                f"{error:>10.3e}  {_verdict(error)}"
            )
        if self.num_kinks:
            lines.append(
                f"{self.num_kinks} checked entries crossed a kink (ReLU, max "
                "pooling, ...) between w - h and w + h: there the numerical "
                "gradient is not exact, so they are listed under 'kinks' and "
                "left out of the relative error"
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
    """A float64 copy of `model` with the same weights (call in float64_scope).

    The copy is rebuilt from the model's config, with every floating dtype
    policy rewritten to float64 and without the compile config (which may
    name unregistered losses), inside a custom-object scope holding the
    model's own classes, so unregistered custom layers and subclassed models
    work. Dropout-like layers of the copy are switched off.
    """
    config = _to_float64_config(_cloning.uncompiled_config(model))
    try:
        clone = _cloning.from_own_config(model, config)
    except Exception as error:
        raise ValueError(
            "gradient_check needs to rebuild the model in float64 from its "
            "config (`get_config` / `from_config` of the model and of its "
            "custom layers); this failed. Give custom layers and subclassed "
            "models a `get_config` returning their constructor arguments. "
            f"Original error: {error}"
        ) from error
    switch_off_dropout(clone)
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


def _shape(a):
    return tuple(np.shape(keras.ops.convert_to_numpy(a)))


def _check_inputs(model, x):
    """Raises a Keras-style error when `x` does not fit the model's inputs."""
    if x is None:
        raise _checks.invalid("x", x, "a batch of inputs for the model")
    try:
        inputs = model.inputs if model.built else None
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        return
    try:
        structure = model.input
    except (AttributeError, ValueError):
        structure = inputs
    if isinstance(x, dict) != isinstance(structure, dict):
        return  # matched by name by the model itself
    expected = keras.tree.flatten(structure)
    received = keras.tree.flatten(x)
    if len(expected) != len(received):
        raise ValueError(
            "Invalid value received for argument `x`. Expected "
            f"{len(expected)} input array(s) for the model's inputs "
            f"{[tuple(t.shape) for t in expected]}. Received: "
            f"{len(received)} array(s)"
        )
    for tensor, array in zip(expected, received):
        want = tuple(tensor.shape)
        got = _shape(array)
        fits = len(want) == len(got) and all(
            w is None or w == g for w, g in zip(want, got)
        )
        if not fits:
            raise ValueError(
                "Invalid value received for argument `x`. Expected inputs of "
                f"shape {want} (the model's input shape, None for any size). "
                f"Received: x with shape {got}"
            )


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


def _relative_error(a, n):
    scale = max(abs(a), abs(n))
    error = 0.0 if scale == 0.0 else abs(a - n) / scale
    return float("inf") if math.isnan(error) else error


def _crossed_kink(analytic, numeric, slope_minus, slope_plus):
    """Whether a kink between `w - h` and `w + h` explains the discrepancy.

    Where `f` is smooth, the one-sided slopes `(f(w) - f(w - h)) / h` and
    `(f(w + h) - f(w)) / h` differ by `h f''(w)` and the analytic gradient
    lies half-way between them. When an input of a ReLU, a max (pooling) or
    any other kinked op changes side within `[w - h, w + h]`, the slope
    jumps: the analytic gradient equals the slope on the side of `w` (the
    side autodiff sees), the other slope differs by the jump, and the
    central difference lands in between. A wrong gradient matches neither
    slope.
    """
    gap = abs(slope_plus - slope_minus)
    if not np.isfinite(gap) or gap == 0.0:
        return False
    matches_a_side = (
        min(abs(analytic - slope_plus), abs(analytic - slope_minus))
        <= _KINK_SIDE_MATCH * gap
    )
    return matches_a_side and abs(analytic - numeric) <= _KINK_EXPLAINS * gap


def _entry(index, shape, analytic, numeric, **extra):
    return {
        "index": tuple(int(i) for i in np.unravel_index(index, shape)),
        "analytic": analytic,
        "numeric": numeric,
        **extra,
    }


def gradient_check(model, x, y=None, loss=None, h=1e-5, max_params=None, seed=0):
    """Compares backend gradients with central differences, in float64.

    As in the cs231n notes: for each trainable parameter entry `w`, the
    numerical gradient `(f(w + h) - f(w - h)) / 2h` of the loss `f` on the
    batch `(x, y)` is compared with the analytic gradient `a` from the
    backend's automatic differentiation, through the relative error
    `|a - n| / max(|a|, |n|)` (0 when both are zero). Everything is computed
    on a float64 copy of the model (same weights; on jax with 64-bit mode
    switched on for the duration, see `kerasreg._backend`), with
    `training=False` and every dropout-like layer switched off (Keras'
    and kerasreg's, Monte-Carlo ones included). Regularization losses of the
    model (`model.losses`) are included.

    Kinks: where an input of a ReLU, a max pooling or another kinked op
    changes side between `w - h` and `w + h` (ReLU pre-activations sitting
    exactly at 0, as on blank image patches, do so for every bias), the
    numerical gradient is not exact. Such a crossing is detected from the
    one-sided slopes `(f(w) - f(w - h)) / h` and `(f(w + h) - f(w)) / h`,
    which are available for free: a kink makes them jump and the analytic
    gradient equal to the one on its side, while a smooth function puts the
    analytic gradient half-way between them and a wrong gradient matches
    neither. Entries whose relative error is above 1e-4 only because of a
    kink are counted in `report.kinks` and left out of
    `max_relative_error`.

    Reading the result (cs231n bands): > 1e-2 the gradient is probably
    wrong; 1e-2 to 1e-4 should make you uneasy; below 1e-4 is fine for
    objectives with kinks (ReLU, max pooling) but too high without them
    (tanh, softmax); below 1e-7 you should be happy. Errors grow with depth.

    Args:
        model: A Keras model: Sequential, functional, or subclassed with a
            `get_config` (the check rebuilds the model in float64 from its
            config). Custom layers need a `get_config` returning their
            constructor arguments; they need not be registered.
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
        `per_weight`, `checked`, `worst`, `kinks`, `kink_worst`, and a
        readable `str()`.

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
    _check_inputs(model, x)
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
            y_pred, _, extra_losses = inference_call(
                clone, list(params), non_trainable, x64, return_losses=True
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

        center = evaluate()
        per_weight, checked, worst, kinks, kink_worst = {}, {}, {}, {}, {}
        for name, value, grad in zip(names, params, analytic):
            flat = value.reshape(-1)
            if max_params is not None and flat.size > max_params:
                indices = np.sort(rng.choice(flat.size, size=max_params, replace=False))
            else:
                indices = np.arange(flat.size)
            worst_error, worst_entry = 0.0, None
            kink_count, kink_error, kink_entry = 0, 0.0, None
            for index in indices:
                original = flat[index]
                flat[index] = original + h
                plus = evaluate()
                flat[index] = original - h
                minus = evaluate()
                flat[index] = original
                numeric = (plus - minus) / (2.0 * h)
                a = float(grad.reshape(-1)[index])
                error = _relative_error(a, numeric)
                if error > _SUSPICIOUS and np.isfinite(error):
                    slope_minus = (center - minus) / h
                    slope_plus = (plus - center) / h
                    if _crossed_kink(a, numeric, slope_minus, slope_plus):
                        kink_count += 1
                        if kink_entry is None or error > kink_error:
                            kink_error = error
                            kink_entry = _entry(
                                index,
                                value.shape,
                                a,
                                numeric,
                                slope_minus=slope_minus,
                                slope_plus=slope_plus,
                                relative_error=error,
                            )
                        continue
                if worst_entry is None or error > worst_error:
                    worst_error = error
                    worst_entry = _entry(index, value.shape, a, numeric)
            per_weight[name] = float(worst_error)
            checked[name] = int(len(indices))
            worst[name] = worst_entry
            kinks[name] = kink_count
            kink_worst[name] = kink_entry
    return GradientCheckReport(per_weight, checked, worst, h, kinks, kink_worst)
