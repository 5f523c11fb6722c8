"""The learning-rate formulas, each written once as a pure function of `t`.

Every function takes the step (or epoch) index `t` (0-based) and the
schedule's hyperparameters, and returns the learning rate as a float32 tensor.
They use `keras.ops` only, so `t` may be a python int, a numpy value or array,
or a backend tensor (including a traced one inside a jit-compiled train step),
and they work element-wise on arrays of steps. The schedule classes
(`StepDecay`, ...) and `kerasreg.callbacks.ScheduleCallback` both call these.

Formulas (cs231n "Neural Networks 3", annealing the learning rate; Huang et
al. 2017, "Snapshot Ensembles: Train 1, get M for free"):

- step:         lr(t) = lr0 * drop_factor ** floor(t / drop_every)
- exponential:  lr(t) = lr0 * exp(-k t)
                or, in Keras' form, lr0 * decay_rate ** p, p = t / decay_steps
- 1/t:          lr(t) = lr0 / (1 + k t)
                or, in Keras' form, lr0 / (1 + decay_rate * p)
                (Keras' `staircase=True`: p = floor(t / decay_steps))
- cyclic cosine lr(t) = min + (lr0 - min) / 2 * (cos(pi * (t mod c) / c) + 1)
- warmup:       lr(t) = start + (target - start) * t / w   for t < w
"""

import math

from keras import ops

DTYPE = "float32"


def _t(t):
    return ops.cast(t, DTYPE)


def step_decay(t, initial_learning_rate, drop_factor, drop_every):
    """`initial_learning_rate * drop_factor ** floor(t / drop_every)`."""
    drops = ops.floor(_t(t) / float(drop_every))
    return float(initial_learning_rate) * ops.power(float(drop_factor), drops)


def exponential_decay(t, initial_learning_rate, k):
    """`initial_learning_rate * exp(-k * t)`."""
    return float(initial_learning_rate) * ops.exp(-float(k) * _t(t))


def inverse_time_decay(t, initial_learning_rate, k):
    """`initial_learning_rate / (1 + k * t)`."""
    return float(initial_learning_rate) / (1.0 + float(k) * _t(t))


def _decay_periods(t, decay_steps, staircase):
    """Keras' exponent `p = t / decay_steps`, floored when `staircase`."""
    p = _t(t) / float(decay_steps)
    return ops.floor(p) if staircase else p


def exponential_decay_keras(
    t, initial_learning_rate, decay_steps, decay_rate, staircase=False
):
    """`initial_learning_rate * decay_rate ** p`, `p = t / decay_steps`.

    Keras' `keras.optimizers.schedules.ExponentialDecay`, computed with the
    same float32 operations; `staircase=True` floors `p`. Equal to
    `exponential_decay` with `k = -log(decay_rate) / decay_steps`.
    """
    p = _decay_periods(t, decay_steps, staircase)
    return float(initial_learning_rate) * ops.power(float(decay_rate), p)


def inverse_time_decay_keras(
    t, initial_learning_rate, decay_steps, decay_rate, staircase=False
):
    """`initial_learning_rate / (1 + decay_rate * p)`, `p = t / decay_steps`.

    Keras' `keras.optimizers.schedules.InverseTimeDecay`, computed with the
    same float32 operations; `staircase=True` floors `p`. Equal to
    `inverse_time_decay` with `k = decay_rate / decay_steps` (no staircase).
    """
    p = _decay_periods(t, decay_steps, staircase)
    return float(initial_learning_rate) / (1.0 + float(decay_rate) * p)


def cycle_length(total_steps, n_cycles):
    """Steps per cycle of the cyclic cosine schedule: `ceil(total / n)`."""
    return int(math.ceil(int(total_steps) / int(n_cycles)))


def cyclic_cosine(t, initial_learning_rate, cycle_length, min_learning_rate=0.0):
    """`min + (lr0 - min) / 2 * (cos(pi * (t mod c) / c) + 1)`, `c = cycle_length`."""
    c = float(cycle_length)
    phase = ops.mod(_t(t), c) / c
    span = float(initial_learning_rate) - float(min_learning_rate)
    return float(min_learning_rate) + (span / 2.0) * (ops.cos(math.pi * phase) + 1.0)


def linear_warmup(t, start_learning_rate, target_learning_rate, warmup_steps):
    """`start + (target - start) * t / warmup_steps` (the ramp, for `t < warmup_steps`)."""
    fraction = _t(t) / float(max(int(warmup_steps), 1))
    target = ops.cast(target_learning_rate, DTYPE)
    return float(start_learning_rate) + (target - float(start_learning_rate)) * fraction
