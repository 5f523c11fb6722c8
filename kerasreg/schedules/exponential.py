"""Exponential decay: `lr(t) = lr0 * exp(-k t)`."""

from kerasreg import _checks
from kerasreg._registry import register
from kerasreg.schedules import _math
from keras.optimizers.schedules import LearningRateSchedule


@register
class ExponentialDecay(LearningRateSchedule):
    """Exponential decay: `lr(t) = initial_learning_rate * exp(-k * t)`.

    The second annealing recipe of the cs231n notes ("Neural Networks 3"):
    `alpha = alpha_0 * e^(-k t)`, where `t` is the iteration number (or the
    epoch, with `kerasreg.callbacks.ScheduleCallback(unit="epoch")`). `t`
    starts at 0.

    Not the same parameterization as Keras' own
    `keras.optimizers.schedules.ExponentialDecay(initial_learning_rate,
    decay_steps, decay_rate)`, which computes
    `initial_learning_rate * decay_rate ** (t / decay_steps)`; the two agree
    for `k = -log(decay_rate) / decay_steps`.

    Args:
        initial_learning_rate: Float > 0. The rate at `t = 0`.
        k: Float >= 0. Decay constant per step (or epoch).
        name: String. Optional name of the schedule.

    Example:

    ```python
    import keras
    import kerasreg

    schedule = kerasreg.schedules.ExponentialDecay(0.1, k=0.5)
    round(float(schedule(2)), 5)  # 0.1 * exp(-1) = 0.03679
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    ```
    """

    def __init__(self, initial_learning_rate, k, name=None):
        super().__init__()
        self.initial_learning_rate = _checks.positive_float(
            "initial_learning_rate", initial_learning_rate
        )
        self.k = _checks.non_negative_float("k", k)
        self.name = name

    def __call__(self, step):
        return _math.exponential_decay(step, self.initial_learning_rate, self.k)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "k": self.k,
            "name": self.name,
        }
