"""The shared argument checks: Keras' wording, numpy scalars, no bools."""

import numpy as np
import pytest

from kerasreg import _checks


@pytest.mark.parametrize("value", [1, 3, np.int64(2)])
def test_int_at_least_accepts_integers(value):
    result = _checks.int_at_least("every", value, 1)
    assert result == int(value) and type(result) is int


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "2", None])
def test_int_at_least_rejects(value):
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `every`\. Expected an "
        rf"integer >= 1\. Received: every={value!r}",
    ):
        _checks.int_at_least("every", value, 1)


@pytest.mark.parametrize("value", [0.5, np.float32(0.25), 1])
def test_positive_float_accepts(value):
    result = _checks.positive_float("lr", value)
    assert result == float(value) and type(result) is float


@pytest.mark.parametrize("value", [0, -1e-3, float("inf"), float("nan"), False, "1"])
def test_positive_float_rejects(value):
    with pytest.raises(ValueError, match=r"argument `lr`\. Expected a float value > 0\."):
        _checks.positive_float("lr", value)


@pytest.mark.parametrize(
    "closed,ok,bad,interval",
    [
        ((False, False), [0.5], [0, 1], r"\(0, 1\)"),
        ((True, False), [0, 0.5], [1, -0.1], r"\[0, 1\)"),
        ((False, True), [1, 0.5], [0, 1.1], r"\(0, 1\]"),
        ((True, True), [0, 1], [-0.1, 1.1], r"\[0, 1\]"),
    ],
)
def test_float_between(closed, ok, bad, interval):
    for value in ok:
        assert _checks.float_between("decay", value, 0, 1, closed=closed) == value
    for value in bad:
        with pytest.raises(ValueError, match=rf"a float value in {interval}\. "):
            _checks.float_between("decay", value, 0, 1, closed=closed)


@pytest.mark.parametrize("value,ok", [(True, True), (np.bool_(False), True), (1, False), ("yes", False)])
def test_boolean(value, ok):
    if ok:
        assert _checks.boolean("warmup", value) is bool(value)
    else:
        with pytest.raises(ValueError, match=r"Expected a boolean\. Received: warmup="):
            _checks.boolean("warmup", value)
