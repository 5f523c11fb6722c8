"""`ScheduleCallback`: drive the optimizer's learning rate from a schedule."""

import numpy as np
import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from kerasreg import _checks
from kerasreg.callbacks import _in_step

# `unit="step"`: the rates of this many steps are held in the optimizer at a
# time (the rate table read inside the train step). An epoch up to this long
# writes the table once, at its start; a longer one (or one of unknown
# length) refills it when a batch reaches its end.
_TABLE = 2048
# Relative difference under which two float32 rates count as the same value.
_SAME = 1e-6


def _same(a, b):
    return abs(a - b) <= _SAME * max(abs(a), abs(b))


def _learning_rate_variable(optimizer):
    """The optimizer's learning-rate `keras.Variable`, or `None`.

    `optimizer.learning_rate` is that variable for an optimizer created with
    a float rate (a `LossScaleOptimizer` forwards to its inner optimizer),
    and a computed value for one created with a schedule or a callable.
    """
    lr = optimizer.learning_rate
    return lr if isinstance(lr, keras.Variable) else None


def _described_learning_rate(optimizer):
    """What the optimizer was given as `learning_rate` (for messages)."""
    try:
        value = optimizer.get_config().get("learning_rate")
    except Exception:  # pragma: no cover - exotic optimizers
        return "?"
    if isinstance(value, dict):
        return value.get("class_name", value)
    return value


class ScheduleCallback(keras.callbacks.Callback):
    """Sets the optimizer's learning rate from a schedule, per epoch or step.

    At the start of each epoch (`unit="epoch"`, `t` = epoch index) or for
    each training step (`unit="step"`, `t` = global step) the optimizer's
    learning rate is set to `schedule(t)`. Use it for the annealing schedules
    of the cs231n notes applied per epoch ("halve the rate every 5 epochs"),
    for any python `callable(t) -> float`, or to combine a schedule with
    `keras.callbacks.ReduceLROnPlateau`. (To run a `LearningRateSchedule` per
    step you can also pass it as the optimizer's `learning_rate=`; this
    callback gives the same rates and adds resumption, plateau cuts and
    python callables.)

    **Per step, inside the compiled train step.** With `unit="step"` the
    rates of the epoch's steps are computed at the epoch's start, in one
    vectorized call for a `LearningRateSchedule` (once per step for a python
    callable), checked, multiplied by the plateau scale (below) and written
    once into a small rate table (a Keras variable) that the optimizer holds
    while `fit` runs. The train step, wrapped once per `fit`, sets the
    optimizer's learning-rate variable to `table[iterations - first]` before
    its update: there is no python work per batch, on any backend, and any
    `callable(t)` works (it is never traced). With `steps_per_execution > 1`
    every step of an execution gets its own rate. The optimizer keeps its
    own learning-rate variable throughout (`ReduceLROnPlateau` and the like
    keep working); after `fit` it holds the rate of the last step. The table
    is detached from the optimizer when `fit` ends, or, if `fit` is
    interrupted, at the next `fit`, save or load
    (`kerasreg/callbacks/_in_step.py`).

    **Resuming.** The global step is the optimizer's `iterations` counter,
    so it is saved with the model and restored by
    `keras.callbacks.BackupAndRestore`, `model.load_weights` or
    `keras.saving.load_model`. `fit(..., initial_epoch=k)` and a run
    restored by `BackupAndRestore` after an interruption give exactly the
    rates of an uninterrupted run, for both units.

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

    _log_name = "ScheduleCallback"  # names this callback in its messages

    def __init__(self, schedule, unit="epoch", verbose=0):
        super().__init__()
        # The model given to `set_model` (`self.model` syncs the jax
        # training state each time it is read).
        self._given_model = None
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
        # unit="step": the rate table and the `iterations` value of its first
        # entry (Keras variables, held by the optimizer while `fit` runs).
        self._table = None
        self._first = None
        self._in_fit = False
        self._reset()

    def _reset(self):
        self._scale = 1.0
        self._last_written = None
        self._lr_variable = None
        self._table_values = np.zeros((0,), "float32")  # what `_table` holds
        self._table_first = 0  # `iterations` of its entry 0
        self._table_count = 0  # entries that are scheduled rates
        self._epoch_first = 0  # `iterations` at the epoch's start
        self._refill = False  # whether a batch may run past the table

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
        uses it: once per epoch (or table of steps), in numpy.
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

    # -- the in-step seam (unit="step") ----------------------------------

    def _strategy_scope(self):
        strategy = getattr(self._given_model, "distribute_strategy", None)
        if strategy is None:
            import contextlib

            return contextlib.nullcontext()
        return strategy.scope()

    def _new_variable(self, shape, dtype, name, initializer="zeros"):
        return keras.Variable(
            initializer=initializer, shape=shape, dtype=dtype,
            trainable=False, name=name,
        )

    def _prepare(self, model):
        """Creates what `_in_step_variables` lists (subclass hook)."""
        if self._table is None:
            with self._strategy_scope():
                self._table = self._new_variable(
                    (_TABLE,), "float32", "schedule_rates"
                )
                self._first = self._new_variable(
                    (), "int32", "schedule_first_step"
                )

    def _in_step_variables(self):
        """The variables the optimizer holds for this callback during fit."""
        return [self._table, self._first]

    def _attach(self):
        """Registers with the in-step seam (from `set_model`, so that the
        variables are held before any `BackupAndRestore` restores a backup
        that holds them). False when the model has no float-rate optimizer.
        """
        model = self._given_model
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None or _learning_rate_variable(optimizer) is None:
            return False
        if model.built and not optimizer.built:
            # As `BackupAndRestore` does: the optimizer's own variables come
            # before the ones attached.
            with self._strategy_scope():
                optimizer.build(model.trainable_variables)
        self._prepare(model)
        return _in_step.attach(model, self, self._in_step_variables())

    def set_model(self, model):
        super().set_model(model)
        self._given_model = model
        if self.unit == "step":
            self._attach()

    @property
    def _in_step_key(self):
        return (id(self._table), id(self._lr_variable))

    def _in_step_reset(self):
        """The seam closed a `fit` that raised."""
        self._in_fit = False

    def _in_step_wrap(self, train_step):
        """The train step, preceded by setting the learning rate of this
        step from the rate table (for the in-step seam)."""
        model = self._given_model
        optimizer = model.optimizer
        lr = _learning_rate_variable(optimizer)
        iterations = optimizer.iterations
        table, first = self._table, self._first
        last = int(table.shape[0]) - 1

        def rate(table_value, iterations_value, first_value):
            i = ops.cast(iterations_value, "int32") - first_value
            i = ops.clip(i, 0, last)
            return ops.cast(ops.take(table_value, i), lr.dtype)

        if keras.backend.backend() == "jax":
            lr_at, it_at, table_at, first_at = _in_step.state_positions(
                model, [lr, iterations, table, first]
            )

            def step_with_rate(state, data):
                value = rate(
                    _in_step.read_state(state, table_at),
                    _in_step.read_state(state, it_at),
                    _in_step.read_state(state, first_at),
                )
                state = _in_step.write_state(state, [(lr_at, value)])
                return train_step(state, data)

            return step_with_rate

        def step_with_rate(data):
            lr.assign(rate(table.value, iterations.value, first.value))
            return train_step(data)

        return step_with_rate

    def _fill(self, iterations):
        """Writes the rates of the steps from `iterations` on into the table.

        The steps left in the epoch when its length is known (at most
        `_TABLE`), else `_TABLE` steps; the rest of the table repeats the
        last rate. Values are `float32(scale * schedule(t))`.
        """
        steps = (self.params or {}).get("steps")
        if steps:
            left = int(steps) - (iterations - self._epoch_first)
            count = max(1, min(_TABLE, left))
        else:
            count = _TABLE
        rates = np.float32(self._scale * self._rates(iterations, count))
        values = np.full((_TABLE,), rates[-1], dtype="float32")
        values[:count] = rates
        self._table.assign(values)
        self._first.assign(iterations)
        self._table_values = values
        self._table_first = iterations
        self._table_count = count
        self._refill = not steps or (
            int(steps) - (iterations - self._epoch_first) > count
        )
        return float(values[0])

    def _rate_before(self, iterations):
        """The rate the table gave the step before `iterations`, or None."""
        i = iterations - 1 - self._table_first
        if i < 0 or not len(self._table_values):
            return None
        return float(self._table_values[min(i, _TABLE - 1)])  # as in-step

    def _iterations(self):
        # Not `self.model`: on jax that syncs the state (it is
        # synced at epoch boundaries anyway).
        return int(ops.convert_to_numpy(self._given_model.optimizer.iterations))

    # -- training hooks --------------------------------------------------

    def on_train_begin(self, logs=None):
        self._reset()
        optimizer = self.model.optimizer
        if optimizer is None:
            raise ValueError("ScheduleCallback needs a compiled model.")
        self._lr_variable = _learning_rate_variable(optimizer)
        if self._lr_variable is None:
            raise ValueError(
                "ScheduleCallback sets the optimizer's learning rate, but the "
                f"optimizer `{optimizer.name}` was created with a schedule "
                f"object (learning_rate={_described_learning_rate(optimizer)!r})"
                ", whose rate cannot be set. Either create the optimizer with "
                "a float learning rate, e.g. "
                "`keras.optimizers.SGD(learning_rate=0.1)`, and keep "
                "ScheduleCallback, or keep the schedule in the optimizer and "
                "remove ScheduleCallback."
            )
        if self.unit == "step":
            if not _in_step.is_attached(self._given_model, self):
                self._attach()
            self._in_fit = True
            _in_step.begin(self._given_model)

    def on_epoch_begin(self, epoch, logs=None):
        # The training state is attached to the variables at epoch start
        # (on jax, `fit` syncs it at each epoch end).
        iterations = self._iterations()
        current = float(ops.convert_to_numpy(self._lr_variable))
        if self.unit == "epoch":
            t = epoch
        else:
            t = iterations
        self._update_scale(current, iterations, t - 1)
        if self.unit == "epoch":
            value = self._write(self._scale * self._rates(epoch, 1)[0])
        else:
            self._last_written = current  # what the optimizer holds now
            self._epoch_first = iterations
            value = self._fill(iterations)
        if self.verbose > 0:
            # As `keras.callbacks.LearningRateScheduler` words it.
            print(
                f"\nEpoch {epoch + 1}: {self._log_name} setting learning rate "
                f"to {value:.6g} (t={t}).",
                flush=True,
            )

    def on_train_batch_begin(self, batch, logs=None):
        # Only an epoch longer than the table (or of unknown length) needs
        # this: a refill once per `_TABLE` steps.
        if self._refill:
            model = self._given_model
            span = batch + (getattr(model, "steps_per_execution", 1) or 1)
            if self._epoch_first + span > self._table_first + self._table_count:
                if keras.backend.backend() == "jax":
                    # The jax state carries the table during the epoch: put
                    # the state back into the variables (the next step then
                    # takes it from them), and update the table.
                    model.jax_state_sync()
                self._fill(self._iterations())

    def on_epoch_end(self, epoch, logs=None):
        if self.unit == "step" and self._lr_variable is not None:
            rate = self._rate_before(self._iterations())
            if rate is not None:
                self._last_written = rate
        if logs is not None and self._last_written is not None:
            logs["learning_rate"] = self._last_written

    def on_train_end(self, logs=None):
        self._in_fit = False
        if self.unit == "step":
            _in_step.release(self._given_model, self)

    def _end_of_inference(self):
        if self.unit == "step" and not self._in_fit:
            # `evaluate`/`predict` called `set_model`, which attached the
            # table to the optimizer: leave the optimizer as it was.
            _in_step.release(self._given_model, self)

    def on_test_end(self, logs=None):
        self._end_of_inference()

    def on_predict_end(self, logs=None):
        self._end_of_inference()

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
        """unit="epoch": sets the rate (at an epoch start, outside the step)."""
        value = np.float32(value)
        self._lr_variable.assign(value)
        self._last_written = float(value)
        return self._last_written
