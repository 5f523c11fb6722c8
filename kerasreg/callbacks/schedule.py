"""`ScheduleCallback`: drive the optimizer's learning rate from a schedule."""

import numpy as np
import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from kerasreg import _checks

# Rates are evaluated for this many steps at once when the epoch length is
# unknown (one vectorized schedule call instead of one per step).
_CHUNK = 1024
# Relative difference under which two float32 rates count as the same value.
_SAME = 1e-6


def _same(a, b):
    return abs(a - b) <= _SAME * max(abs(a), abs(b))


def _learning_rate_variable(optimizer):
    """The optimizer's learning-rate `keras.Variable`, or `None`."""
    while hasattr(optimizer, "inner_optimizer"):  # LossScaleOptimizer
        optimizer = optimizer.inner_optimizer
    lr = getattr(optimizer, "_learning_rate", None)
    return lr if isinstance(lr, keras.Variable) else None


_JAX_STATE_GROUPS = (
    "trainable_variables",
    "non_trainable_variables",
    "optimizer_variables",
    "metrics_variables",
)


def _jax_state_variables(model):
    """The variable lists the jax trainer carries, in its state's order."""
    return (
        model.trainable_variables,
        model.non_trainable_variables,
        model.optimizer.variables,
        model.metrics_variables,
    )


def _set_variable_during_jax_fit(model, groups, variable, value):
    """jax backend only: sets `variable` to `value` mid-epoch, cheaply.

    During `fit` on jax, Keras keeps the training state outside the model's
    variables (keras/src/backend/jax/trainer.py): after each step the new
    state is kept in `model._jax_state` and the `keras.Variable`s are
    emptied; the next step takes the state it carried, unless
    `model._jax_state_synced` is True, in which case it gathers the state
    afresh from the variables. Assigning the learning-rate variable alone
    therefore has no effect on the next step. The public way,
    `model.jax_state_sync()` and then `variable.assign(value)`, goes through
    `assign` for every model, optimizer and metric variable and converts the
    value to a device array, on every batch: on the benchmark MLP that made
    `fit` about 1.3x slower (see benchmarks/bench_schedules.py). Keras has no
    public hook to change one optimizer variable mid-epoch, so this does what
    `jax_state_sync()` does without the per-variable `assign` overhead (it
    re-attaches the carried arrays to the variables it was given in
    `groups`), sets the one value, and marks the state synced so that the
    next step gathers it. Returns False, having changed nothing, when the
    carried state does not match `groups` (the caller then takes the
    public way).
    """
    state = getattr(model, "_jax_state", None)
    if not isinstance(state, dict) or groups is None:
        return False
    pairs = []
    for name, refs in zip(_JAX_STATE_GROUPS, groups):
        values = state.get(name)
        if not values:
            continue
        if len(values) != len(refs):
            return False
        pairs.append((refs, values))
    for refs, values in pairs:
        for ref, carried in zip(refs, values):
            ref._value = carried
    variable._value = np.asarray(value, dtype=variable.dtype)
    model._jax_state_synced = True
    return True


class ScheduleCallback(keras.callbacks.Callback):
    """Sets the optimizer's learning rate from a schedule, per epoch or step.

    At the start of each epoch (`unit="epoch"`, `t` = epoch index) or of each
    batch (`unit="step"`, `t` = global step) the optimizer's learning rate is
    set to `schedule(t)`. Use it for the annealing schedules of the cs231n
    notes applied per epoch ("halve the rate every 5 epochs"), for any python
    `callable(t) -> float`, or to combine a schedule with
    `keras.callbacks.ReduceLROnPlateau`. (To run a `LearningRateSchedule` per
    step you can also pass it as the optimizer's `learning_rate=`; this
    callback gives the same rates and adds resumption, plateau cuts and
    python callables.)

    **Resuming.** The global step is the optimizer's `iterations` counter,
    read at the start of each epoch, plus the batch index, so it is saved
    with the model and restored by `keras.callbacks.BackupAndRestore`,
    `model.load_weights` or `keras.saving.load_model`. `fit(...,
    initial_epoch=k)` and a run restored by `BackupAndRestore` after an
    interruption give exactly the rates of an uninterrupted run, for both
    units.

    **With `ReduceLROnPlateau` (or anything else that changes the rate).**
    The rate set is `scale * schedule(t)`, `scale` starting at 1. At the
    start of each epoch, if the optimizer's rate differs from the last rate
    this callback set, `scale` is multiplied by their ratio: a plateau cut
    by `factor` multiplies every later scheduled rate by `factor` instead of
    being overwritten at the next epoch, and cuts compound. The rate is saved
    with the optimizer, so when a run is resumed (`optimizer.iterations > 0`
    and `t > 0`) `scale` is recovered as `rate / schedule(t - 1)`: a cut
    taken before the interruption survives it (this assumes training resumes
    from the state it was saved in).

    `logs["learning_rate"]` (hence `History` and `TensorBoard`) receives at
    each epoch end the rate this callback set last: the epoch's rate for
    `unit="epoch"`, the rate of the epoch's last step for `unit="step"`.

    The optimizer must have been created with a float learning rate; one
    created with a schedule object is refused with a `ValueError`.

    **Invalid rates.** Every value of the schedule is checked when it is
    computed, before any step trains with it: a value that is not a real
    number (a string such as `"0.1"`, `None`), negative, NaN or infinite
    raises a `ValueError` naming the value and its epoch or step. Per
    epoch, the check runs at the epoch's start; per step, the rates of the
    whole epoch are computed (and checked, in numpy) at its start, so the
    check costs nothing per step.

    Cost: with `unit="step"` the rates of a whole epoch are computed in one
    vectorized call at the start of the epoch, and setting one rate is a
    variable assignment (on jax, a re-attachment of the state `fit` carries,
    see `_set_variable_during_jax_fit`), so the per-step overhead is small.
    With `steps_per_execution > 1` the rate changes once per
    execution (the batch hooks run once per execution).

    Args:
        schedule: A `keras.optimizers.schedules.LearningRateSchedule` (such
            as `kerasreg.schedules.StepDecay`) or any `callable(t) -> float`
            taking the integer `t`.
        unit: `"epoch"` or `"step"`: what `t` counts. Defaults to `"epoch"`.
        verbose: Integer >= 0. 0: quiet, 1: print the rate at each epoch
            start. Defaults to `0`.

    Example:

    ```python
    import keras
    import numpy as np
    import kerasreg

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    schedule = kerasreg.schedules.StepDecay(0.1, drop_factor=0.5, drop_every=2)
    history = model.fit(
        np.ones((32, 4)), np.ones((32, 1)), epochs=4, verbose=0,
        callbacks=[kerasreg.callbacks.ScheduleCallback(schedule)],
    )
    history.history["learning_rate"]  # [0.1, 0.1, 0.05, 0.05]
    ```
    """

    def __init__(self, schedule, unit="epoch", verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError(
                "Invalid value received for argument `schedule`. Expected a "
                "`LearningRateSchedule` or a callable `t -> float`. "
                f"Received: schedule={schedule!r}"
            )
        if unit not in ("epoch", "step"):
            raise ValueError(
                "Invalid value received for argument `unit`. Expected one of "
                f'"epoch", "step". Received: unit={unit!r}'
            )
        if isinstance(verbose, (bool, np.bool_)):
            verbose = int(verbose)
        if not _checks.is_integer(verbose) or verbose < 0:
            raise _checks.invalid(
                "verbose",
                verbose,
                "an integer >= 0 (0: quiet, 1: print the rate at each epoch "
                "start)",
            )
        self.schedule = schedule
        self.unit = unit
        self.verbose = int(verbose)
        self._vectorized = isinstance(schedule, LearningRateSchedule)
        self._reset()

    def _reset(self):
        self._scale = 1.0
        self._last_written = None
        self._cache_start = 0
        self._cache = np.zeros((0,))
        self._step0 = 0
        self._lr_variable = None
        self._jax_groups = None

    # -- schedule values -------------------------------------------------

    def _invalid_rate(self, t, value):
        return ValueError(
            "Invalid learning rate returned by the schedule for "
            f"{self.unit} {t}. Expected a finite float value >= 0. "
            f"Received: schedule({t})={value!r}"
        )

    def _scalar(self, t):
        """`schedule(t)` as a float; refuses anything but a real number."""
        raw = self.schedule(int(t))
        if raw is not None and not isinstance(raw, (str, bytes, bool, np.bool_)):
            try:
                value = np.asarray(ops.convert_to_numpy(raw))
            except Exception:
                value = None
            if value is not None and value.size == 1 and value.dtype.kind in "fiu":
                return float(value.reshape(()))
        raise self._invalid_rate(int(t), raw)

    def _rates(self, start, count):
        """`schedule(t)` for `t` in `[start, start + count)`, float64 numpy.

        Every value is checked (finite, >= 0) when computed, before training
        uses it: once per epoch (or chunk of steps), in numpy.
        """
        t = np.arange(start, start + count, dtype="int32")
        values = None
        if self._vectorized:
            try:
                raw = np.asarray(ops.convert_to_numpy(self.schedule(t)))
                if raw.shape == t.shape and raw.dtype.kind in "fiu":
                    values = raw.astype("float64")
            except Exception:  # not element-wise: call it once per step
                pass
            if values is None:
                self._vectorized = False
        if values is None:
            values = np.array([self._scalar(s) for s in t], dtype="float64")
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise self._invalid_rate(int(t[i]), float(values[i]))
        return values

    def _rate(self, t):
        i = t - self._cache_start
        if not 0 <= i < len(self._cache):
            count = (self.params or {}).get("steps") or _CHUNK
            self._cache_start = t
            self._cache = self._rates(t, max(int(count), 1))
            i = 0
        return self._cache[i]

    # -- training hooks --------------------------------------------------

    def on_train_begin(self, logs=None):
        self._reset()
        optimizer = self.model.optimizer
        if optimizer is None:
            raise ValueError("ScheduleCallback needs a compiled model.")
        self._lr_variable = _learning_rate_variable(optimizer)
        if self._lr_variable is None:
            learning_rate = getattr(
                getattr(optimizer, "inner_optimizer", optimizer),
                "_learning_rate",
                None,
            )
            raise ValueError(
                "ScheduleCallback sets the optimizer's learning rate, but the "
                f"optimizer `{optimizer.name}` was created with a schedule "
                f"object (learning_rate={learning_rate!r}), whose rate cannot "
                "be set. Either create the optimizer with a float learning "
                "rate, e.g. `keras.optimizers.SGD(learning_rate=0.1)`, and "
                "keep ScheduleCallback, or keep the schedule in the optimizer "
                "and remove ScheduleCallback."
            )

    def on_epoch_begin(self, epoch, logs=None):
        # The training state is attached to the variables at epoch start
        # (on jax, `self.model` syncs it if a callback left it detached).
        model = self.model
        optimizer = model.optimizer
        if keras.backend.backend() == "jax" and self.unit == "step":
            self._jax_groups = _jax_state_variables(model)
        iterations = int(ops.convert_to_numpy(optimizer.iterations))
        current = float(ops.convert_to_numpy(self._lr_variable))
        if self.unit == "epoch":
            t = epoch
        else:
            t = iterations
        self._update_scale(current, iterations, t - 1)
        if self.unit == "epoch":
            value = self._write(self._scale * self._rates(epoch, 1)[0])
        else:
            self._step0 = iterations
            self._last_written = current  # what the optimizer holds now
            value = self._scale * self._rate(t)
        if self.verbose > 0:
            keras.utils.io_utils.print_msg(
                f"\nEpoch {epoch + 1}: ScheduleCallback setting learning rate "
                f"to {value:.6g} (t={t})."
            )

    def on_train_batch_begin(self, batch, logs=None):
        if self.unit == "step":
            value = float(np.float32(self._scale * self._rate(self._step0 + batch)))
            # Unchanged since the previous step (which kept it): nothing to do.
            if value != self._last_written:
                self._write(value)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._last_written is not None:
            logs["learning_rate"] = self._last_written

    # -- internals -------------------------------------------------------

    def _update_scale(self, current, iterations, t_prev):
        if self._last_written is None:
            # First epoch of this fit(): recover the scale of a resumed run.
            self._scale = 1.0
            if iterations > 0 and t_prev >= 0:
                previous = float(self._rates(t_prev, 1)[0])
                if previous > 0 and not _same(current, previous):
                    self._scale = current / previous
        elif self._last_written > 0 and not _same(current, self._last_written):
            # Someone (e.g. ReduceLROnPlateau) changed the rate: keep the factor.
            self._scale *= current / self._last_written

    def _write(self, value):
        value = np.float32(value)
        model = self._model  # not `self.model`: on jax that syncs all state
        variable = self._lr_variable
        if (
            keras.backend.backend() == "jax"
            and not getattr(model, "_jax_state_synced", True)
        ):
            if not _set_variable_during_jax_fit(
                model, self._jax_groups, variable, value
            ):
                model.jax_state_sync()
                variable.assign(value)
        else:
            variable.assign(value)
        self._last_written = float(value)
        return self._last_written
