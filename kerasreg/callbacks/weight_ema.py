"""Exponential moving average of the weights, updated inside the train step.

How it is fast (design notes)
-----------------------------
A callback that reads the weights in `on_train_batch_end` and updates the
average with eager ops costs about 1.9x the fit time of a small MLP, and on
the jax backend it must also call `model.jax_state_sync()` every batch. This
callback does no per-batch Python work at all:

* The shadow weights and two counters (steps since the start of the run and
  number of averaging updates done) are Keras variables **tracked by the
  model's optimizer** for the duration of `fit`, through the in-step seam
  (`kerasreg/callbacks/_in_step.py`, shared with `SnapshotCallback`). On the jax backend the
  trainer threads `optimizer.variables` through the jit-compiled train step,
  so the shadows live in the compiled state like Adam's moments; on every
  backend `model.save_weights` (hence `BackupAndRestore`) stores them with the
  optimizer state, so an interrupted run resumes exactly.
* At `on_train_begin` the seam wraps the model's `train_step` and rebuilds
  the train function once (`make_train_function(force=True)`); the wrapped
  step runs the original step and then the average update in the same
  compiled function (`jax.jit` / `tf.function`). On jax the update is a pure
  function of the returned state (the optimizer's own `use_ema` can only see
  trainable variables, while this sees the BatchNorm statistics too); on
  other backends it assigns the shadow variables. With `every > 1` or
  `start_step > 0` the update sits in `keras.ops.cond`, so skipped steps cost
  only a counter increment. The compiled function is cached and reused by
  later `fit` calls; at `on_train_end` the model's own train function is put
  back and the shadows are detached from the optimizer, so a saved model or a
  later plain `fit` is exactly as without the callback (unlike the
  optimizer's `use_ema`, a second `fit` works on every backend).
* Under `tf.distribute` the shadows are `on_read` variables aggregated with
  `only_first_replica`: each replica updates its own copy locally (the
  replicas' weights are identical after the all-reduced step), with no
  cross-replica synchronisation inside the step.

* An unbuilt model (a `Sequential` without `keras.Input`, which the
  tensorflow backend builds in the first train step, after
  `on_train_begin`) gets its state inside that first step, while it is
  traced: the model is built from the batch's shapes as Keras builds it,
  then the optimizer, then the shadows, which the step sets to the weights
  before its update when the step counter is 0. (On jax, Keras builds the
  model before the callbacks run.)
* If `fit` is interrupted (an exception in a callback, Ctrl-C), Keras calls
  no `on_train_end`; the seam closes the run at the next contact: the next
  `fit`/`evaluate`/`predict` with this callback, or a `model.save`,
  `save_weights` or `load_weights` made outside `fit`. The model's own train
  function is put back and the state is detached, so a model saved after an
  interrupted `fit` holds no kerasreg variable and loads with its optimizer
  state, and the next `fit` starts a fresh average (unless
  `BackupAndRestore` restores the interrupted run).
"""

import functools

import keras
from keras import ops

from kerasreg import _checks
from kerasreg import _compat
from kerasreg._cloning import clone_uncompiled
from kerasreg._registry import register
from kerasreg.callbacks import _in_step


def _batchnorm_statistics(model):
    """ids of the moving mean/variance of every BatchNormalization layer."""
    ids = set()
    for layer in _compat.sublayers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.built:
            ids.add(id(layer.moving_mean))
            ids.add(id(layer.moving_variance))
    return ids


@register
class WeightEMA(_in_step.InStepCallback):
    """Keeps an exponential moving average (EMA) of the model's weights.

    "Maintain a second copy of the network weights in memory that keeps an
    exponentially decaying sum of previous weights": evaluating with this
    average (Polyak averaging) is almost always a little better than with
    the final weights. Optimizer steps count from 1; after step `s`, when
    `s > start_step` and `(s - start_step) % every == 0`:

    `shadow = d * shadow + (1 - d) * w`

    with the weights `w` after that step. With `warmup=True`,
    `d = min(decay, (1 + n) / (10 + n))` where `n` is the number of updates
    done so far (the TensorFlow `MovingAverage` rule; compare timm's
    `ModelEmaV3` warmup). The shadows start as a copy of the weights at the
    start of each `fit`, and follow the weights (a copy, as timm's
    `update_after_step`) for the first `start_step` steps.

    Trainable float weights are averaged, and the moving mean and variance
    of every `keras.layers.BatchNormalization` layer (subclasses included)
    when `include_batchnorm_statistics=True`; every other variable (integer
    counters, seed states, frozen weights) is taken as it is.

    The update runs inside the compiled train step (see the module notes),
    so it costs about what the optimizer's own `use_ema` costs, and its
    state (shadows, counters) is saved with the optimizer by
    `BackupAndRestore`, so a resumed run equals an uninterrupted one.

    Which weights the model holds:

    - during `fit`, training always uses the raw weights; with
      `swap_on_evaluate=True` the validation at the end of each epoch runs
      on the EMA weights (swapped in, then swapped back);
    - `model.evaluate(..., callbacks=[ema])` and
      `model.predict(..., callbacks=[ema])` after `fit` also run on the EMA
      weights of the last `fit` when `swap_on_evaluate=True`;
    - with `apply_at_end=True` the model keeps the EMA weights after `fit`;
    - `averaged_model()` returns a new, uncompiled model holding the EMA
      weights (cloned without the compile config, so unregistered losses
      and custom layers work) and `shadow_weights()` returns them as numpy
      arrays, whatever the above.

    An unbuilt model (a `Sequential` without `keras.Input`) works: its
    average starts from the weights it is built with. After an interrupted
    `fit`, the next `fit` starts a fresh average and a saved model holds no
    state of this callback (see the module notes).

    Args:
        decay: Float in (0, 1). Decay `d` of the average. Defaults to
            `0.999`.
        warmup: Boolean. Whether to use `min(decay, (1 + n) / (10 + n))` as
            decay, so that early weights are forgotten quickly. Defaults to
            `False`.
        every: Integer >= 1. Update the average every `every` steps.
            Defaults to `1`.
        start_step: Integer >= 0. Steps during which the average just
            copies the weights. Defaults to `0`.
        swap_on_evaluate: Boolean. Whether validation, `evaluate` and
            `predict` run on the EMA weights. Defaults to `True`.
        apply_at_end: Boolean. Whether the model keeps the EMA weights at the
            end of `fit`. Defaults to `False`.
        include_batchnorm_statistics: Boolean. Whether to average the
            BatchNormalization moving statistics too (otherwise they are
            taken from the model as they are). Defaults to `True`.

    Example:

    ```python
    import numpy as np
    import keras
    import kerasreg

    x = np.random.rand(256, 8).astype("float32")
    y = (x.sum(axis=1) > 4).astype("int32")
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    ema = kerasreg.WeightEMA(decay=0.99, warmup=True)
    model.fit(x, y, epochs=2, validation_split=0.25, callbacks=[ema],
              verbose=0)
    averaged = ema.averaged_model()   # a new model with the EMA weights
    ```
    """

    def __init__(
        self,
        decay=0.999,
        warmup=False,
        every=1,
        start_step=0,
        swap_on_evaluate=True,
        apply_at_end=False,
        include_batchnorm_statistics=True,
    ):
        super().__init__()
        self.decay = _checks.float_between("decay", decay, 0, 1)
        self.warmup = _checks.boolean("warmup", warmup)
        self.every = _checks.int_at_least("every", every, 1)
        self.start_step = _checks.int_at_least("start_step", start_step, 0)
        self.swap_on_evaluate = _checks.boolean("swap_on_evaluate", swap_on_evaluate)
        self.apply_at_end = _checks.boolean("apply_at_end", apply_at_end)
        self.include_batchnorm_statistics = _checks.boolean(
            "include_batchnorm_statistics", include_batchnorm_statistics
        )

        self._owner = None  # the model the variables below belong to
        self._averaged = []  # model variables that are averaged
        self._shadows = []  # their shadows (Keras variables)
        self._step = None  # steps since the start of the run
        self._count = None  # averaging updates done so far
        self._running = None  # 1 while a run is in progress (for resume)
        self._lazy = False  # state created inside the first train step
        self._has_average = False  # shadows hold a finished/ongoing average
        self._swapped = None

    def get_config(self):
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "every": self.every,
            "start_step": self.start_step,
            "swap_on_evaluate": self.swap_on_evaluate,
            "apply_at_end": self.apply_at_end,
            "include_batchnorm_statistics": self.include_batchnorm_statistics,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------ state

    def _strategy_scope(self):
        strategy = getattr(self.model, "distribute_strategy", None)
        if strategy is None:
            import contextlib

            return contextlib.nullcontext()
        return strategy.scope()

    def _create_state(self, running="zeros"):
        model = self._given_model
        bn_ids = (
            _batchnorm_statistics(model)
            if self.include_batchnorm_statistics
            else set()
        )
        trainable_ids = {id(v) for v in model.trainable_variables}
        self._averaged = [
            v
            for v in model.weights
            if keras.backend.is_float_dtype(v.dtype)
            and (id(v) in trainable_ids or id(v) in bn_ids)
        ]
        with self._strategy_scope():
            self._shadows = [
                _in_step.state_variable(v.shape, v.dtype, f"weight_ema_{i}")
                for i, v in enumerate(self._averaged)
            ]
            self._step = _in_step.state_variable(
                (), "int32", "weight_ema_step"
            )
            self._count = _in_step.state_variable(
                (), "int32", "weight_ema_count"
            )
            self._running = _in_step.state_variable(
                (), "int32", "weight_ema_running", running
            )
        self._owner = model
        self._has_average = False
        self._lazy = False

    def _create_state_in_step(self):
        """State for a model that its first train step builds (tensorflow).

        The shadows are set to the weights inside the step, before its
        update (`_lazy`).
        """
        # A run is in progress from the start (no `assign` in the step).
        self._create_state(running="ones")
        self._lazy = True
        self._has_average = True

    def _state_variables(self):
        return self._shadows + [self._step, self._count, self._running]

    def _has_state(self):
        return self._owner is self._given_model and self._step is not None

    def _in_step_reset(self):
        """The seam closed a `fit` that raised: the run is over."""
        self._in_fit = False
        if self._swapped is not None:
            self._swap_out()
        if self._running is not None:
            self._running.assign(0)

    @property
    def _in_step_key(self):
        return (id(self._shadows), self._lazy)

    # ----------------------------------------------------------- the update

    def _decay(self, count):
        d = ops.convert_to_tensor(self.decay, "float32")
        if self.warmup:
            n = ops.cast(count, "float32")
            d = ops.minimum(d, (1.0 + n) / (10.0 + n))
        return d

    def _rate_and_count(self, count, copy_phase):
        """`1 - d` for this update and the new update count."""
        d = self._decay(count)
        if copy_phase is not None:
            d = ops.where(copy_phase, ops.zeros_like(d), d)
            count = count + ops.cast(ops.logical_not(copy_phase), "int32")
        else:
            count = count + 1
        return 1.0 - d, count

    def _blend(self, shadows, weights, count, copy_phase):
        """New shadow values and update count (pure function)."""
        rate, count = self._rate_and_count(count, copy_phase)
        rates = {}
        new = []
        for s, w in zip(shadows, weights):
            if s.dtype not in rates:
                rates[s.dtype] = ops.cast(rate, s.dtype)
            new.append(s + (w - s) * rates[s.dtype])
        return new, count

    def _schedule(self, step):
        """(is this step an update or copy step, is it a copy step) or None."""
        if self.every == 1 and self.start_step == 0:
            return None, None
        copy_phase = ops.less_equal(step, self.start_step)
        due = ops.logical_or(
            copy_phase,
            ops.equal(ops.mod(step - self.start_step, self.every), 0),
        )
        if self.start_step == 0:
            copy_phase = None
        return due, copy_phase

    def _functional_step(self, train_step):
        """Wraps a jax-style `train_step(state, data)`."""
        positions = functools.partial(_in_step.state_positions, self._given_model)
        weights_at = positions(self._averaged)
        shadows_at = positions(self._shadows)
        step_at, count_at = positions([self._step, self._count])

        def step_with_ema(state, data):
            logs, state = train_step(state, data)
            read = functools.partial(_in_step.read_state, state)
            weights = [read(at) for at in weights_at]
            shadows = [read(at) for at in shadows_at]
            count = read(count_at)
            step = read(step_at) + 1
            due, copy_phase = self._schedule(step)
            shadows, count = _in_step.when(
                due,
                lambda: self._blend(shadows, weights, count, copy_phase),
                lambda: (shadows, count),
            )
            updates = list(zip(shadows_at, shadows))
            updates += [(step_at, step), (count_at, count)]
            return logs, _in_step.write_state(state, updates)

        return step_with_ema

    def _stateful_step(self, train_step):
        """Wraps a stateful `train_step(data)` (tensorflow, torch)."""

        def update(copy_phase):
            rate, count = self._rate_and_count(self._count.value, copy_phase)
            rates = {}
            for s, v in zip(self._shadows, self._averaged):
                if s.dtype not in rates:
                    rates[s.dtype] = ops.cast(rate, s.dtype)
                s.assign_add((v.value - s.value) * rates[s.dtype])
            self._count.assign(count)

        def copy():
            for s, v in zip(self._shadows, self._averaged):
                s.assign(v.value)

        def step_with_ema(data):
            if self._lazy:
                # The first step of a fresh run starts the shadows from the
                # weights, which did not exist at `on_train_begin`.
                _in_step.when(ops.equal(self._step.value, 0), copy)
            logs = train_step(data)
            step = self._step.value + 1
            self._step.assign(step)
            due, copy_phase = self._schedule(step)
            _in_step.when(due, lambda: update(copy_phase))
            return logs

        return step_with_ema

    # -------------------------------------------------------------- hooks

    def on_train_begin(self, logs=None):
        self._begin_fit()
        if self._swapped is not None:
            self._swap_out()
        if not self._has_state():
            # Unbuilt model: the state is created by the first train step.
            self._has_average = True
            _in_step.begin(self._given_model)
            return
        if int(ops.convert_to_numpy(self._running)) == 0:
            # A fresh run (a run restored by BackupAndRestore has 1 here).
            for s, v in zip(self._shadows, self._averaged):
                s.assign(ops.copy(v.value))
            self._step.assign(0)
            self._count.assign(0)
            self._running.assign(1)
        self._has_average = True
        _in_step.begin(self._given_model)

    def on_train_end(self, logs=None):
        self._end_fit()
        if not self._has_state():  # no step ran
            self._has_average = False
            return
        self._running.assign(0)
        if self._swapped is not None:
            self._swap_out()
        if self.apply_at_end:
            for v, s in zip(self._averaged, self._shadows):
                v.assign(ops.copy(s.value))

    def _swap_in(self):
        if not (self.swap_on_evaluate and self._has_average):
            return
        if self._swapped is not None or self._owner is not self.model:
            return
        self._swapped = [ops.copy(v.value) for v in self._averaged]
        for v, s in zip(self._averaged, self._shadows):
            v.assign(ops.copy(s.value))

    def _swap_out(self):
        for v, raw in zip(self._averaged, self._swapped):
            v.assign(raw)
        self._swapped = None

    def _end_of_inference(self):
        if self._swapped is not None:
            self._swap_out()
        super()._end_of_inference()

    def on_test_begin(self, logs=None):
        self._swap_in()

    def on_predict_begin(self, logs=None):
        self._swap_in()

    # ------------------------------------------------------------- results

    def shadow_weights(self):
        """The EMA weights as numpy arrays, in `model.weights` order.

        Averaged variables take their shadow value, every other variable its
        current value.
        """
        if self.model is None or not self._has_average:
            raise ValueError(
                "WeightEMA has no averaged weights yet: pass it to "
                "`model.fit(..., callbacks=[ema])` first."
            )
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        shadow_of = {id(v): s for v, s in zip(self._averaged, self._shadows)}
        return [
            ops.convert_to_numpy(shadow_of.get(id(v), v))
            for v in self.model.weights
        ]

    def averaged_model(self):
        """A new model (same architecture, not compiled) with the EMA weights."""
        weights = self.shadow_weights()
        clone = clone_uncompiled(self.model)
        clone.set_weights(weights)
        return clone
