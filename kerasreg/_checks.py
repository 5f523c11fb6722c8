"""Argument checks shared by kerasreg, with Keras' error wording.

Each check raises at construction time a `ValueError` that names the argument
and the value received, as Keras does:

    Invalid value received for argument `decay`. Expected a float value
    in (0, 1). Received: decay=1.5
"""

import math
import numbers

import numpy as np


def invalid(name, value, expected):
    """The `ValueError` for argument `name`: `expected` is a noun phrase."""
    return ValueError(
        f"Invalid value received for argument `{name}`. "
        f"Expected {expected}. Received: {name}={value!r}"
    )


def is_real(value):
    """A finite or infinite real number, not a bool (numpy scalars too)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value):
    """An integer, not a bool (numpy integers too)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_float(name, value):
    if not is_real(value) or not 0 < value < math.inf:
        raise invalid(name, value, "a float value > 0")
    return float(value)


def non_negative_float(name, value):
    if not is_real(value) or not 0 <= value < math.inf:
        raise invalid(name, value, "a float value >= 0")
    return float(value)


def float_between(name, value, low, high, closed=(False, False)):
    """A float in the interval `(low, high)`; `closed` closes either end."""
    inside = is_real(value) and (
        (value >= low if closed[0] else value > low)
        and (value <= high if closed[1] else value < high)
    )
    if not inside:
        interval = "[(" [not closed[0]] + f"{low}, {high}" + "])"[not closed[1]]
        raise invalid(name, value, f"a float value in {interval}")
    return float(value)


def int_at_least(name, value, low):
    if not is_integer(value) or value < low:
        raise invalid(name, value, f"an integer >= {low}")
    return int(value)


def boolean(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise invalid(name, value, "a boolean")
    return bool(value)


def verbose(value, choices=(0, 1, 2)):
    """A `verbose` argument among `choices` (integers, and `"auto"` where
    listed); `True` and `False` count as 1 and 0. Returns an int or "auto"."""
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if is_integer(value) and int(value) in choices:
        return int(value)
    if isinstance(value, str) and value in choices:
        return value
    raise invalid("verbose", value, "one of " + ", ".join(map(repr, choices)))
