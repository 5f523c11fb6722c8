"""Sanity checks to run before training (cs231n, "Neural Networks 3")."""

import math

import keras
import numpy as np

from kerasreg import _checks
from kerasreg import _compat
from kerasreg._cloning import clone_uncompiled
from kerasreg.diagnostics._dropout import switch_off_dropout

_NAME_FORMS = {
    "categoricalcrossentropy": "categorical",
    "sparsecategoricalcrossentropy": "categorical",
    "binarycrossentropy": "binary",
}

_DROPOUT_LIKE = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
)

_OVERFIT_ADVICE = "check the learning rate, the labels, the output activation"


class SanityCheck:
    """One line of a `SanityReport`.

    Attributes:
        name: String, `"initial_loss"`, `"regularization"` or `"overfit"`.
        passed: `True`, `False`, or `None` when the check was skipped or
            only reports a value.
        value: The measured value (a float), or `None`.
        expected: What the value should be (a float or a short string), or
            `None`.
        advice: A short string: what to look at when the check fails, or
            why it was skipped.
        details: Dict of extra measurements.
    """

    def __init__(self, name, passed, value, expected, advice="", details=None):
        self.name = name
        self.passed = passed
        self.value = value
        self.expected = expected
        self.advice = advice
        self.details = dict(details or {})

    def to_dict(self):
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "expected": self.expected,
            "advice": self.advice,
            "details": dict(self.details),
        }

    def __repr__(self):
        return f"SanityCheck({self.to_dict()!r})"


class SanityReport:
    """The result of `sanity_check`: a list of checks, printable as a table.

    Attributes:
        checks: List of `SanityCheck` entries, in the order they ran.
        passed: `True` when every check that ran passed (skipped checks,
            `passed=None`, do not count).
    """

    def __init__(self, checks):
        self.checks = list(checks)

    @property
    def passed(self):
        return all(c.passed is not False for c in self.checks)

    def __getitem__(self, name):
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self):
        return {
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
        }

    def __str__(self):
        def fmt(v):
            if v is None:
                return "-"
            if isinstance(v, float):
                return f"{v:.4g}"
            return str(v)

        status = {True: "PASS", False: "FAIL", None: "skip"}
        rows = [("check", "status", "value", "expected", "advice")]
        for c in self.checks:
            rows.append(
                (
                    c.name,
                    status[c.passed],
                    fmt(c.value),
                    fmt(c.expected),
                    c.advice or "",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = []
        for i, r in enumerate(rows):
            cells = [r[j].ljust(widths[j]) for j in range(4)] + [r[4]]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths) + "  ------")
        verdict = "all checks passed" if self.passed else "some checks FAILED"
        lines.append(f"sanity check: {verdict}")
        return "\n".join(lines)

    def __repr__(self):
        return str(self)


def _loss_kind(loss):
    """Returns `(kind, from_logits)` for a cross-entropy loss, else `None`.

    `kind` is `"categorical"` (sparse or not) or `"binary"`.
    """
    from_logits = False
    if isinstance(loss, str):
        name = loss
    elif isinstance(loss, keras.losses.Loss):
        name = type(loss).__name__
        try:
            from_logits = bool(loss.get_config().get("from_logits", False))
        except (NotImplementedError, AttributeError):
            from_logits = False
    elif callable(loss):
        name = getattr(loss, "__name__", "")
    else:
        return None
    kind = _NAME_FORMS.get(name.replace("_", "").lower())
    if kind is None:
        return None
    return kind, from_logits


class _ScaledRegularizer(keras.regularizers.Regularizer):
    """`factor` times another regularizer (any callable).

    A `Regularizer` subclass: Keras < 3.15 accepts no other kind as a
    variable's `regularizer`.
    """

    def __init__(self, regularizer, factor):
        self.regularizer = regularizer
        self.factor = factor

    def __call__(self, x):
        return self.factor * self.regularizer(x)


def _compile_like(clone, model, optimizer=None):
    """Compiles `clone` with a fresh copy of `model`'s compile arguments.

    With `optimizer`, that optimizer replaces the model's.
    """
    try:
        config = dict(model.get_compile_config())
        if optimizer is not None:
            config["optimizer"] = keras.optimizers.serialize(optimizer)
        clone.compile_from_config(config)
        if clone.compiled:
            return
    except Exception:  # unregistered custom objects: fall back below
        pass
    if optimizer is None:
        optimizer = model.optimizer.__class__.from_config(
            model.optimizer.get_config()
        )
    clone.compile(optimizer=optimizer, loss=model.loss)


def _copy(model, dropout=True, optimizer=None):
    """A compiled copy of `model` with the same weights.

    With `dropout=False`, dropout-like layers (Dropout, SpatialDropout,
    GaussianDropout, GaussianNoise, AlphaDropout and any layer class whose
    name ends in "Dropout") are replaced by `Identity` in Sequential and
    Functional models, and switched off (rate 0) elsewhere. With
    `optimizer`, the copy is compiled with it instead of the model's.
    """

    def clone_function(layer):
        is_dropout = isinstance(layer, _DROPOUT_LIKE) or (
            type(layer).__name__.endswith("Dropout") and not layer.weights
        )
        if not dropout and is_dropout:
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    try:
        clone = keras.models.clone_model(model, clone_function=clone_function)
    except ValueError:  # subclassed model: no per-layer cloning
        clone = clone_uncompiled(model)
    if not dropout:
        switch_off_dropout(clone)
    clone.set_weights(model.get_weights())
    _compile_like(clone, model, optimizer)
    return clone


def _regularizers(model):
    """The model's weight and activity regularizers."""
    weight = [v for v in model.trainable_weights if v.regularizer is not None]
    activity = [
        layer
        for layer in _compat.sublayers(model)
        if getattr(layer, "activity_regularizer", None) is not None
    ]
    return weight, activity


def _set_regularization(model, factor):
    """Scales every regularizer of `model` by `factor` (0 removes them)."""
    weight, activity = _regularizers(model)
    for v in weight:
        v.regularizer = (
            None if factor == 0 else _ScaledRegularizer(v.regularizer, factor)
        )
    for layer in activity:
        _compat.set_activity_regularizer(
            layer,
            None
            if factor == 0
            else _ScaledRegularizer(layer.activity_regularizer, factor),
        )


def _take(data, index):
    if isinstance(data, dict):
        return {k: np.asarray(v)[index] for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(np.asarray(v)[index] for v in data)
    return np.asarray(data)[index]


def _length(data):
    if isinstance(data, dict):
        data = next(iter(data.values()))
    elif isinstance(data, (list, tuple)):
        data = data[0]
    return len(data)


def _evaluate_loss(model, x, y):
    logs = model.evaluate(
        x, y, batch_size=min(_length(x), 256), verbose=0, return_dict=True
    )
    return float(logs["loss"])


def _initial_loss_check(model, x, y, tolerance):
    clone = _copy(model)
    _set_regularization(clone, 0.0)
    loss = _evaluate_loss(clone, x, y)
    kind = _loss_kind(model.loss)
    if kind is None or len(getattr(model, "outputs", None) or [None]) != 1:
        return SanityCheck(
            "initial_loss",
            None,
            loss,
            None,
            "no expected value for this loss: value reported only",
        )
    kind, from_logits = kind
    pred = np.asarray(clone.predict(x, batch_size=256, verbose=0))
    classes = 2 if kind == "binary" else int(pred.shape[-1])
    expected = math.log(classes)
    details = {"classes": classes, "tolerance": tolerance}
    if not from_logits:
        if kind == "categorical":
            ok = np.all(pred >= 0) and np.allclose(pred.sum(-1), 1, atol=1e-3)
            wanted = "softmax"
        else:
            ok = np.all((pred >= 0) & (pred <= 1))
            wanted = "sigmoid"
        if not ok:
            return SanityCheck(
                "initial_loss",
                False,
                loss,
                expected,
                f"the outputs are not probabilities: use a {wanted} output "
                "activation, or a loss with from_logits=True",
                details,
            )
    passed = bool(abs(loss - expected) <= tolerance * expected)
    advice = (
        ""
        if passed
        else f"expected about ln({classes}) = {expected:.4g} at "
        "initialization: check the output layer's initial weights (too "
        "large makes confident random guesses), the labels, the loss"
    )
    return SanityCheck("initial_loss", passed, loss, expected, advice, details)


def _regularization_check(model, x, y, factor):
    weight, activity = _regularizers(model)
    if not weight and not activity:
        return SanityCheck(
            "regularization",
            None,
            None,
            None,
            "skipped: the model has no regularizers",
        )
    base = _evaluate_loss(_copy(model), x, y)
    # A second copy: the first one's compiled test step holds the old
    # regularizers.
    clone = _copy(model)
    _set_regularization(clone, factor)
    raised = _evaluate_loss(clone, x, y)
    passed = bool(raised > base)
    advice = (
        ""
        if passed
        else f"multiplying the regularization by {factor:g} did not raise "
        "the loss: check that the regularizers reach the loss"
    )
    return SanityCheck(
        "regularization",
        passed,
        raised,
        f"> {base:.4g}",
        advice,
        {"loss": base, "loss_scaled": raised, "factor": factor},
    )


def _overfit_run(model, x, y, steps, target, learning_rate):
    """Full-batch Adam steps on a fresh copy until the loss is below target.

    Returns `(best_loss, steps_run, accuracy_at_best)`; the loss of a step
    is the one `train_on_batch` reports, before that step's update.
    """
    clone = _copy(
        model, dropout=False, optimizer=keras.optimizers.Adam(learning_rate)
    )
    _set_regularization(clone, 0.0)
    best, accuracy, steps_run = math.inf, None, 0
    for _ in range(steps):
        logs = clone.train_on_batch(x, y, return_dict=True)
        steps_run += 1
        loss = float(logs["loss"])
        if not np.isfinite(loss):
            break
        if loss < best:
            best = loss
            accuracy = next(
                (float(v) for k, v in logs.items() if "acc" in k), None
            )
        if loss < target:
            break
    return best, steps_run, accuracy


def _overfit_check(model, x, y, epochs, target, learning_rates):
    n = _length(x)
    runs = []
    for learning_rate in learning_rates:
        loss, steps_run, accuracy = _overfit_run(
            model, x, y, epochs, target, learning_rate
        )
        runs.append((loss, learning_rate, steps_run, accuracy))
        if loss < target:
            break
    loss, learning_rate, steps_run, accuracy = min(runs, key=lambda r: r[0])
    passed = bool(np.isfinite(loss) and loss < target)
    advice = "" if passed else _OVERFIT_ADVICE
    details = {
        "epochs_run": steps_run,
        "learning_rate": learning_rate,
        "learning_rates_tried": [r[1] for r in runs],
        "accuracy": accuracy,
        "examples": n,
    }
    return SanityCheck(
        "overfit", passed, float(loss), f"< {target:g}", advice, details
    )


def sanity_check(
    model,
    x,
    y,
    n_overfit=20,
    epochs=200,
    seed=0,
    tolerance=0.1,
    target_loss=0.05,
    regularization_factor=10.0,
    max_eval=1024,
    learning_rates=(1e-2, 1e-3),
):
    """Checks a compiled model before training, as the cs231n notes advise.

    Runs three checks on fresh copies of `model` (same architecture, weights
    and compile arguments; the model passed in is never changed):

    1. `"initial_loss"`: with regularization off, the loss at the current
       (initial) weights. For a softmax classifier with `C` classes and a
       (sparse) categorical cross-entropy, the predictions should be about
       uniform, so the loss should be about `ln(C)` (2.303 for 10 classes);
       for a sigmoid output with binary cross-entropy, `ln(2)`. The check
       passes when `|loss - ln(C)| <= tolerance * ln(C)` (10% by default:
       a Glorot-initialized MLP lands within a few percent). For other
       losses the value is reported only (`passed=None`).
    2. `"regularization"`: multiplying every regularizer (kernel, bias and
       activity regularizers) by `regularization_factor` must raise the
       loss. Skipped (`passed=None`) when the model has no regularizer.
    3. `"overfit"`: "turn off regularization and make sure you can reach
       zero cost" on a tiny subset. On a copy with regularization and
       dropout (Monte-Carlo dropout included) off, full-batch Adam steps on
       `n_overfit` examples must drive the training loss below
       `target_loss` within `epochs` steps; training stops as soon as it
       does. The check uses its own optimizer, not the model's: Adam with
       the first of `learning_rates`, then, if the loss is still above the
       target, the next one from the same initial weights. It measures
       whether the model, loss and labels can fit, not whether the model's
       own optimizer settings are good. When it fails: "check the learning
       rate, the labels, the output activation".

    Run it on a freshly initialized model: the first check is about the
    loss at initialization. Dropout-like layers are removed for the overfit
    check in Sequential and Functional models (subclassed models keep them).

    Args:
        model: A compiled `keras.Model`.
        x: Input data (array, list or dict of arrays).
        y: Targets.
        n_overfit: Integer. Number of examples to overfit. Defaults to `20`.
        epochs: Integer. Maximum number of full-batch training steps of the
            overfit check, per learning rate tried. Defaults to `200`.
        seed: Integer. Seed of the choice of examples. Defaults to `0`.
        tolerance: Float. Relative tolerance of the initial loss check.
            Defaults to `0.1`.
        target_loss: Float. Training loss the overfit check must reach.
            Defaults to `0.05`.
        regularization_factor: Float > 1. How much the regularization check
            multiplies the regularizers by. Defaults to `10.0`.
        max_eval: Integer. The loss checks use at most this many examples
            (a random subset). Defaults to `1024`.
        learning_rates: Tuple of positive floats. Learning rates of the
            overfit check's Adam optimizer, tried in order until one reaches
            `target_loss`. Defaults to `(1e-2, 1e-3)`.

    Returns:
        A `SanityReport`: `print()` it for a table; `.passed`, `.checks`,
        `.to_dict()`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg.diagnostics import sanity_check

    x = np.random.rand(100, 8).astype("float32")
    y = np.random.randint(0, 10, size=(100,))
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    report = sanity_check(model, x, y, n_overfit=10, epochs=100)
    print(report)
    ```
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a "
            f"`keras.Model`. Received: model={model!r}"
        )
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "Invalid value received for argument `model`. Expected a "
            "compiled model: call `model.compile(optimizer, loss)` first. "
            f"Received: model={model.name!r} (not compiled)"
        )
    n = _length(x)
    if _length(y) != n:
        raise ValueError(
            "Invalid value received for arguments `x` and `y`. Expected the "
            f"same number of examples. Received: len(x)={n}, "
            f"len(y)={_length(y)}"
        )
    if not _checks.is_integer(n_overfit) or not 1 <= n_overfit <= n:
        raise _checks.invalid(
            "n_overfit",
            n_overfit,
            f"an integer between 1 and the number of examples ({n})",
        )
    _checks.int_at_least("epochs", epochs, 1)
    _checks.positive_float("tolerance", tolerance)
    _checks.positive_float("target_loss", target_loss)
    if not _checks.is_real(regularization_factor) or not regularization_factor > 1:
        raise _checks.invalid(
            "regularization_factor", regularization_factor, "a float value > 1"
        )
    _checks.int_at_least("max_eval", max_eval, 1)
    if (
        not isinstance(learning_rates, (list, tuple))
        or not learning_rates
        or not all(_checks.is_real(r) and 0 < r < math.inf for r in learning_rates)
    ):
        raise _checks.invalid(
            "learning_rates",
            learning_rates,
            "a non-empty tuple of float values > 0",
        )

    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    eval_index = np.sort(order[: min(n, max_eval)])
    overfit_index = np.sort(order[:n_overfit])
    x_eval, y_eval = _take(x, eval_index), _take(y, eval_index)
    x_fit, y_fit = _take(x, overfit_index), _take(y, overfit_index)

    checks = [
        _initial_loss_check(model, x_eval, y_eval, tolerance),
        _regularization_check(model, x_eval, y_eval, regularization_factor),
        _overfit_check(
            model,
            x_fit,
            y_fit,
            int(epochs),
            target_loss,
            tuple(float(r) for r in learning_rates),
        ),
    ]
    return SanityReport(checks)
