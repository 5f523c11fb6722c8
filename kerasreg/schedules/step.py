"""Step decay: cut the learning rate by a constant factor every few epochs."""

from kerasreg import _checks
from kerasreg._registry import register
from kerasreg.schedules import _math
from keras.optimizers.schedules import LearningRateSchedule


@register
class StepDecay(LearningRateSchedule):
    """Step decay: `lr(t) = initial_learning_rate * drop_factor ** floor(t / drop_every)`.

    The first of the three annealing recipes of the cs231n notes ("Neural
    Networks 3"): reduce the learning rate by some factor every few epochs,
    e.g. halve it every 5 epochs (`drop_factor=0.5, drop_every=5`) or
    multiply it by 0.1 every 20 (`drop_factor=0.1, drop_every=20`).

    `t` starts at 0. Passed as `learning_rate=` to a Keras optimizer, `t` is
    the optimizer step; with `kerasreg.callbacks.ScheduleCallback(unit="epoch")`
    it is the epoch index.

    Unlike Keras' `keras.optimizers.schedules.ExponentialDecay(...,
    staircase=True)`, which is parameterized by `decay_rate` per
    `decay_steps`, this class follows the notes' wording (a factor applied
    every `drop_every` steps); the two give the same values for
    `decay_rate=drop_factor, decay_steps=drop_every, staircase=True`.

    Args:
        initial_learning_rate: Float > 0. The rate at `t = 0`.
        drop_factor: Float in `(0, 1]`. Factor applied at each drop.
            Defaults to `0.5`.
        drop_every: Integer >= 1. Steps (or epochs) between drops.
            Defaults to `5`.
        name: String. Optional name of the schedule.

    Example:

    ```python
    import keras
    import kerasreg

    schedule = kerasreg.schedules.StepDecay(0.1, drop_factor=0.5, drop_every=5)
    [round(float(schedule(t)), 4) for t in (0, 4, 5, 10)]  # [0.1, 0.1, 0.05, 0.025]
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    ```
    """

    def __init__(self, initial_learning_rate, drop_factor=0.5, drop_every=5, name=None):
        super().__init__()
        self.initial_learning_rate = _checks.positive_float(
            "initial_learning_rate", initial_learning_rate
        )
        self.drop_factor = _checks.float_between(
            "drop_factor", drop_factor, 0, 1, closed=(False, True)
        )
        self.drop_every = _checks.int_at_least("drop_every", drop_every, 1)
        self.name = name

    def __call__(self, step):
        return _math.step_decay(
            step, self.initial_learning_rate, self.drop_factor, self.drop_every
        )

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "drop_factor": self.drop_factor,
            "drop_every": self.drop_every,
            "name": self.name,
        }
