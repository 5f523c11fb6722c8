"""1/t decay: `lr0 / (1 + k t)`, or Keras' `lr0 / (1 + decay_rate * t / decay_steps)`."""

from kerasreg._registry import register
from kerasreg.schedules import _math
from kerasreg.schedules._decay import DecaySchedule


@register
class InverseTimeDecay(DecaySchedule):
    """1/t decay: `lr(t) = initial_learning_rate / (1 + k * t)`.

    The third annealing recipe of the cs231n notes ("Neural Networks 3"):
    `alpha = alpha_0 / (1 + k t)`, where `t` is the iteration number (or the
    epoch, with `kerasreg.callbacks.ScheduleCallback(unit="epoch")`). `t`
    starts at 0.

    It is also a drop-in for `keras.optimizers.schedules.InverseTimeDecay`:
    given Keras' arguments (`decay_steps` and `decay_rate`, optionally
    `staircase`) instead of `k`, it computes exactly what Keras computes,
    `initial_learning_rate / (1 + decay_rate * t / decay_steps)`, with
    `t / decay_steps` floored to an integer when `staircase=True`, and its
    config has Keras' keys. The two forms agree for
    `k = decay_rate / decay_steps` (and `staircase=False`).

    Positional arguments follow Keras' order, `(initial_learning_rate,
    decay_steps, decay_rate, staircase, name)`; the notes' form takes `k` as
    the only positional argument after the rate,
    `InverseTimeDecay(0.1, 0.5)`, or by keyword. Passing `k` together with
    `decay_steps`, `decay_rate` or `staircase` is a `ValueError`.

    Args:
        initial_learning_rate: Float > 0. The rate at `t = 0`.
        decay_steps: Float or integer > 0. Keras' form: the unit of `t` in
            the denominator.
        decay_rate: Float >= 0. Keras' form: the rate grows the denominator
            by `decay_rate` every `decay_steps` steps.
        staircase: Boolean. Keras' form: if `True`, decay at discrete
            intervals (`floor(t / decay_steps)`). Defaults to `False`.
        name: String. Optional name of the schedule.
        k: Float >= 0. The notes' form: decay constant per step (or epoch).

    Example:

    ```python
    import keras
    import kerasreg

    schedule = kerasreg.schedules.InverseTimeDecay(0.1, k=1.0)
    round(float(schedule(3)), 5)  # 0.1 / 4 = 0.025
    optimizer = keras.optimizers.SGD(learning_rate=schedule)

    # Keras' arguments, Keras' values: 0.1 / (1 + 0.5 * 30 / 10) = 0.04
    keras_form = kerasreg.schedules.InverseTimeDecay(
        0.1, decay_steps=10, decay_rate=0.5
    )
    round(float(keras_form(30)), 5)  # 0.04
    ```
    """

    k_formula = staticmethod(_math.inverse_time_decay)
    keras_formula = staticmethod(_math.inverse_time_decay_keras)
