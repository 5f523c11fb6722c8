"""Exponential decay: `lr0 * exp(-k t)`, or Keras' `lr0 * decay_rate ** (t / decay_steps)`."""

from kerasreg._registry import register
from kerasreg.schedules import _math
from kerasreg.schedules._decay import DecaySchedule


@register
class ExponentialDecay(DecaySchedule):
    """Exponential decay: `lr(t) = initial_learning_rate * exp(-k * t)`.

    The second annealing recipe of the cs231n notes ("Neural Networks 3"):
    `alpha = alpha_0 * e^(-k t)`, where `t` is the iteration number (or the
    epoch, with `kerasreg.callbacks.ScheduleCallback(unit="epoch")`). `t`
    starts at 0.

    It is also a drop-in for `keras.optimizers.schedules.ExponentialDecay`:
    given Keras' arguments (`decay_steps` and `decay_rate`, optionally
    `staircase`) instead of `k`, it computes exactly what Keras computes,
    `initial_learning_rate * decay_rate ** (t / decay_steps)`, with the
    exponent floored to an integer when `staircase=True` (a step decay), and
    its config has Keras' keys. The two forms agree for
    `k = -log(decay_rate) / decay_steps` (and `staircase=False`).

    Positional arguments follow Keras' order, `(initial_learning_rate,
    decay_steps, decay_rate, staircase, name)`; the notes' form takes `k` as
    the only positional argument after the rate,
    `ExponentialDecay(0.1, 0.05)`, or by keyword. Passing `k` together with
    `decay_steps`, `decay_rate` or `staircase` is a `ValueError`.

    Args:
        initial_learning_rate: Float > 0. The rate at `t = 0`.
        decay_steps: Float or integer > 0. Keras' form: the number of steps
            over which the rate is multiplied by `decay_rate`.
        decay_rate: Float >= 0. Keras' form: the factor applied every
            `decay_steps` steps.
        staircase: Boolean. Keras' form: if `True`, decay at discrete
            intervals (`floor(t / decay_steps)`). Defaults to `False`.
        name: String. Optional name of the schedule.
        k: Float >= 0. The notes' form: decay constant per step (or epoch).

    Example:

    ```python
    import keras
    import kerasreg

    schedule = kerasreg.schedules.ExponentialDecay(0.1, k=0.5)
    round(float(schedule(2)), 5)  # 0.1 * exp(-1) = 0.03679
    optimizer = keras.optimizers.SGD(learning_rate=schedule)

    # Keras' arguments, Keras' values: 0.1 * 0.5 ** floor(25 / 10) = 0.025
    keras_form = kerasreg.schedules.ExponentialDecay(
        0.1, decay_steps=10, decay_rate=0.5, staircase=True
    )
    round(float(keras_form(25)), 5)  # 0.025
    ```
    """

    k_formula = staticmethod(_math.exponential_decay)
    keras_formula = staticmethod(_math.exponential_decay_keras)
