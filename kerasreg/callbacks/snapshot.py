"""`SnapshotCallback`: cyclic cosine rate + one snapshot per cycle.

Design notes
------------
* **One mechanism for the rate.** `SnapshotCallback` is a
  `ScheduleCallback(unit="step")` whose schedule is
  `kerasreg.schedules.CyclicCosine(initial, total_steps, n_snapshots, min)`
  shifted onto the steps of the current `fit` call: `total_steps =
  epochs * steps_per_epoch` and the position `t` of a step is
  `optimizer.iterations - offset`. The offset is derived at the first epoch
  of each `fit` as `iterations - initial_epoch * steps_per_epoch` (for a
  resumed run, see below), from
  state that `BackupAndRestore` restores (the optimizer's `iterations` and
  the initial epoch), so a resumed run continues the schedule exactly.
  Rates are set by `ScheduleCallback`: written once per epoch into a rate
  table that the wrapped train step reads (no python work per step, any
  restart costs nothing).
* **Snapshots inside the train step.** This fit's cycle-end positions and
  offset are Keras variables written once, at the first epoch; the train
  step (wrapped once per `fit` through the in-step seam,
  `kerasreg/callbacks/_in_step.py`) computes its position from the
  optimizer's `iterations` and, in a `keras.ops.cond` that other steps skip,
  copies the weights after the update into the next pre-created snapshot
  row, with its step. No python work or state sync per step,
  and exact with `steps_per_execution > 1`. With `snapshot_dir`, files are
  written from python instead: after each batch a python integer
  comparison decides whether a cycle ended; only then (n times per run) is
  the state synced (`model.jax_state_sync()` on jax) and written.
* **Snapshots survive a resume.** They are kept in Keras variables or files,
  never only in Python attributes: with `snapshot_dir`, one
  `snapshot_<i>.weights.h5` per snapshot plus `snapshots.json` (the steps at
  which they were taken and the model's config without its compile config,
  enough to rebuild them in another process); otherwise, in non-trainable
  variables (the model's float variables packed into one row per snapshot,
  one buffer per dtype, `VariableStore`, and the steps at which they were
  taken) that the optimizer tracks while `fit` runs, through the
  in-step seam shared with `WeightEMA`, so that `model.save_weights`,
  hence `BackupAndRestore`, saves them. For a model that its first train
  step builds (a `Sequential` without `keras.Input` on tensorflow) they are
  created in that step, once the model and the optimizer are built.
  `SnapshotEnsemble` gives the callback its own variables instead, so that
  they are saved with the model.
* **Resumed run or new run.** At the first epoch `k` of a `fit`, the run is
  *resumed* when `k > 0` and the store holds exactly the snapshots that the
  schedule over `epochs * steps_per_epoch` steps takes before step
  `k * steps_per_epoch` (`BackupAndRestore`, or `load_weights` and then
  `fit(initial_epoch=k)` after an interruption): positions count from the
  run's start and those snapshots are kept. Otherwise the `fit` is a *new
  run* over its own steps, `(epochs - k) * steps_per_epoch`: `k = 0`, or the
  usual Keras continuation `fit(epochs=2)` then `fit(epochs=4,
  initial_epoch=2)`, which trains on with a new set of cycles: the rate
  starts again from `initial_learning_rate` and new snapshots replace the
  previous run's. No rate exceeds the schedule's (the `ReduceLROnPlateau`
  scale is capped at 1).
* **Snapshots are uncompiled models**, cloned with
  `kerasreg._cloning.clone_uncompiled` (unregistered losses and custom
  layers work).

Known limits: with `snapshot_dir` and `steps_per_execution > 1` the batch
hooks run once per execution, so a file snapshot is taken at the end of the
execution that contains the cycle end (in-memory snapshots are exact).
`BackupAndRestore(save_freq=<int>)` restores a mid-epoch state but Keras
restarts that epoch from its first batch; the schedule position is derived
per epoch, so exact resumption needs epoch backups (the default
`save_freq="epoch"`). Used alone, the callback detaches its
variables from the optimizer at `on_train_end`; if `fit` is interrupted,
Keras calls no `on_train_end` and the seam detaches them at the next
contact (the next `fit`, or a save or load outside `fit`), so a model saved
after an interrupted `fit` holds none of them.
"""

import functools
import json
import os

import keras
import numpy as np
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from kerasreg import _checks
from kerasreg._cloning import clone_uncompiled
from kerasreg.callbacks import _in_step
from kerasreg.callbacks.schedule import ScheduleCallback
from kerasreg.schedules.cyclic_cosine import CyclicCosine

MANIFEST = "snapshots.json"


def snapshot_variables(model):
    """The variables a snapshot copies: float model state, in a fixed order."""
    return [
        v
        for v in model.trainable_variables + model.non_trainable_variables
        if keras.backend.is_float_dtype(v.dtype)
    ]


def rebuild(template):
    """A new, uncompiled (and built, if `template` is) model with
    `template`'s architecture (`kerasreg._cloning.clone_uncompiled`)."""
    return clone_uncompiled(template)


def model_config(model):
    """The serialized model without its compile config (which may name
    unregistered losses or metrics: snapshots are not compiled)."""
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    return config


def model_with_values(template, values):
    """A rebuilt `template` whose snapshot variables hold `values`."""
    model = rebuild(template)
    targets = snapshot_variables(model)
    if len(targets) != len(values):
        raise ValueError(
            f"The snapshot has {len(values)} variables but the rebuilt model "
            f"has {len(targets)}."
        )
    for variable, value in zip(targets, values):
        variable.assign(value)
    return model


class VariableStore:
    """Snapshots held in Keras variables, one row per snapshot.

    The model's float variables (`snapshot_variables`, in that order) are
    packed into one flat row per dtype: `buffers[g]`, of shape
    `(n, size_g)`, holds in row `i` snapshot `i` of the variables of the
    `g`-th dtype. A model thus needs one buffer (one per dtype), however
    many variables it has: the jax train step carries each variable of its
    state through every call at a cost per variable, and a `keras.ops.cond`
    that may copy a snapshot captures one buffer instead of a variable per
    weight and snapshot. `steps_variable` (int32, `(n,)`) holds the step
    position of each snapshot taken, in order, and `-1` in the rows not
    taken: the number taken is the number of entries >= 0.
    """

    def __init__(self, layout, buffers, steps):
        # `layout[j] = (g, start, size, shape)`: variable `j` of a snapshot
        # is `buffers[g][i, start:start + size]`, reshaped to `shape`.
        self.layout = layout
        self.buffers = buffers
        self.steps_variable = steps

    @classmethod
    def create(cls, model, n, make_variable):
        """`make_variable(shape, dtype, name, initializer)` creates each
        variable."""
        sizes = {}  # dtype -> packed size so far, in order of appearance
        layout = []
        for v in snapshot_variables(model):
            dtype = keras.backend.standardize_dtype(v.dtype)
            start = sizes.setdefault(dtype, 0)
            size = int(np.prod(v.shape, dtype="int64"))
            layout.append((list(sizes).index(dtype), start, size, tuple(v.shape)))
            sizes[dtype] = start + size
        buffers = [
            make_variable((n, size), dtype, f"snapshots_{dtype}", "zeros")
            for dtype, size in sizes.items()
        ]
        steps = make_variable(
            (n,), "int32", "snapshot_steps", keras.initializers.Constant(-1)
        )
        return cls(layout, buffers, steps)

    @property
    def n(self):
        return int(self.steps_variable.shape[0])

    def variables(self):
        return list(self.buffers) + [self.steps_variable]

    def _packed(self, values):
        """One flat row per buffer from the variables' `values` (tensors)."""
        groups = [[] for _ in self.buffers]
        for (g, _, _, _), value in zip(self.layout, values):
            groups[g].append(ops.reshape(value, (-1,)))
        return [ops.concatenate(group, axis=0) for group in groups]

    def unpack(self, rows, reshape=ops.reshape):
        """The variables' values from one row per buffer."""
        return [
            reshape(rows[g][start : start + size], shape)
            for g, start, size, shape in self.layout
        ]

    @staticmethod
    def taken(steps):
        """How many snapshots the `steps` tensor records (int32 scalar)."""
        return ops.sum(ops.cast(ops.greater_equal(steps, 0), "int32"))

    def written(self, buffers, steps, values, position):
        """In a compiled step: `buffers` and `steps` (tensors) with the
        variables' `values` written as the next snapshot, taken at
        `position` (int32 scalar tensor)."""
        count = self.taken(steps)
        if keras.backend.backend() == "jax":
            # XLA updates each variable's slice of the row in place; writing
            # the concatenated row instead is about five times slower there.
            buffers = list(buffers)
            for (g, start, _, _), value in zip(self.layout, values):
                buffers[g] = ops.slice_update(
                    buffers[g], (count, start), ops.reshape(value, (1, -1))
                )
        else:
            # Eager or graph updates copy the buffer: one per buffer.
            index = ops.reshape(count, (1, 1))
            buffers = [
                ops.scatter_update(buffer, index, ops.expand_dims(row, 0))
                for buffer, row in zip(buffers, self._packed(values))
            ]
        rows = ops.arange(self.n, dtype="int32")
        return buffers, ops.where(ops.equal(rows, count), position, steps)

    def tensors(self, index):
        """The values of snapshot `index` (a Python int), as tensors."""
        return self.unpack([b.value[index] for b in self.buffers])

    @property
    def count(self):
        return len(self.steps)

    @property
    def steps(self):
        return [int(s) for s in ops.convert_to_numpy(self.steps_variable) if s >= 0]

    def truncate(self, start, steps):
        """Keeps the snapshots taken before step `start` (`steps`: the
        store's `steps`, as read by the caller); returns how many."""
        kept = sum(1 for s in steps if s < start)
        if kept != len(steps):
            values = np.full((self.n,), -1, dtype="int32")
            values[:kept] = steps[:kept]
            self.steps_variable.assign(values)
        return kept

    def values_of_earlier_layout(self, values):
        """The store's variables' values from those of an earlier layout.

        `values` (numpy) end with the count and the steps (the rows not
        taken held 0); before them, either one buffer per dtype, or, in the
        first layout, one variable per snapshot and weight
        (`snapshot_<i>_<j>`). Returns the values of `variables()`, or `None`
        if `values` has neither layout.
        """
        n, width = self.n, len(self.layout)
        if len(values) == n * width + 2:
            rows = [[[] for _ in self.buffers] for _ in range(n)]
            for i in range(n):
                for (g, _, _, _), value in zip(
                    self.layout, values[i * width : (i + 1) * width]
                ):
                    rows[i][g].append(np.reshape(value, (-1,)))
            buffers = [
                np.stack([np.concatenate(rows[i][g]) for i in range(n)])
                for g in range(len(self.buffers))
            ]
        elif len(values) == len(self.buffers) + 2:
            buffers = list(values[:-2])
        else:
            return None
        steps = np.array(values[-1], dtype="int32")
        steps[int(values[-2]) :] = -1
        return buffers + [steps]

    def values(self, index):
        rows = [np.asarray(ops.convert_to_numpy(b))[index] for b in self.buffers]
        return self.unpack(rows, reshape=np.reshape)

    def load(self, index, template):
        return model_with_values(template, self.values(index))


class FileStore:
    """Snapshots written to `directory`: `snapshot_<i>.weights.h5` each, and
    `snapshots.json` with the steps and the model's serialized config."""

    def __init__(self, directory):
        self.directory = os.fspath(directory)

    def _manifest(self):
        path = os.path.join(self.directory, MANIFEST)
        if not os.path.exists(path):
            return {"steps": [], "model": None}
        with open(path) as f:
            return json.load(f)

    def _write_manifest(self, manifest):
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, MANIFEST)
        with open(path + ".tmp", "w") as f:
            json.dump(manifest, f)
        os.replace(path + ".tmp", path)

    def file(self, index):
        return os.path.join(self.directory, f"snapshot_{index:03d}.weights.h5")

    @property
    def count(self):
        return len(self._manifest()["steps"])

    @property
    def steps(self):
        return list(self._manifest()["steps"])

    def truncate(self, start, steps):
        """As `VariableStore.truncate`."""
        kept = [s for s in steps if s < start]
        if len(kept) != len(steps):
            manifest = self._manifest()
            manifest["steps"] = kept
            self._write_manifest(manifest)
        return len(kept)

    def write(self, step, model):
        manifest = self._manifest()
        index = len(manifest["steps"])
        os.makedirs(self.directory, exist_ok=True)
        model.save_weights(self.file(index))
        if manifest.get("model") is None:
            try:
                manifest["model"] = model_config(model)
                json.dumps(manifest["model"])
            except Exception:  # rebuilt from a live template instead
                manifest["model"] = None
        manifest["steps"].append(int(step))
        self._write_manifest(manifest)

    def load(self, index, template=None):
        if template is None:
            config = self._manifest().get("model")
            if config is None:
                raise ValueError(
                    f"{self.directory} holds no model config to rebuild the "
                    "snapshots from; pass the model."
                )
            config = dict(config)
            config.pop("compile_config", None)
            model = keras.saving.deserialize_keras_object(config)
        else:
            model = rebuild(template)
        model.load_weights(self.file(index))
        return model


class _Positioned(LearningRateSchedule):
    """`cyclic(step - offset)`: the cyclic schedule over this fit's steps."""

    def __init__(self):
        self.cyclic = None
        self.offset = 0

    def __call__(self, step):
        if isinstance(step, np.ndarray):
            step = step - self.offset
        else:
            step = int(step) - self.offset
        return self.cyclic(step)

    def get_config(self):
        return {}


def check_snapshot_dir(snapshot_dir):
    """`None` or a path (string or `os.PathLike`); returns `None` or a str."""
    if snapshot_dir is None:
        return None
    if isinstance(snapshot_dir, (str, os.PathLike)):
        path = os.fspath(snapshot_dir)
        if isinstance(path, str) and path:
            return path
    raise _checks.invalid(
        "snapshot_dir",
        snapshot_dir,
        "None or a directory path (a non-empty string or an `os.PathLike`)",
    )


def check_arguments(n_snapshots, initial_learning_rate, min_learning_rate, keep):
    """Validates the shared arguments; returns `(n_snapshots, keep)`."""
    n_snapshots = _checks.int_at_least("n_snapshots", n_snapshots, 1)
    # CyclicCosine checks the rates (with their own argument names).
    CyclicCosine(
        initial_learning_rate,
        total_steps=n_snapshots,
        n_cycles=n_snapshots,
        min_learning_rate=min_learning_rate,
    )
    if keep is not None and (
        not _checks.is_integer(keep) or not 1 <= keep <= n_snapshots
    ):
        raise _checks.invalid(
            "keep",
            keep,
            f"None or an integer between 1 and n_snapshots={n_snapshots}",
        )
    return n_snapshots, None if keep is None else int(keep)


def kept_indices(store, keep):
    """The indices in `store` of the snapshots kept: the last `keep` taken.

    Args:
        store: A `VariableStore` or `FileStore`, or `None` (no snapshot).
        keep: `None` (all the snapshots) or an integer >= 1.

    Returns:
        A `range` of snapshot indices, oldest first.
    """
    count = 0 if store is None else store.count
    first = 0 if keep is None else max(0, count - keep)
    return range(first, count)


class SnapshotCallback(ScheduleCallback):
    """Cyclic cosine learning rate with a snapshot at the end of each cycle.

    Snapshot ensembles (Huang et al. 2017, "Snapshot Ensembles: Train 1, get
    M for free"; CS 182, lecture on ensembles): one training run with a
    cyclic cosine learning rate visits `n_snapshots` local minima; a copy of
    the model taken at the end of each cycle, where the rate is smallest,
    gives `n_snapshots` ensemble members for the cost of one run.

    The learning rate of step `t` of this `fit` call (counting from 0 over
    `epochs * steps_per_epoch` steps) is
    `kerasreg.schedules.CyclicCosine(initial_learning_rate, total_steps,
    n_snapshots, min_learning_rate)(t)`, set per step as
    `kerasreg.callbacks.ScheduleCallback` does (this is a subclass, and
    `ReduceLROnPlateau` cuts compose with it the same way). A snapshot of the
    model is taken after each step `t` in `CyclicCosine.cycle_end_steps`,
    inside the compiled train step (no python work per step).
    When `epochs * steps_per_epoch` is not a multiple of `n_snapshots`, the
    cycle length is rounded up and the last cycle is shorter; `fit` refuses
    a run where rounding leaves fewer cycle ends than `n_snapshots`, or that
    has fewer steps than `n_snapshots`.

    The snapshots survive an interruption: with
    `keras.callbacks.BackupAndRestore` a resumed `fit` continues the same
    schedule and keeps the snapshots already taken (they are saved with the
    optimizer's state, or in `snapshot_dir`), so the result equals an
    uninterrupted run. Any other `fit` is a new run over the steps of that
    call: a `fit` from epoch 0, or `fit(epochs=4, initial_epoch=2)` after a
    finished `fit(epochs=2)` (the usual Keras way to continue) lays
    `n_snapshots` new cycles over its `(4 - 2) * steps_per_epoch` steps,
    starts again from `initial_learning_rate` and replaces the previous
    snapshots; `snapshot_steps` count from the start of that call. See the
    module notes for the details.

    The snapshots are new, uncompiled models. The model may be unbuilt (a
    `Sequential` without `keras.Input`). An interrupted `fit` leaves nothing
    of this callback in the optimizer once the model is saved or fit again.

    The optimizer must be created with a float learning rate (a schedule
    object is refused, as by `ScheduleCallback`). The number of steps per
    epoch must be known: pass `steps_per_epoch` for a dataset of unknown
    length.

    Args:
        n_snapshots: Integer >= 1. Number of cycles and snapshots.
        initial_learning_rate: Float > 0. Rate at the start of each cycle.
            Defaults to `0.1`.
        min_learning_rate: Float in `[0, initial_learning_rate)`. The floor
            of the cosine. Defaults to `0.0`.
        keep: Optional integer in `[1, n_snapshots]`: `snapshots` holds the
            last `keep` snapshots. Defaults to `None` (all).
        snapshot_dir: Optional path (string or `os.PathLike`). If set, each snapshot is written there
            as it is taken (`snapshot_<i>.weights.h5` and `snapshots.json`)
            and loaded from there when asked for; otherwise they are held in
            memory (Keras variables). Defaults to `None`.
        verbose: Integer. 0: quiet, 1: print the rate at each epoch start
            and a line per snapshot. Defaults to `0`.

    Example:

    ```python
    import keras
    import numpy as np
    import kerasreg

    x = np.random.rand(64, 4).astype("float32")
    y = np.random.randint(0, 3, size=64)
    model = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    snap = kerasreg.callbacks.SnapshotCallback(3, initial_learning_rate=0.1)
    model.fit(x, y, epochs=6, batch_size=16, callbacks=[snap], verbose=0)
    len(snap.snapshots)  # 3 models
    snap.snapshot_steps  # [7, 15, 23]
    ```
    """

    _log_name = "SnapshotCallback"

    def __init__(
        self,
        n_snapshots,
        initial_learning_rate=0.1,
        min_learning_rate=0.0,
        keep=None,
        snapshot_dir=None,
        verbose=0,
    ):
        n_snapshots, keep = check_arguments(
            n_snapshots, initial_learning_rate, min_learning_rate, keep
        )
        snapshot_dir = check_snapshot_dir(snapshot_dir)
        super().__init__(_Positioned(), unit="step", verbose=verbose)
        self.n_snapshots = n_snapshots
        self.initial_learning_rate = float(initial_learning_rate)
        self.min_learning_rate = float(min_learning_rate)
        self.keep = keep
        self.snapshot_dir = snapshot_dir
        self._store = None if snapshot_dir is None else FileStore(snapshot_dir)
        self._own_store = snapshot_dir is None  # created on the model
        self._store_owner = None
        self._template = None
        self._offset = None
        self._ends = ()
        # In-step snapshots: `iterations - position` then this fit's
        # cycle-end positions, padded with -1 (a Keras variable, int32
        # `(n_snapshots + 1,)`, see `_prepare`).
        self._layout_variable = None
        self._announced = 0
        if snapshot_dir is not None:
            # Files are written from python, after the step that ends a
            # cycle (a batch hook only for this store: a callback without
            # one lets Keras dispatch batch ends asynchronously).
            self.on_train_batch_end = self._file_snapshots

    def get_config(self):
        return {
            "n_snapshots": self.n_snapshots,
            "initial_learning_rate": self.initial_learning_rate,
            "min_learning_rate": self.min_learning_rate,
            "keep": self.keep,
            "snapshot_dir": self.snapshot_dir,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ----------------------------------------------------------- the store

    def _target(self):
        """The model whose weights are snapshot (the trained model)."""
        return self._given_model

    def _in_step_store(self):
        """Whether snapshots are copied inside the train step (variables)."""
        return self._own_store or isinstance(self._store, VariableStore)

    def _create_store(self):
        """Own variable store, created once per (built) model."""
        model = self._given_model
        if self._store_owner is model:
            return False

        with self._strategy_scope():
            self._store = VariableStore.create(
                model, self.n_snapshots, self._new_variable
            )
        self._store_owner = model
        return True

    def _prepare(self, model):
        """The variables held by the optimizer during `fit` (in-step seam):
        the rate table, this fit's cycle ends and, for the callback's own
        store, the snapshots (so that `save_weights`, hence
        `BackupAndRestore`, stores them). For a model that its first train
        step builds (tensorflow), the own store is created in that step."""
        super()._prepare(model)
        if self._layout_variable is None:
            with self._strategy_scope():
                self._layout_variable = self._new_variable(
                    (self.n_snapshots + 1,), "int32", "snapshot_cycle_ends"
                )
        if self._own_store and model.built:
            self._create_store()

    def _in_step_variables(self):
        variables = []
        if self._own_store and self._store_owner is self._given_model:
            variables += self._store.variables()
        variables += super()._in_step_variables()
        if self._in_step_store():
            variables.append(self._layout_variable)
        return variables

    def _create_lazily(self):
        """Own store of a model that its first train step built: created
        while that step is traced, after the original step (which built
        the model and the optimizer), and tracked by the optimizer."""
        self._create_store()
        _in_step.add_variables(self._given_model, self, self._store.variables())

    # ----------------------------------------------------- in-step copies

    @property
    def _in_step_key(self):
        return (super()._in_step_key, id(self._store), id(self._layout_variable))

    def _in_step_wrap(self, train_step):
        """The rate-setting step of `ScheduleCallback`, followed, at a cycle
        end, by the copy of the weights into the next snapshot row, inside
        the compiled step (`keras.ops.cond`: other steps skip it)."""
        step = super()._in_step_wrap(train_step)
        if not self._in_step_store():
            return step
        if keras.backend.backend() == "jax":
            return self._functional_snapshot(step)
        return self._stateful_snapshot(step)

    def _position_and_due(self, iterations, layout, steps):
        """The step's position in this fit's run, and whether it ends a
        cycle with a snapshot row still free (tensors)."""
        position = ops.cast(iterations, "int32") - layout[0]
        due = ops.logical_and(
            ops.any(ops.equal(layout[1:], position)),
            ops.less(VariableStore.taken(steps), self.n_snapshots),
        )
        return position, due

    def _functional_snapshot(self, train_step):
        """Wraps a jax-style `train_step(state, data)`: pure update of the
        store's values in the returned state."""
        model = self._given_model
        store = self._store
        positions = functools.partial(_in_step.state_positions, model)
        read = _in_step.read_state
        targets = positions(snapshot_variables(self._target()))
        buffers = positions(store.buffers)
        steps_at, layout_at, iterations_at = positions([
            store.steps_variable,
            self._layout_variable,
            model.optimizer.iterations,
        ])

        def step_with_snapshot(state, data):
            iterations = read(state, iterations_at)
            logs, state = train_step(state, data)
            old = ([read(state, at) for at in buffers], read(state, steps_at))
            position, due = self._position_and_due(
                iterations, read(state, layout_at), old[1]
            )

            def copy():
                weights = [read(state, at) for at in targets]
                return store.written(*old, weights, position)

            new_buffers, steps = ops.cond(due, copy, lambda: old)
            updates = [(steps_at, steps)] + list(zip(buffers, new_buffers))
            return logs, _in_step.write_state(state, updates)

        return step_with_snapshot

    def _stateful_snapshot(self, train_step):
        """Wraps a stateful `train_step(data)` (tensorflow, torch)."""
        model = self._given_model
        iterations = model.optimizer.iterations

        def step_with_snapshot(data):
            before = ops.cast(iterations.value, "int32")  # read before the step
            logs = train_step(data)
            if self._own_store and self._store_owner is not model:
                self._create_lazily()
            store = self._store
            position, due = self._position_and_due(
                before, self._layout_variable.value, store.steps_variable.value
            )

            def copy():
                weights = [v.value for v in snapshot_variables(self._target())]
                buffers, steps = store.written(
                    [b.value for b in store.buffers],
                    store.steps_variable.value,
                    weights,
                    position,
                )
                for buffer, value in zip(store.buffers, buffers):
                    buffer.assign(value)
                store.steps_variable.assign(steps)

            _in_step.when(due, copy)
            return logs

        return step_with_snapshot

    # ------------------------------------------------------------- hooks

    def on_train_begin(self, logs=None):
        steps = (self.params or {}).get("steps")
        if not steps:
            raise ValueError(
                "SnapshotCallback needs the number of steps per epoch to lay "
                "the cycles over this fit, but it is unknown (a dataset or "
                "generator of unknown length). Pass `steps_per_epoch=` to "
                "`fit`."
            )
        super().on_train_begin(logs)
        self._epochs = int((self.params or {}).get("epochs"))
        self._steps_per_epoch = int(steps)
        self._offset = None
        self._template = self._target()

    def _cycles(self, total, what):
        """The `CyclicCosine` over `total` steps; refuses a bad layout."""
        if self.n_snapshots > total:
            raise ValueError(
                "Invalid value received for argument `n_snapshots`. Expected "
                f"at most the number of training steps of this fit "
                f"({what} = {total}). "
                f"Received: n_snapshots={self.n_snapshots}"
            )
        args = (
            self.initial_learning_rate,
            total,
            self.n_snapshots,
            self.min_learning_rate,
        )
        cyclic = self.schedule.cyclic
        if cyclic is None or args != (
            cyclic.initial_learning_rate,
            cyclic.total_steps,
            cyclic.n_cycles,
            cyclic.min_learning_rate,
        ):
            # A new one only when the layout changes: it caches its rates.
            cyclic = CyclicCosine(*args)
        ends = cyclic.cycle_end_steps
        if len(ends) < self.n_snapshots:
            raise ValueError(
                "Invalid value received for argument `n_snapshots`. With "
                f"{total} training steps, cycles of ceil({total} / "
                f"{self.n_snapshots}) = {cyclic.cycle_length} steps give only "
                f"{len(ends)} cycle ends. Choose an n_snapshots that divides "
                f"the number of steps, or train longer. Received: "
                f"n_snapshots={self.n_snapshots}"
            )
        return cyclic

    def _lay_out(self, epoch):
        """At the first epoch of a fit: resume the run or start a new one."""
        steps, epochs = self._steps_per_epoch, self._epochs
        iterations = self._iterations()
        start = epoch * steps
        cyclic = self._cycles(
            epochs * steps,
            f"epochs * steps_per_epoch = {epochs} * {steps}",
        )
        taken = [] if self._store is None else self._store.steps
        expected = [e for e in cyclic.cycle_end_steps if e < start]
        if epoch == 0 or taken == expected:
            # A fresh run, or the resumption of the run that took exactly
            # the snapshots before `start` (BackupAndRestore, or
            # `load_weights` then `initial_epoch`): positions count from
            # the run's start.
            self._offset = iterations - start
            position = start
        else:
            # `initial_epoch=k` after a finished (or other) run: a new run
            # over the steps of this call.
            remaining = epochs - epoch
            cyclic = self._cycles(
                remaining * steps,
                f"(epochs - initial_epoch) * steps_per_epoch = {remaining} * "
                f"{steps}",
            )
            self._offset = iterations
            position = 0
        self.schedule.cyclic = cyclic
        self.schedule.offset = self._offset
        self._ends = frozenset(cyclic.cycle_end_steps)
        kept = 0
        if self._store is not None:
            kept = self._store.truncate(position, taken)
        if self._in_step_store():
            layout = np.full((self.n_snapshots + 1,), -1, dtype="int32")
            layout[0] = self._offset
            layout[1 : len(cyclic.cycle_end_steps) + 1] = cyclic.cycle_end_steps
            self._layout_variable.assign(layout)
        self._announced = kept

    def on_epoch_begin(self, epoch, logs=None):
        if self._offset is None:
            self._lay_out(epoch)
        super().on_epoch_begin(epoch, logs)
        self._checked = self._epoch_first - self._offset - 1

    def _update_scale(self, current, iterations, t_prev):
        if self._last_written is None and t_prev - self._offset < 0:
            self._scale = 1.0  # the first step of this fit's schedule
            return
        super()._update_scale(current, iterations, t_prev)
        # Plateau cuts lower the rate; nothing raises it above the schedule.
        self._scale = min(self._scale, 1.0)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.verbose > 0 and self._store is not None:
            self._announce()

    def _announce(self):
        steps = self._store.steps
        for i in range(self._announced, len(steps)):
            print(
                f"\n{self._log_name}: snapshot {i + 1} taken after step "
                f"{steps[i]}.",
                flush=True,
            )
        self._announced = len(steps)

    def _file_snapshots(self, batch, logs=None):
        """`on_train_batch_end` of a file store: a python integer test per
        batch; the state is synced and written only at cycle ends."""
        position = self._epoch_first + batch - self._offset
        for t in range(self._checked + 1, position + 1):
            if t in self._ends:
                self._take(t)
        self._checked = position

    def _take(self, t):
        if self._store.count >= self.n_snapshots:
            return
        if keras.backend.backend() == "jax":
            self._given_model.jax_state_sync()
        self._store.write(t, self._target())

    # ----------------------------------------------------------- results

    @property
    def snapshot_steps(self):
        """Steps (0-based positions in the fit) after which the kept
        snapshots were taken."""
        if self._store is None:
            return []
        steps = self._store.steps
        return [steps[i] for i in kept_indices(self._store, self.keep)]

    @property
    def snapshots(self):
        """The kept snapshots, oldest first, as new (uncompiled) models.

        With `snapshot_dir`, each access loads them from disk.
        """
        template = self._template
        if template is None and self._given_model is not None:
            template = self._target()
        return [
            self._store.load(i, template)
            for i in kept_indices(self._store, self.keep)
        ]
