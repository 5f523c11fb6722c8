"""Argument checks shared by the schedules, with Keras' error wording."""

import numbers


def invalid(name, value, expected):
    return ValueError(
        f"Invalid value received for argument `{name}`. "
        f"Expected {expected}. Received: {name}={value!r}"
    )


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_float(name, value):
    if not _is_real(value) or not value > 0:
        raise invalid(name, value, "a float value > 0")
    return float(value)


def non_negative_float(name, value):
    if not _is_real(value) or not value >= 0:
        raise invalid(name, value, "a float value >= 0")
    return float(value)


def int_at_least(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise invalid(name, value, f"an integer >= {low}")
    if value < low:
        raise invalid(name, value, f"an integer >= {low}")
    return int(value)
