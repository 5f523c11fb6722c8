"""`kerasreg._trials`: which trials count as completed, and their ranking."""

import math
import types

import pytest

from kerasreg._trials import is_completed
from kerasreg._trials import ranked_trials


def _trial(trial_id, status, score):
    return types.SimpleNamespace(trial_id=trial_id, status=status, score=score)


@pytest.mark.parametrize(
    "status, score, expected",
    [
        ("COMPLETED", 0.5, True),
        ("COMPLETED", 0, True),
        ("COMPLETED", None, False),
        ("COMPLETED", math.nan, False),
        ("COMPLETED", math.inf, False),
        ("COMPLETED", -math.inf, False),
        ("FAILED", 0.5, False),
        ("INVALID", math.nan, False),
        ("RUNNING", None, False),
    ],
)
def test_is_completed(status, score, expected):
    assert is_completed(_trial("0", status, score)) is expected


class _Oracle:
    """An oracle whose ranking put a NaN score among the completed trials."""

    def __init__(self, direction, order):
        self.trials = {t.trial_id: t for t in order}
        self.objective = types.SimpleNamespace(name="score", direction=direction)
        self.max_trials = None
        self._order = order

    def get_best_trials(self, num_trials=1):
        return self._order[:num_trials]


@pytest.mark.parametrize("direction", ["min", "max"])
def test_ranked_trials_sorts_again_around_a_nan(direction):
    order = [
        _trial("a", "COMPLETED", 3.0),
        _trial("b", "COMPLETED", math.nan),
        _trial("c", "COMPLETED", 1.0),
        _trial("d", "COMPLETED", 2.0),
        _trial("e", "FAILED", None),
    ]
    completed, others = ranked_trials(_Oracle(direction, order))
    expected = ["c", "d", "a"] if direction == "min" else ["a", "d", "c"]
    assert [t.trial_id for t in completed] == expected
    assert [t.trial_id for t in others] == ["b", "e"]


def test_ranked_trials_keeps_the_oracle_order():
    # E.g. CoarseToFine ranks later stages first, whatever their scores.
    order = [
        _trial("late", "COMPLETED", 2.0),
        _trial("early", "COMPLETED", 1.0),
        _trial("failed", "FAILED", None),
    ]
    completed, others = ranked_trials(_Oracle("min", order))
    assert [t.trial_id for t in completed] == ["late", "early"]
    assert [t.trial_id for t in others] == ["failed"]


def test_ranked_trials_of_an_empty_search():
    assert ranked_trials(_Oracle("min", [])) == ([], [])
