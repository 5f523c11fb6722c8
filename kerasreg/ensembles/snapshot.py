"""`SnapshotEnsemble`: train one model, get M for free.

Design notes
------------
* `fit` is `keras.Model.fit` with a `kerasreg.callbacks.SnapshotCallback`
  appended to the user's callbacks: the cyclic rate and the snapshots come
  from that one mechanism, and everything `fit` accepts (validation data,
  `class_weight`, `tf.data`, callbacks) works unchanged.
* Without `snapshot_dir`, the snapshots live in **pre-created,
  non-trainable variables of the `SnapshotEnsemble`** (the wrapped
  model's float variables packed into one row per snapshot, one buffer per
  dtype, a counter and the steps at
  which they were taken). The model's structure is therefore static: a
  `.keras` file and `model.save_weights` (hence `BackupAndRestore`) keep
  every snapshot taken. The callback copies the weights into them inside
  the compiled train step, at cycle ends only (`keras.ops.cond`).
* Inference with the ensemble is **one compiled graph**: `call` runs
  `model.stateless_call` once per kept snapshot, with the snapshot's
  variables as the state, stacks the probabilities and combines them with
  `kerasreg.ensembles.combine.combine_probabilities`. The cached
  predict/test functions are reset whenever the set of snapshots changes
  (start and end of `fit`), so that `fit`'s validation reports the model
  being trained and `predict`/`evaluate` afterwards report the ensemble.
* With `snapshot_dir` (big models), snapshots are files; after `fit` they
  are loaded when a predict/test function is built and run inside the same
  compiled call.
"""

import types
import warnings

import keras
import numpy as np
from keras import ops

from kerasreg import _checks
from kerasreg import _compat
from kerasreg._registry import register
from kerasreg._stateless import inference_call
from kerasreg._wrapper import ModelWrapper
from kerasreg.callbacks.snapshot import FileStore
from kerasreg.callbacks.snapshot import SnapshotCallback
from kerasreg.callbacks.snapshot import VariableStore
from kerasreg.callbacks.snapshot import check_arguments
from kerasreg.callbacks.snapshot import check_snapshot_dir
from kerasreg.callbacks.snapshot import kept_indices
from kerasreg.callbacks.snapshot import snapshot_variables
from kerasreg.ensembles.averaging import average_weights
from kerasreg.ensembles.averaging import recompute_batchnorm
from kerasreg.ensembles.combine import check_probabilities
from kerasreg.ensembles.ensemble import Ensemble
from kerasreg.ensembles.combine import check_combine
from kerasreg.ensembles.combine import combine_probabilities
from kerasreg.ensembles.combine import to_probabilities


def _check_one_output(model):
    """Refuses a model with several outputs (when they are known)."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return
    if outputs is None or len(outputs) <= 1:
        return
    names = getattr(model, "output_names", None) or [
        getattr(t, "name", "?") for t in outputs
    ]
    raise ValueError(
        "Invalid value received for argument `model`. Expected a model with "
        f"one output (class probabilities). Received: model '{model.name}' "
        f"with {len(outputs)} outputs: {list(names)}"
    )


def _check_probabilities(model):
    """Refuses a built model that visibly outputs logits (random probe)."""
    if model.built:
        check_probabilities(model, f"model '{model.name}'", "model")


class _EnsembleSnapshotCallback(SnapshotCallback):
    """The `SnapshotCallback` of a `SnapshotEnsemble`: snapshots the wrapped
    model into the ensemble's own store."""

    def __init__(self, owner):
        super().__init__(
            owner.n_snapshots,
            initial_learning_rate=owner.initial_learning_rate,
            min_learning_rate=owner.min_learning_rate,
            keep=owner.keep,
            snapshot_dir=owner.snapshot_dir,
        )
        self._owner = types.SimpleNamespace(model=owner)
        self._own_store = False
        self._store = owner._store()

    def _target(self):
        return self._owner.model.model

    def on_train_begin(self, logs=None):
        self._owner.model._set_fitting(True)
        super().on_train_begin(logs)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        self._owner.model._set_fitting(False)


@register
class SnapshotEnsemble(ModelWrapper, keras.Model):
    """Snapshot ensemble: one training run, `n_snapshots` ensemble members.

    Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free" (CS 182,
    lecture on ensembles): training with a cyclic cosine learning rate lets
    the model converge to `n_snapshots` local minima in one run; a snapshot
    taken at the end of each cycle (where the rate is smallest) is a member
    of the ensemble. Their probabilities are averaged (or voted), or their
    parameters averaged into one model (`averaged`).

    `SnapshotEnsemble` wraps one model and slots into the standard workflow:

    - `fit` trains the wrapped model with the rate of
      `kerasreg.schedules.CyclicCosine`, per step, over exactly the steps of
      this `fit` call, and takes a snapshot at the end of each cycle (it
      appends a `kerasreg.callbacks.SnapshotCallback`; the user's callbacks,
      validation data, `class_weight` and `tf.data` inputs work as in
      `Model.fit`). During `fit`, validation reports the current model.
    - After `fit`, `predict` and `evaluate` use the ensemble of the kept
      snapshots (the last `keep`), combined by `combine`, in one compiled
      call. Before any snapshot exists they use the wrapped model.
    - The snapshots are saved with the model (`.keras` round trip,
      `save_weights`, `BackupAndRestore`: a resumed `fit` continues the
      schedule and keeps the snapshots taken, and equals an uninterrupted
      run). With `snapshot_dir`, they are written to disk as they are taken
      and loaded when needed instead.
    - Any `fit` that does not resume a run is a new run over its own steps:
      after `fit(epochs=2)`, the usual Keras continuation `fit(epochs=4,
      initial_epoch=2)` lays `n_snapshots` new cycles over its 2 epochs,
      the rate starting again from `initial_learning_rate` (never above
      it), and its snapshots replace the previous ones (see
      `kerasreg.callbacks.SnapshotCallback`).
    - The cycles are laid over all the epochs given to `fit`: a `fit`
      stopped before the last cycle ends (by `keras.callbacks.EarlyStopping`,
      say) keeps the snapshots taken so far and warns how many of
      `n_snapshots` that is.

    The optimizer given to `compile` must have a float learning rate (it is
    overwritten at every step).

    Args:
        model: A Keras model with one output, ending in a softmax (or a
            sigmoid for one output column). A model with several outputs
            is refused with a `ValueError`.
        n_snapshots: Integer >= 1. Number of cycles and snapshots.
            Defaults to `5`.
        initial_learning_rate: Float > 0. Rate at the start of each cycle.
            Defaults to `0.1`.
        min_learning_rate: Float in `[0, initial_learning_rate)`. Defaults
            to `0.0`.
        keep: Optional integer in `[1, n_snapshots]`: the ensemble uses the
            last `keep` snapshots. Defaults to `None` (all).
        combine: `"mean"`, `"vote"` or `"geometric"`, as for
            `kerasreg.Ensemble`. Defaults to `"mean"`.
        snapshot_dir: Optional path where snapshots are written as they are
            taken (see `SnapshotCallback`). Defaults to `None` (in memory).
        name: String, the model name. Defaults to `None`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg import SnapshotEnsemble

    x = np.random.rand(128, 8).astype("float32")
    y = (x.sum(axis=1) > 4).astype("int32")
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ])
    se = SnapshotEnsemble(model, n_snapshots=3, initial_learning_rate=0.05)
    se.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    se.fit(x, y, epochs=6, batch_size=32, verbose=0)
    probs = se.predict(x, verbose=0)   # mean of the 3 snapshots
    members = se.snapshots             # 3 models
    voted = se.ensemble(last=2, combine="vote")
    single = se.averaged(x)            # averaged parameters
    ```
    """

    def __init__(
        self,
        model,
        n_snapshots=5,
        initial_learning_rate=0.1,
        min_learning_rate=0.0,
        keep=None,
        combine="mean",
        snapshot_dir=None,
        name=None,
        **kwargs,
    ):
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Invalid value received for argument `model`. Expected a "
                f"`keras.Model`. Received: model={model!r}"
            )
        n_snapshots, keep = check_arguments(
            n_snapshots, initial_learning_rate, min_learning_rate, keep
        )
        check_combine(combine)
        snapshot_dir = check_snapshot_dir(snapshot_dir)
        _check_one_output(model)
        _check_probabilities(model)
        super().__init__(name=name, **kwargs)
        self.model = model
        self.n_snapshots = n_snapshots
        self.initial_learning_rate = float(initial_learning_rate)
        self.min_learning_rate = float(min_learning_rate)
        self.keep = keep
        self.combine = combine
        self.snapshot_dir = snapshot_dir
        # Not tracked by Keras (the slots are tracked through add_weight).
        self._state = types.SimpleNamespace(
            store=None, fitting=False, taken=range(0), members=None
        )
        if model.built:
            self._create_store()
            self.built = True

    # ------------------------------------------------------------- state

    def _create_store(self):
        if self._state.store is not None:
            return
        if self.snapshot_dir is not None:
            self._state.store = FileStore(self.snapshot_dir)
            return

        def make(shape, dtype, name, initializer):
            return self.add_weight(
                shape=shape, dtype=dtype, initializer=initializer,
                trainable=False, autocast=False, name=name,
            )

        self._state.store = VariableStore.create(
            self.model, self.n_snapshots, make
        )

    def _store(self):
        if self._state.store is None:
            raise ValueError(
                "The wrapped model is not built yet: call the "
                "SnapshotEnsemble on data (or `build`) before `fit`."
            )
        return self._state.store

    def build(self, input_shape):
        if not self.model.built:
            self.model.build(input_shape)
        _check_one_output(self.model)
        self._create_store()
        self.built = True

    def _refresh(self):
        """Re-reads which snapshots are kept; resets cached functions."""
        store = self._state.store
        self._state.taken = kept_indices(store, self.keep)
        self._state.members = None
        if isinstance(store, FileStore) and self._state.taken:
            self._state.members = [
                store.load(i, self.model) for i in self._state.taken
            ]
        self.predict_function = None
        self.test_function = None

    def _set_fitting(self, fitting):
        was_fitting, self._state.fitting = self._state.fitting, fitting
        if fitting:
            self.predict_function = None
            self.test_function = None
        elif was_fitting:
            self._refresh()

    def load_own_variables(self, store):
        own = self._state.store
        if isinstance(own, VariableStore) and len(store.keys()) != len(
            own.variables()
        ):
            # A file of an earlier layout (with a count variable; in the
            # first, one variable per snapshot and weight): converted here.
            values = own.values_of_earlier_layout(
                [np.asarray(store[str(i)]) for i in range(len(store.keys()))]
            )
            if values is not None:
                store = {str(i): v for i, v in enumerate(values)}
        super().load_own_variables(store)
        self._refresh()

    def make_predict_function(self, force=False):
        if (self.predict_function is None or force) and not self._state.fitting:
            self._refresh()
        return super().make_predict_function(force=force)

    def make_test_function(self, force=False):
        if (self.test_function is None or force) and not self._state.fitting:
            self._refresh()
        return super().make_test_function(force=force)

    # --------------------------------------------------------------- call

    def _snapshot_probabilities(self, inputs):
        outputs = []
        if self._state.members is not None:
            for member in self._state.members:
                outputs.append(member(inputs, training=False))
        else:
            model = self.model
            targets = {id(v): j for j, v in enumerate(snapshot_variables(model))}
            for i in self._state.taken:
                values = self._state.store.tensors(i)

                def value(v):
                    j = targets.get(id(v))
                    return v.value if j is None else values[j]

                out, _ = inference_call(
                    model,
                    [value(v) for v in model.trainable_variables],
                    [value(v) for v in model.non_trainable_variables],
                    inputs,
                )
                outputs.append(out)
        return outputs

    def call(self, inputs, training=None):
        if self._state.fitting or training or not self._state.taken:
            return self.model(inputs, training=training)
        outputs = self._snapshot_probabilities(inputs)
        stacked = ops.stack([to_probabilities(o, False) for o in outputs], 0)
        combined = combine_probabilities(stacked, self.combine)
        if outputs[0].shape[-1] == 1:
            return combined[..., 1:]
        return combined

    def fit(self, *args, callbacks=None, **kwargs):
        if not self.built:
            raise ValueError(
                "The wrapped model is not built yet: call the "
                "SnapshotEnsemble on data (or `build`) before `fit`."
            )
        # One callback for every fit: its train step, compiled once, is
        # reused by later fits.
        if getattr(self._state, "callback", None) is None:
            self._state.callback = _EnsembleSnapshotCallback(self)
        callbacks = list(callbacks or []) + [self._state.callback]
        try:
            history = super().fit(*args, callbacks=callbacks, **kwargs)
        finally:
            self._set_fitting(False)
        self._warn_if_stopped_early()
        return history

    def _warn_if_stopped_early(self):
        """Warns when `fit` returned before the last cycle end it laid out
        (stopped by `EarlyStopping` or another `model.stop_training`)."""
        callback = self._state.callback
        cyclic = callback.schedule.cyclic
        if callback._offset is None or cyclic is None:
            return  # no epoch ran
        trained = callback._iterations() - callback._offset
        if trained > max(cyclic.cycle_end_steps):
            return
        warnings.warn(
            f"SnapshotEnsemble '{self.name}': fit stopped after {trained} "
            f"of its {cyclic.total_steps} steps, before the end of the last "
            f"cycle: only {self._state.store.count} of the "
            f"n_snapshots={self.n_snapshots} snapshots were taken. The "
            "cycles are laid over all the epochs given to fit: to get every "
            "snapshot, let fit run them all (no EarlyStopping), or give it "
            "fewer epochs.",
            stacklevel=3,  # the caller of `fit`
        )

    # ------------------------------------------------------------ results

    @property
    def snapshot_steps(self):
        """Steps of the last `fit` after which the kept snapshots were taken."""
        steps = self._state.store.steps if self._state.store else []
        return [steps[i] for i in kept_indices(self._state.store, self.keep)]

    @property
    def snapshots(self):
        """The kept snapshots, oldest first, as new (uncompiled) models."""
        store = self._state.store
        return [store.load(i, self.model) for i in kept_indices(store, self.keep)]

    def ensemble(self, last=None, combine=None):
        """The kept snapshots (or the `last` of them) as a `kerasreg.Ensemble`.

        Args:
            last: Optional integer >= 1: use only the last `last` snapshots.
                Defaults to `None` (all kept snapshots).
            combine: Optional combine rule for the `Ensemble`. Defaults to
                `None` (this model's `combine`).

        Returns:
            An `Ensemble` (not compiled).
        """
        members = self.snapshots
        if not members:
            raise ValueError(
                "SnapshotEnsemble has no snapshot yet: call `fit` first."
            )
        if last is not None:
            if not _checks.is_integer(last) or not 1 <= last <= len(members):
                raise _checks.invalid(
                    "last",
                    last,
                    f"an integer between 1 and {len(members)} (the snapshots kept)",
                )
            members = members[-last:]
        return Ensemble(members, combine=combine or self.combine)

    def averaged(self, x=None, batch_size=128):
        """One model whose parameters are the mean of the kept snapshots'.

        The BatchNorm statistics of the averaged model are re-estimated on
        `x` (`kerasreg.ensembles.recompute_batchnorm`), which is needed when
        the model has BatchNormalization layers.

        Args:
            x: Training inputs for the BatchNorm re-estimation. Required when
                the model has BatchNormalization layers.
            batch_size: Integer, batch size of that pass. Defaults to `128`.

        Returns:
            A new (uncompiled) model.
        """
        members = self.snapshots
        if not members:
            raise ValueError(
                "SnapshotEnsemble has no snapshot yet: call `fit` first."
            )
        model = average_weights(members)
        has_bn = any(
            isinstance(layer, keras.layers.BatchNormalization)
            for layer in _compat.sublayers(model, include_self=False)
        )
        if has_bn:
            if x is None:
                raise ValueError(
                    "Invalid value received for argument `x`. The model has "
                    "BatchNormalization layers, whose statistics must be "
                    "re-estimated on training inputs. Received: x=None"
                )
            recompute_batchnorm(model, x, batch_size=batch_size)
        return model

    # ------------------------------------------------------------- config

    def get_config(self):
        base_config = super().get_config()
        config = {
            "model": keras.saving.serialize_keras_object(self.model),
            "n_snapshots": self.n_snapshots,
            "initial_learning_rate": self.initial_learning_rate,
            "min_learning_rate": self.min_learning_rate,
            "keep": self.keep,
            "combine": self.combine,
            "snapshot_dir": self.snapshot_dir,
        }
        return {**base_config, **config}
