"""The in-step seam: kerasreg state in the optimizer, work in the train step.

Per-step work belongs in the compiled train step, and training state that
must survive a resume is saved with the optimizer (see ARCHITECTURE.md).
The callbacks that need either (`WeightEMA`, `ScheduleCallback(unit="step")`
and its subclass `SnapshotCallback`, `UpdateRatioMonitor`) go through this
one module, which keeps, per model:

* **Attached variables.** `attach(model, owner, variables)` makes the
  model's optimizer track `variables` (as the optimizer tracks its own
  slots, `_compat.track_optimizer_variable`; Keras has no public way): on
  jax the trainer then threads them through the jit-compiled step like
  Adam's moments, and `model.save_weights` (hence `BackupAndRestore`) saves
  them with the optimizer, so an interrupted run resumes exactly. `release`
  untracks them. Variables are appended after the optimizer's own (the
  optimizer is built first), so its own variables keep their positions.
* **One wrapped train step.** At the first `begin(model)` of a `fit` (from
  an `on_train_begin`), the step wraps of every attached owner
  (`owner._in_step_wrap(train_step) -> train_step`, optional) are composed
  around the model's `train_step` and the train function is compiled once
  (`make_train_function(force=True)`); it is cached and reused by later
  `fit` calls with the same owners. The model's own train function is put
  back when the last owner is released. On jax, owners whose work is
  sparse (`owner._in_step_busy(iteration, steps)`) also get a step without
  their work, run on the calls where none of it is due (`_Dispatch`).
* **Every way out of `fit`.** Keras calls no callback when `fit` raises (an
  exception in a callback, Ctrl-C), and a callback cannot wrap the `fit`
  call it is part of. A session left open by such a `fit` is therefore
  closed at the next contact: the next `attach` (the `set_model` of the
  next `fit`, `evaluate` or `predict` with one of these callbacks), or a save
  or load of the optimizer's variables (`model.save`, `save_weights`,
  `load_weights`, through a guard on the optimizer's `save_own_variables` /
  `load_own_variables` installed while variables are attached) made while
  no `fit`, `evaluate` or `predict` of the model is running (the call stack
  is inspected: `BackupAndRestore` saving inside `fit` keeps the variables).
  Closing restores the model's train function, untracks every variable and
  calls each owner's `_in_step_reset()` (e.g. WeightEMA marks its run as
  finished, so the next `fit` starts afresh). A model saved after an
  interrupted `fit` thus holds no kerasreg variable and loads with its
  optimizer state.
* **The callback side.** `InStepCallback`, the base of `WeightEMA` and
  `UpdateRatioMonitor`, does the protocol above for a callback (attach at
  `set_model`, state created in the first step of a model it builds, one
  wrap per backend, release after `evaluate`/`predict`);
  `state_variable` makes its variables and `when(due, update)` runs its
  update on the steps that are due, under `keras.ops.cond`.
* **The jax step's state.** On jax the wrapped step is a pure function of
  the state the trainer threads through it (trainable, non-trainable,
  optimizer and metrics variables' values); `state_positions`,
  `read_state` and `write_state` find, read and replace a variable's value
  there, by the variable's place in those public lists.
"""

import sys
import weakref

import keras
from keras import ops

from kerasreg import _compat

_SEAMS = weakref.WeakKeyDictionary()
_LOOPS = ("fit", "evaluate", "predict")


def _seam(model):
    seam = _SEAMS.get(model)
    if seam is None:
        seam = _SEAMS[model] = _Seam(model)
    return seam


def _loop_running(model):
    """Whether a `fit`/`evaluate`/`predict` of `model` is on the call stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in _LOOPS:
            try:
                if frame.f_locals.get("self") is model:
                    return True
            except Exception:  # pragma: no cover - exotic frames
                pass
        frame = frame.f_back
    return False


class _Seam:
    def __init__(self, model):
        self._model = weakref.ref(model)
        self.owners = {}  # id(owner) -> owner
        self.variables = {}  # id(owner) -> variables tracked for it
        self.optimizer = None  # the optimizer tracking them
        self.fitting = False  # between the first begin and the last release
        self.original = None  # the model's train function, while ours runs
        self.cache = None  # (model's function, ours, key)

    @property
    def model(self):
        return self._model()

    # ----------------------------------------------------------- variables

    def _track(self, variables):
        tracked = {id(v) for v in self.optimizer.variables}
        for variable in variables:
            if id(variable) not in tracked:
                _compat.track_optimizer_variable(self.optimizer, variable)

    def _untrack(self, variables):
        for variable in variables:
            _compat.untrack_optimizer_variable(self.optimizer, variable)

    def _guard(self, optimizer):
        _compat.guard_optimizer_saving(optimizer, self.close_if_abandoned)

    def _unguard(self, optimizer):
        _compat.unguard_optimizer_saving(optimizer)

    def set_optimizer(self, optimizer):
        if optimizer is self.optimizer:
            return
        if self.optimizer is not None:
            for variables in self.variables.values():
                self._untrack(variables)
            self._unguard(self.optimizer)
        self.optimizer = optimizer
        self._guard(optimizer)
        for variables in self.variables.values():
            self._track(variables)

    def add(self, owner, variables):
        self.owners[id(owner)] = owner
        known = self.variables.setdefault(id(owner), [])
        ids = {id(v) for v in known}
        new = [v for v in variables if id(v) not in ids]
        known.extend(new)
        self._track(new)

    def release(self, owner):
        self.owners.pop(id(owner), None)
        variables = self.variables.pop(id(owner), [])
        if self.optimizer is not None:
            self._untrack(variables)
        if not self.owners:
            self._restore_train_function()
            self.fitting = False
            if self.optimizer is not None:
                self._unguard(self.optimizer)
                self.optimizer = None

    # ------------------------------------------------------ train function

    def begin(self):
        if self.fitting:
            return
        self.fitting = True
        model = self.model
        wraps = [
            (id(o), o._in_step_wrap)
            for o in self.owners.values()
            if hasattr(o, "_in_step_wrap")
        ]
        if not wraps:
            return
        original = model.train_function
        key = (
            tuple(i for i, _ in wraps),
            id(model.optimizer),
            tuple(getattr(o, "_in_step_key", None) for o in self.owners.values()),
        )
        if (
            self.cache is not None
            and self.cache[0] is original
            and self.cache[2] == key
        ):
            _compat.set_train_function(model, self.cache[1])
            self.original = original
            return
        function = self._compile([wrap for _, wrap in wraps])
        sparse = [
            o for o in self.owners.values() if hasattr(o, "_in_step_busy")
        ]
        iterations = model.optimizer.iterations
        if (
            keras.backend.backend() == "jax"
            and sparse
            and isinstance(iterations, keras.Variable)
        ):
            dense = [
                o._in_step_wrap
                for o in self.owners.values()
                if hasattr(o, "_in_step_wrap") and o not in sparse
            ]
            function = _Dispatch(
                function,
                self._compile(dense),
                state_positions(model, [iterations])[0],
                [o._in_step_busy for o in sparse],
                self._model,
            )
        _compat.set_train_function(model, function)
        self.cache = (original, function, key)
        self.original = original

    def _compile(self, wraps):
        model = self.model
        step = model.train_step
        for wrap in wraps:
            step = wrap(step)
        return _compat.compile_train_function(model, step)

    def _restore_train_function(self):
        if self.original is not None:
            if isinstance(self.cache[1], _Dispatch):
                self.cache[1].forget()
            _compat.set_train_function(self.model, self.original)
            self.original = None

    # ------------------------------------------------------------- closing

    def close(self):
        """Closes a session left open by an interrupted `fit`."""
        model = self.model
        if keras.backend.backend() == "jax" and model is not None:
            model.jax_state_sync()
        owners = list(self.owners.values())
        for owner in owners:
            self.release(owner)
        for owner in owners:
            reset = getattr(owner, "_in_step_reset", None)
            if reset is not None:
                reset()

    def close_if_abandoned(self):
        model = self.model
        if self.owners and model is not None and not _loop_running(model):
            self.close()


class _Dispatch:
    """A jax train function that runs the owners' sparse work only when due.

    On jax the train step's state is donated: a step that compares the
    weights it received with those it produced (`UpdateRatioMonitor`) makes
    XLA copy every weight at every step, measured or not, because the
    updated weights are written into the buffers of the old ones. Owners
    whose work is sparse say, from the optimizer's iteration count, which
    calls are `busy` (`owner._in_step_busy(iteration, steps) -> bool`);
    the other calls run a second compiled step without their work (compiled
    on first use: `every=1` never compiles it). The count is read from the
    state when a call receives a state that the previous call did not
    return (the first step of each epoch, a callback that synced the state)
    and counted on the host in between, so no call waits for the device.
    The busy step still tests each step on the device, so a count that is
    off can only skip work, never add any.
    """

    def __init__(self, busy, idle, iteration_at, owners_busy, model_ref):
        self._busy = busy
        self._idle = idle
        self._iteration_at = iteration_at
        self._owners_busy = owners_busy
        self._model = model_ref  # a weak reference
        self._iteration = 0  # optimizer steps before the next call
        self._state = None  # the state the last call returned

    def __call__(self, state, iterator):
        if state is not self._state:
            self._iteration = int(read_state(state, self._iteration_at))
        # Read at each call, as Keras' own loop (`iterator_step`) does.
        steps = getattr(self._model(), "steps_per_execution", 1) or 1
        first = self._iteration
        self._iteration += steps
        busy = any(b(first, steps) for b in self._owners_busy)
        logs, state = (self._busy if busy else self._idle)(state, iterator)
        self._state = state
        return logs, state

    def forget(self):
        """Drops the reference to the last state (at the end of a fit)."""
        self._state = None


# ------------------------------------------------------------------ public


def build_in_step(model, data):
    """Builds `model` and its optimizer from a train step's batch `data`.

    For state created inside the first train step of a model that this step
    builds (a `Sequential` without `keras.Input` on tensorflow): the model is
    built symbolically from the batch's shapes, as Keras builds it, then the
    optimizer.
    """
    if not model.built:
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        model(
            keras.tree.map_structure(
                lambda t: keras.KerasTensor(
                    tuple(t.shape), keras.backend.standardize_dtype(t.dtype)
                ),
                x,
            )
        )
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)



def state_variable(shape, dtype, name, initializer="zeros"):
    """A Keras variable for state that a train step updates in place.

    Not trainable. Under `tf.distribute` it is an `on_read` variable
    aggregated with `only_first_replica`: each replica updates its own copy
    inside the step (the replicas' weights are identical after the
    all-reduced step), with no cross-replica synchronisation.

    Args:
        shape: Tuple of integers, the variable's shape.
        dtype: String, the variable's dtype.
        name: String, the variable's name.
        initializer: Initializer or its name. Defaults to `"zeros"`.

    Returns:
        A `keras.Variable`.
    """
    return keras.Variable(
        initializer=initializer,
        shape=shape,
        dtype=dtype,
        trainable=False,
        aggregation="only_first_replica",
        synchronization="on_read",
        name=name,
    )


def when(due, update, otherwise=None):
    """Runs `update()` in a compiled train step on the steps that are `due`.

    For per-step work done one step out of `every`: the work sits in
    `keras.ops.cond`, so a step that is not due costs only the test.

    Args:
        due: A boolean scalar tensor, or `None` for every step (then
            `update()` runs as is, without `keras.ops.cond`).
        update: Callable without arguments. Either pure, returning new
            values, or stateful, assigning variables (its result is then
            ignored).
        otherwise: For a pure `update`, a callable without arguments that
            returns the values to keep when the step is not due (the same
            structure as `update()`'s). `None` for a stateful `update`.
            Defaults to `None`.

    Returns:
        The values of the branch taken for a pure `update`, else `None`.

    Example:

    ```python
    import keras
    from kerasreg.callbacks import _in_step

    count = keras.ops.convert_to_tensor(3)
    due = keras.ops.equal(keras.ops.mod(count, 2), 0)
    count = _in_step.when(due, lambda: count + 1, lambda: count)  # 3
    ```
    """
    if due is None:
        return update()
    if otherwise is not None:
        return ops.cond(due, update, otherwise)

    def run():
        update()
        return ops.zeros((), "int32")

    ops.cond(due, run, lambda: ops.zeros((), "int32"))
    return None


class InStepCallback(keras.callbacks.Callback):
    """Base of the callbacks whose state and per-step work use this seam.

    For a callback that keeps state in Keras variables tracked by the
    optimizer during `fit` and updates it inside the compiled train step
    (`WeightEMA`, `UpdateRatioMonitor`). This class attaches the state at
    `set_model` (before any `on_train_begin`, so that a `BackupAndRestore`
    anywhere in the callback list finds it tracked), creates it inside the
    first train step of a model that this step builds, wraps the train step
    for the backend, and releases the state after an `evaluate` or `predict`
    outside `fit`.

    A subclass implements, for the model `self._given_model` (the model given to
    `set_model`; `self.model` syncs the jax training state at each read):

    * `_create_state()`: creates the state variables (in
      `self._strategy_scope()`);
    * `_has_state()`: whether they exist for `self._given_model`;
    * `_state_variables()`: the list of them;
    * `_strategy_scope()`: the model's distribution strategy scope;
    * `_functional_step(train_step)`: wraps a jax `train_step(state, data)`;
    * `_stateful_step(train_step)`: wraps a `train_step(data)` (tensorflow,
      torch), the state existing when the wrapped step runs.

    Its `on_train_begin` calls `_begin_fit()`, then `begin(self._given_model)`;
    its `on_train_end` calls `_end_fit()` (`self._in_fit` is True between
    the two). It may override `_create_state_in_step()` (the state of a
    model built by its first train step; `_create_state()` by default).

    Example:

    ```python
    from kerasreg.callbacks import _in_step

    class StepCounter(_in_step.InStepCallback):
        def __init__(self):
            super().__init__()
            self._count = None

        def _create_state(self):
            self._count = _in_step.state_variable((), "int32", "steps")

        def _has_state(self):
            return self._count is not None

        def _state_variables(self):
            return [self._count]

        # ... `_strategy_scope`, `_functional_step`, `_stateful_step`,
        # `on_train_begin` and `on_train_end`.
    ```
    """

    def __init__(self):
        super().__init__()
        # The model, as given to `set_model` (`self.model` syncs the jax
        # training state each time it is read).
        self._given_model = None
        self._in_fit = False

    def set_model(self, model):
        super().set_model(model)
        self._given_model = model
        # Before any `on_train_begin`: the state must be tracked by then so
        # that a `BackupAndRestore` anywhere in the list finds it.
        self._attach()

    def _attach(self):
        """Registers with the seam; the optimizer tracks the state.

        Returns False for a model without optimizer. An unbuilt model (a
        `Sequential` without `keras.Input` on tensorflow, built by its first
        train step) gets its state inside that step (`_create_lazily`).
        """
        model = self._given_model
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            return False
        if model.built:
            if not optimizer.built:
                # As `BackupAndRestore` does: the optimizer state must exist
                # before a backup can be restored into it, and the
                # optimizer's own variables come before ours.
                with self._strategy_scope():
                    optimizer.build(model.trainable_variables)
            if not self._has_state():
                self._create_state()
        variables = self._state_variables() if self._has_state() else []
        return attach(model, self, variables)

    def _create_state_in_step(self):
        """Creates the state of a model built by its first train step."""
        self._create_state()

    def _create_lazily(self, data):
        """State for a model that its first train step builds (tensorflow).

        Called while that step is traced: the model is built from the
        batch's shapes (symbolically, as Keras builds it), the optimizer is
        built, and the state is created and tracked.
        """
        model = self._given_model
        build_in_step(model, data)
        self._create_state_in_step()
        add_variables(model, self, self._state_variables())

    def _in_step_wrap(self, train_step):
        """The train step with this callback's work (for the seam)."""
        if keras.backend.backend() == "jax":
            return self._functional_step(train_step)
        step = self._stateful_step(train_step)

        def step_with_state(data):
            if not self._has_state():
                self._create_lazily(data)
            return step(data)

        return step_with_state

    def _begin_fit(self):
        """From `on_train_begin`, before `begin`: the state is attached.

        Attaches it if `set_model` could not (no optimizer yet); raises a
        `ValueError` for a model without optimizer.
        """
        if not is_attached(self._given_model, self) and not self._attach():
            raise ValueError(
                f"{type(self).__name__} needs a compiled model; use it as a "
                "`model.fit()` callback."
            )
        self._in_fit = True

    def _end_fit(self):
        """From `on_train_end`: the state is detached from the optimizer."""
        self._in_fit = False
        release(self._given_model, self)

    def _end_of_inference(self):
        if not self._in_fit:
            # `evaluate`/`predict` called `set_model`, which attached the
            # state to the optimizer: leave the optimizer as it was.
            release(self._given_model, self)

    def on_test_end(self, logs=None):
        self._end_of_inference()

    def on_predict_end(self, logs=None):
        self._end_of_inference()


def attach(model, owner, variables=()):
    """Tracks `variables` of `owner` in `model.optimizer` (from `set_model`).

    A session left open by an interrupted `fit` is closed first. Returns
    False when the model has no optimizer.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return False
    seam = _seam(model)
    if seam.fitting:
        # `set_model` runs before any `on_train_begin`: a session still
        # fitting here belongs to a `fit` that raised.
        seam.close()
    seam.set_optimizer(optimizer)
    seam.add(owner, variables)
    return True


def add_variables(model, owner, variables):
    """Tracks more variables of an attached owner (state created lazily)."""
    seam = _seam(model)
    seam.set_optimizer(model.optimizer)
    seam.add(owner, variables)


def begin(model):
    """From `on_train_begin`: installs the wrapped train step (once per fit)."""
    _seam(model).begin()


def release(model, owner):
    """From `on_train_end` (or the end of `evaluate`/`predict`)."""
    seam = _SEAMS.get(model)
    if seam is not None:
        seam.release(owner)


def is_attached(model, owner):
    seam = _SEAMS.get(model)
    return seam is not None and id(owner) in seam.owners


# ------------------------------------------------- the jax train step's state

# The groups of the state the jax trainer threads through `train_step(state,
# data)`, in its order (keras/src/backend/jax/trainer.py).
_STATE_GROUPS = (
    "trainable_variables",
    "non_trainable_variables",
    "optimizer_variables",
    "metrics_variables",
)


def state_positions(model, variables):
    """Where each of `variables` sits in the state of the jax train step.

    Returns one `(group, index)` per variable, `group` indexing
    `(trainable, non-trainable, optimizer, metrics)` variables as the jax
    trainer orders them. Raises `ValueError` for a variable that the state
    does not carry.
    """
    groups = (
        model.trainable_variables,
        model.non_trainable_variables,
        model.optimizer.variables,
        model.metrics_variables,
    )
    where = {}
    for g, group in enumerate(groups):
        for i, variable in enumerate(group):
            where.setdefault(id(variable), (g, i))
    missing = [v.path for v in variables if id(v) not in where]
    if missing:
        raise ValueError(
            f"The train step's state does not carry the variables {missing}."
        )
    return [where[id(v)] for v in variables]


def read_state(state, position):
    """The value of the variable at `position` in a jax train step's state."""
    group, index = position
    return state[group][index]


def write_state(state, updates):
    """A new state with `updates` (`(position, value)` pairs) applied."""
    groups = [list(g) if g is not None else g for g in state]
    for (group, index), value in updates:
        groups[group][index] = value
    return tuple(groups)
