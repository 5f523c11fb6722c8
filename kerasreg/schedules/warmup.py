"""Linear learning-rate warmup in front of any schedule."""

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from kerasreg import _checks
from kerasreg._registry import register
from kerasreg.schedules import _math


@register
class Warmup(LearningRateSchedule):
    """Linear warmup to `schedule(0)`, then `schedule(t - warmup_steps)`.

    For `t < warmup_steps` the rate grows linearly from `start_learning_rate`
    (at `t = 0`) towards `schedule(0)`, which it reaches at
    `t = warmup_steps`:
    `lr(t) = start + (schedule(0) - start) * t / warmup_steps`. From then on
    the wrapped schedule runs, shifted: `lr(t) = schedule(t - warmup_steps)`.
    `warmup_steps=0` is the wrapped schedule unchanged.

    Args:
        schedule: A `keras.optimizers.schedules.LearningRateSchedule` (any
            kerasreg or Keras schedule, or your own serializable one), or a
            float for a constant rate after the warmup.
        warmup_steps: Integer >= 0. Length of the ramp in steps (or epochs,
            with `ScheduleCallback(unit="epoch")`).
        start_learning_rate: Float >= 0. The rate at `t = 0`.
            Defaults to `0.0`.
        name: String. Optional name of the schedule.

    Example:

    ```python
    import keras
    import kerasreg

    schedule = kerasreg.schedules.Warmup(
        kerasreg.schedules.ExponentialDecay(0.1, k=0.01), warmup_steps=10
    )
    [round(float(schedule(t)), 4) for t in (0, 5, 10)]  # [0.0, 0.05, 0.1]
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    ```
    """

    def __init__(self, schedule, warmup_steps, start_learning_rate=0.0, name=None):
        super().__init__()
        is_number = _checks.is_real(schedule)
        if not (isinstance(schedule, LearningRateSchedule) or is_number):
            raise _checks.invalid(
                "schedule",
                schedule,
                "a `keras.optimizers.schedules.LearningRateSchedule` "
                "instance or a float",
            )
        self.schedule = float(schedule) if is_number else schedule
        self.warmup_steps = _checks.int_at_least("warmup_steps", warmup_steps, 0)
        self.start_learning_rate = _checks.non_negative_float(
            "start_learning_rate", start_learning_rate
        )
        self.name = name

    def _inner(self, t):
        if isinstance(self.schedule, float):
            return ops.cast(ops.ones_like(ops.cast(t, "float32")) * self.schedule, "float32")
        return ops.cast(self.schedule(t), "float32")

    def __call__(self, step):
        t = ops.cast(step, "float32")
        w = float(self.warmup_steps)
        after = self._inner(ops.maximum(t - w, 0.0))
        if self.warmup_steps == 0:
            return after
        target = self._inner(0)
        ramp = _math.linear_warmup(t, self.start_learning_rate, target, self.warmup_steps)
        return ops.where(t < w, ramp, after)

    def get_config(self):
        schedule = self.schedule
        if not isinstance(schedule, float):
            schedule = keras.saving.serialize_keras_object(schedule)
        return {
            "schedule": schedule,
            "warmup_steps": self.warmup_steps,
            "start_learning_rate": self.start_learning_rate,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.saving.deserialize_keras_object(
                config["schedule"]
            )
        return cls(**config)
