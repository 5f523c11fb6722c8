"""Cyclic cosine annealing with warm restarts: the snapshot-ensemble schedule."""

import numbers

import numpy as np
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from kerasreg import _checks
from kerasreg._registry import register
from kerasreg.schedules import _math


# Longest cycle whose rates `__call__` caches for numpy steps (4 MiB).
_CACHED_CYCLE = 1 << 20


@register
class CyclicCosine(LearningRateSchedule):
    """Cyclic cosine annealing, the schedule of snapshot ensembles.

    From Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free"
    (the ensembles lecture of CS 182): training is split into `n_cycles`
    cycles of `c = ceil(total_steps / n_cycles)` steps; within each cycle the
    rate follows half a cosine from `initial_learning_rate` down towards
    `min_learning_rate`, then restarts:

    `lr(t) = min + (initial - min) / 2 * (cos(pi * (t mod c) / c) + 1)`.

    `t` is the 0-based step index. The rate is `initial_learning_rate` at the
    first step of each cycle (`t mod c == 0`) and smallest at the cycle's last
    step (`t mod c == c - 1`), where the model sits in a local minimum and a
    snapshot is taken. Beyond `total_steps` the formula keeps cycling.

    **Cycle ends** (`is_cycle_end(t)`): a cycle ends *after* step `t` when
    `(t + 1) % cycle_length == 0` or `t + 1 == total_steps`. The second rule
    closes the last cycle, which is shorter (a partial cycle) when
    `total_steps` is not a multiple of `cycle_length`; its last rate is then
    higher than the cycle minimum. Because `cycle_length` is rounded up, the
    number of cycle ends within `total_steps`, `len(cycle_end_steps)`
    `== ceil(total_steps / cycle_length)`, can be smaller than `n_cycles`
    (e.g. `total_steps=10, n_cycles=6` gives `cycle_length=2` and 5 cycles).

    Args:
        initial_learning_rate: Float > 0. The rate at the start of each cycle.
        total_steps: Integer >= 1. Length of training in steps (or epochs,
            with `ScheduleCallback(unit="epoch")`).
        n_cycles: Integer in `[1, total_steps]`. Number of cycles (snapshots).
        min_learning_rate: Float in `[0, initial_learning_rate)`. The floor
            the cosine decays towards. Defaults to `0.0`.
        name: String. Optional name of the schedule.

    Example:

    ```python
    import keras
    import kerasreg

    schedule = kerasreg.schedules.CyclicCosine(0.1, total_steps=100, n_cycles=4)
    schedule.cycle_length  # 25
    float(schedule(25))  # 0.1: a restart
    schedule.is_cycle_end(24), schedule.is_cycle_end(25)  # (True, False)
    schedule.cycle_end_steps  # (24, 49, 74, 99)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    ```
    """

    def __init__(
        self,
        initial_learning_rate,
        total_steps,
        n_cycles,
        min_learning_rate=0.0,
        name=None,
    ):
        super().__init__()
        self.initial_learning_rate = _checks.positive_float(
            "initial_learning_rate", initial_learning_rate
        )
        self.total_steps = _checks.int_at_least("total_steps", total_steps, 1)
        self.n_cycles = _checks.int_at_least("n_cycles", n_cycles, 1)
        if self.n_cycles > self.total_steps:
            raise _checks.invalid(
                "n_cycles",
                n_cycles,
                f"an integer between 1 and total_steps={self.total_steps}",
            )
        if (
            not _checks.is_real(min_learning_rate)
            or not 0 <= min_learning_rate < self.initial_learning_rate
        ):
            raise _checks.invalid(
                "min_learning_rate",
                min_learning_rate,
                "a float value >= 0 and < initial_learning_rate="
                f"{self.initial_learning_rate}",
            )
        self.min_learning_rate = float(min_learning_rate)
        self.name = name
        self._cycle_key = None  # what `_cycle_rates` was computed for
        self._cycle_rates = None

    @property
    def cycle_length(self):
        """Steps per cycle, `ceil(total_steps / n_cycles)` (a python int)."""
        return _math.cycle_length(self.total_steps, self.n_cycles)

    @property
    def cycle_end_steps(self):
        """Tuple of the steps `t < total_steps` after which a cycle ends."""
        c = self.cycle_length
        ends = list(range(c - 1, self.total_steps, c))
        if not ends or ends[-1] != self.total_steps - 1:
            ends.append(self.total_steps - 1)
        return tuple(ends)

    def is_cycle_end(self, t):
        """Whether a cycle ends after step `t` (0-based).

        True when `(t + 1) % cycle_length == 0` or `t + 1 == total_steps`.

        Args:
            t: The step index: a python or numpy integer (returns a python
                `bool`), a numpy integer array (returns a numpy bool array),
                or a backend tensor, traced or not (returns a bool tensor).
        """
        c = self.cycle_length
        if isinstance(t, numbers.Integral) and not isinstance(t, bool):
            t = int(t)
            return (t + 1) % c == 0 or t + 1 == self.total_steps
        if isinstance(t, np.ndarray):
            return ((t + 1) % c == 0) | (t + 1 == self.total_steps)
        t = ops.cast(t, "int32")
        return ops.logical_or(
            ops.equal(ops.mod(t + 1, c), 0), ops.equal(t + 1, self.total_steps)
        )

    def __call__(self, step):
        if (
            isinstance(step, np.ndarray)
            and step.dtype.kind in "iu"
            and self.cycle_length <= _CACHED_CYCLE
        ):
            # Integer steps in numpy (a callback filling its rate table):
            # the rate depends only on `step mod cycle_length`, so one
            # cycle's rates, computed once with the same ops, give them all.
            return self._one_cycle()[np.mod(step, self.cycle_length)]
        return self._rate(step)

    def _rate(self, step):
        return _math.cyclic_cosine(
            step,
            self.initial_learning_rate,
            self.cycle_length,
            self.min_learning_rate,
        )

    def _one_cycle(self):
        """`self(t)` for `t` in `[0, cycle_length)`, float32 numpy (cached)."""
        key = (self.initial_learning_rate, self.cycle_length, self.min_learning_rate)
        if self._cycle_key != key:
            t = np.arange(self.cycle_length, dtype="int32")
            self._cycle_rates = np.asarray(ops.convert_to_numpy(self._rate(t)))
            self._cycle_key = key
        return self._cycle_rates

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "total_steps": self.total_steps,
            "n_cycles": self.n_cycles,
            "min_learning_rate": self.min_learning_rate,
            "name": self.name,
        }
