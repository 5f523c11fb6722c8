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
  back when the last owner is released.
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
* **The jax step's state.** On jax the wrapped step is a pure function of
  the state the trainer threads through it (trainable, non-trainable,
  optimizer and metrics variables' values); `state_positions`,
  `read_state` and `write_state` find, read and replace a variable's value
  there, by the variable's place in those public lists.
"""

import sys
import weakref

import keras

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
        step = model.train_step
        for _, wrap in wraps:
            step = wrap(step)
        function = _compat.compile_train_function(model, step)
        self.cache = (original, function, key)
        self.original = original

    def _restore_train_function(self):
        if self.original is not None:
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
