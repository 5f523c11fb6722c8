"""Log-scale search-space helpers for Keras Tuner hyperparameters.

The tuning lectures: the learning rate and the regularization strength act
multiplicatively on training, so sample them uniformly in log space
(`lr = 10 ** uniform(-6, 1)`); sample a momentum-like `beta` through
`1 - beta = 10 ** r` with `r` in `[-3, -1]`, so that as many trials land
between 0.9 and 0.99 as between 0.99 and 0.999.

Both helpers take the `keras_tuner.HyperParameters` object passed to a
model-building function and register only built-in Keras Tuner types, so a
resumed or distributed search can reload the space.
"""

import math

ONE_MINUS_PREFIX = "one_minus_"


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a float "
            f"value. Received: {name}={value!r}"
        )
    if not math.isfinite(value):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a finite "
            f"float value. Received: {name}={value}"
        )


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise ValueError(
            "Invalid value received for argument `name`. Expected a non-empty "
            f"string. Received: name={name!r}"
        )


def log_uniform(hp, name, min_value, max_value, default=None):
    """Samples a float uniformly in log10 space between two positive bounds.

    A thin, validating wrapper over
    `hp.Float(name, min_value, max_value, sampling="log")`: as many trials
    fall between 1e-5 and 1e-4 as between 1e-2 and 1e-1, which is how the
    learning rate and the L2 strength should be searched (cs231n: "search
    for hyperparameters on log scale", `learning_rate = 10 ** uniform(-6, 1)`).
    The value is recorded in the trial's hyperparameters under `name`.

    Args:
        hp: The `keras_tuner.HyperParameters` object of the trial.
        name: String. Name of the hyperparameter.
        min_value: Float. Lower bound, strictly positive.
        max_value: Float. Upper bound, greater than `min_value`.
        default: Optional float. Value used before the search samples one.
            Defaults to `None` (Keras Tuner then uses `min_value`).

    Returns:
        The float value of the hyperparameter for this trial.

    Example:

    ```python
    import keras_tuner
    from kerasreg.tuning import log_uniform

    hp = keras_tuner.HyperParameters()
    lr = log_uniform(hp, "learning_rate", 1e-6, 1e-1)
    assert 1e-6 <= lr <= 1e-1
    ```
    """
    _check_name(name)
    _check_number("min_value", min_value)
    _check_number("max_value", max_value)
    if min_value <= 0:
        raise ValueError(
            "Invalid value received for argument `min_value`. Expected a float "
            "value greater than 0 for log sampling. "
            f"Received: min_value={min_value}"
        )
    if min_value >= max_value:
        raise ValueError(
            "Invalid value received for argument `max_value`. Expected a float "
            f"value greater than min_value={min_value}. "
            f"Received: max_value={max_value}"
        )
    if default is not None:
        _check_number("default", default)
        if not min_value <= default <= max_value:
            raise ValueError(
                "Invalid value received for argument `default`. Expected a "
                f"float value between {min_value} and {max_value}. "
                f"Received: default={default}"
            )
    return hp.Float(
        name,
        min_value=float(min_value),
        max_value=float(max_value),
        sampling="log",
        default=None if default is None else float(default),
    )


def beta(hp, name, min_value=0.9, max_value=0.999):
    """Samples a momentum-like `beta` with `1 - beta` log-uniform.

    deeplearning.ai course 2, week 3: sampling `beta` uniformly between 0.9
    and 0.999 wastes the search, because the average window `1 / (1 - beta)`
    changes most near 1. Sample `r` uniformly and set `1 - beta = 10 ** r`:
    with the default bounds `r` is in `[-3, -1]` and there is as much search
    between 0.9 and 0.99 as between 0.99 and 0.999.

    Keras Tuner's own `sampling="reverse_log"` does not give this
    distribution (it makes `max + min - beta` log-uniform, almost linear for
    bounds near 1), so the search samples the built-in log-scale float
    `"one_minus_<name>"` in `[1 - max_value, 1 - min_value]` and the
    resulting `beta` is recorded in the trial's hyperparameters under `name`
    (reports show it). `CoarseToFine` narrows `one_minus_<name>` in log space,
    which is the same as narrowing `beta` on its natural scale.

    Args:
        hp: The `keras_tuner.HyperParameters` object of the trial.
        name: String. Name under which `beta` is recorded.
        min_value: Float in (0, 1). Smallest `beta`. Defaults to `0.9`.
        max_value: Float in (0, 1), greater than `min_value`. Largest `beta`.
            Defaults to `0.999`.

    Returns:
        The float value of `beta` for this trial.

    Example:

    ```python
    import keras_tuner
    from kerasreg.tuning import beta

    hp = keras_tuner.HyperParameters()
    beta_1 = beta(hp, "beta_1", 0.9, 0.999)
    assert 0.9 <= beta_1 <= 0.999
    assert hp.values["beta_1"] == beta_1
    ```
    """
    _check_name(name)
    _check_number("min_value", min_value)
    _check_number("max_value", max_value)
    if not 0 < min_value < 1:
        raise ValueError(
            "Invalid value received for argument `min_value`. Expected a float "
            f"value between 0 and 1 (exclusive). Received: min_value={min_value}"
        )
    if not 0 < max_value < 1:
        raise ValueError(
            "Invalid value received for argument `max_value`. Expected a float "
            f"value between 0 and 1 (exclusive). Received: max_value={max_value}"
        )
    if min_value >= max_value:
        raise ValueError(
            "Invalid value received for argument `max_value`. Expected a float "
            f"value greater than min_value={min_value}. "
            f"Received: max_value={max_value}"
        )
    one_minus = hp.Float(
        ONE_MINUS_PREFIX + name,
        min_value=1.0 - float(max_value),
        max_value=1.0 - float(min_value),
        sampling="log",
    )
    if one_minus is None:  # Inactive conditional hyperparameter.
        return None
    # `1 - (1 - beta)` and Keras Tuner's log sampling can leave the bounds
    # by a rounding error (0.29999999999999993 for min_value=0.3).
    value = min(max(1.0 - one_minus, float(min_value)), float(max_value))
    hp.values[name] = value
    return value
