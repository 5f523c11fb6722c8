"""The one place where kerasreg touches Keras and Keras Tuner internals.

Every private Keras / Keras Tuner member kerasreg reads or calls, every
`keras.src` import and every monkeypatch of a Keras object (an attribute or
method replaced on a live layer, model or optimizer) is one small function
here, grouped by the Keras object it touches. Each names the member and says
why no public API does it; `tests/test_compat.py` has one test per function
that fails with a message naming the member when a Keras or Keras Tuner
release moves or renames it. Checked with Keras 3.10.0 to 3.15.1,
keras-nightly 3.16.0.dev2026102704 and Keras Tuner 1.4.8.

Overridden hooks: private Keras Tuner methods that kerasreg subclasses
override (the override cannot live here; `tests/test_compat.py` checks that
the base class still has each, with the signature below):

* `keras_tuner.Oracle._check_consecutive_failures(self)`, overridden by
  `CoarseToFineOracle`: the only place where the oracle decides that failed
  trials end the search, and a diverged trial must not count as a failure.
* `keras_tuner.Tuner._build_and_fit_model(self, trial, *args, **kwargs)`,
  overridden by `CoarseToFine`: the only per-trial hook that receives the
  `fit` keyword arguments (to add a fresh `StopOnDivergence` callback) and
  runs inside the trial's failure handling (to fail a diverged trial).
"""

import contextlib

# ------------------------------------------------------------------- layers


def sublayers(layer, include_self=True, recursive=True):
    """The layers `layer` tracks, depth first (`Layer._flatten_layers`).

    Keras has no public accessor for the layers a layer holds: `Model.layers`
    is one level deep and plain (non-model) layers have no `layers`.
    """
    return layer._flatten_layers(include_self=include_self, recursive=recursive)


@contextlib.contextmanager
def unlocked_state(layer):
    """Lets a built layer add variables (`Layer._tracker.unlock/lock`).

    Keras locks a layer's state once it is built and has no public way to
    add a variable later; Keras itself unlocks it the same way
    (`Dense.quantize`).
    """
    tracker = layer._tracker
    locked = tracker.locked
    tracker.unlock()
    try:
        yield
    finally:
        if locked:
            tracker.lock()


@contextlib.contextmanager
def replaced_calls(layers, make_call):
    """Replaces each layer's `call`, on the instance, while inside.

    `make_call(layer)` returns the replacement. Keras has no public hook
    on one layer's call inside a model's forward pass (to record its inputs,
    or to force its `training`); `object.__setattr__` bypasses Keras'
    attribute tracking, and the instance attribute is deleted on exit.
    """
    for layer in layers:
        object.__setattr__(layer, "call", make_call(layer))
    try:
        yield
    finally:
        for layer in layers:
            object.__delattr__(layer, "call")


@contextlib.contextmanager
def switched_activation(layer, activation):
    """Sets `layer.activation` (Dense, Conv) to `activation` while inside.

    Keras reads the constructor's activation from `layer.activation` in
    `call` and has no public way to call a layer without it.
    """
    previous = layer.activation
    layer.activation = activation
    try:
        yield
    finally:
        layer.activation = previous


def set_batchnorm_momentum(layer, momentum):
    """Sets the momentum a built `BatchNormalization` updates with.

    A constructor argument with no public setter; Keras' `call` reads
    `layer.momentum` at each call.
    """
    layer.momentum = momentum


def set_dropout_rate(layer, rate):
    """Sets a dropout layer's `rate` (its `call` skips the noise at 0).

    A constructor argument with no public setter; Keras' `call` reads
    `layer.rate` at each call.
    """
    layer.rate = rate


def set_noise_stddev(layer, stddev):
    """Sets a `GaussianNoise` layer's `stddev` (its `call` skips it at 0).

    A constructor argument with no public setter; Keras' `call` reads
    `layer.stddev` at each call.
    """
    layer.stddev = stddev


def set_activity_regularizer(layer, regularizer):
    """Sets a built layer's activity regularizer.

    A constructor argument with no public setter; Keras' `Layer.__call__`
    reads `layer.activity_regularizer` at each call.
    """
    layer.activity_regularizer = regularizer


# ------------------------------------------------------------------- models


def compiled_loss(model):
    """The loss `compile` built, without the regularization (`Model._compile_loss`).

    `Model.compute_loss` adds the regularization losses and takes one
    prediction; an ensemble applies the compiled loss to each member's
    prediction and adds the regularization once. `None` when not compiled
    with a loss.
    """
    return model._compile_loss


def scale_loss_for_distribution(value):
    """`value` as one replica's share of a loss (`keras.src.losses.loss`).

    Under `tf.distribute`, Keras divides each replica's loss by the number
    of replicas (in every `Loss` with a mean reduction, and in
    `Trainer._aggregate_additional_loss` for the regularization losses), so
    that the replicas' summed gradients are those of the mean loss. A model
    that adds the regularization losses itself (`DeepEnsemble`) must scale
    them the same way; Keras exposes no public function for it. The identity
    on other backends and outside a strategy.
    """
    from keras.src.losses import loss

    return loss.scale_loss_for_distribution(value)


def unscale_loss_for_distribution(value):
    """The inverse of `scale_loss_for_distribution` (`keras.src.losses.loss`).

    Keras records a replica's loss in its loss trackers unscaled (as
    `Model.train_step` does); a model updating its own trackers
    (`DeepEnsemble`'s per-member losses) must do the same, or they log the
    loss divided by the number of replicas.
    """
    from keras.src.losses import loss

    return loss.unscale_loss_for_distribution(value)


@contextlib.contextmanager
def marked_uncompiled(model):
    """Sets `model.compiled` to False while inside.

    `keras.models.clone_model` compiles the clone like the source when the
    source is compiled, with no argument to skip it (and compiling a clone
    fails on an unregistered loss).
    """
    compiled = getattr(model, "compiled", False)
    model.compiled = False
    try:
        yield
    finally:
        model.compiled = compiled


def compile_train_function(model, train_step):
    """Compiles `model`'s train function around `train_step`; returns it.

    `Model.make_train_function` compiles the `train_step` it finds on the
    model and takes no other step function, so `train_step` is set on the
    instance for the duration (then put back as it was).
    """
    had_own = "train_step" in model.__dict__
    own = model.__dict__.get("train_step")
    model.train_step = train_step
    try:
        model.make_train_function(force=True)
    finally:
        if had_own:
            model.train_step = own
        else:
            del model.train_step
    return model.train_function


def set_train_function(model, function):
    """Makes `fit` run `function` as `model`'s compiled train function.

    `fit` calls `make_train_function()`, which keeps the `train_function`
    already set; Keras has no public way to install a compiled one.
    """
    model.train_function = function


# --------------------------------------------------------------- optimizers


def track_optimizer_variable(optimizer, variable):
    """Makes `optimizer` track `variable` (`Optimizer._track_variable`).

    As the optimizer's own slots: listed in `optimizer.variables`, threaded
    through the jax train step and saved with the optimizer. Keras has no
    public way to add a variable to a built optimizer.
    """
    optimizer._track_variable(variable)


def untrack_optimizer_variable(optimizer, variable):
    """Stops `optimizer` tracking `variable` (`Optimizer._tracker.untrack`).

    The inverse of `track_optimizer_variable`; no public API.
    """
    optimizer._tracker.untrack(variable)


def guard_optimizer_saving(optimizer, before):
    """Calls `before()` ahead of each save or load of `optimizer`'s variables.

    Keras has no hook before `save_own_variables` / `load_own_variables`
    (what `model.save`, `save_weights` and `load_weights` call), so both are
    replaced on the instance; `unguard_optimizer_saving` removes them.
    """
    cls = type(optimizer)

    def save_own_variables(store):
        before()
        return cls.save_own_variables(optimizer, store)

    def load_own_variables(store):
        before()
        return cls.load_own_variables(optimizer, store)

    optimizer.save_own_variables = save_own_variables
    optimizer.load_own_variables = load_own_variables


def unguard_optimizer_saving(optimizer):
    """Removes what `guard_optimizer_saving` installed on `optimizer`."""
    for name in ("save_own_variables", "load_own_variables"):
        if name in optimizer.__dict__:
            delattr(optimizer, name)


# ------------------------------------------------------------------ backend


@contextlib.contextmanager
def float64_promotion_kept():
    """Stops Keras' type promotion from demoting float64 to float32.

    `keras.backend.result_type` maps float64 to float32 on every backend but
    TensorFlow (the `BIT64_TO_BIT32_DTYPE` table of
    `keras.src.backend.common.dtypes`); Keras has no switch for it, so the
    table maps float64 to itself while inside. A no-op when the table is
    gone or no longer maps float64.
    """
    from keras.src.backend.common import dtypes as keras_dtypes

    table = getattr(keras_dtypes, "BIT64_TO_BIT32_DTYPE", None)
    if not isinstance(table, dict) or "float64" not in table:
        yield
        return
    previous = table["float64"]
    table["float64"] = "float64"
    try:
        yield
    finally:
        table["float64"] = previous


# ------------------------------------------------------------- Keras Tuner


def local_oracle(tuner):
    """The `keras_tuner.Oracle` behind a tuner (or an oracle), on any process.

    On a distributed worker `tuner.oracle` is Keras Tuner's `OracleClient`, a
    gRPC proxy that answers only the oracle calls of the search protocol
    (`get_best_trials`, `create_trial`, ...) and a few attributes; the
    worker's own `Oracle` object (its `trials`, `hyperparameters.space`, a
    custom oracle's attributes) is kept in the private `OracleClient._oracle`,
    with no public accessor. Single-process tuners have the `Oracle` itself
    as `tuner.oracle`, returned as is.

    Args:
        tuner: A Keras Tuner tuner or oracle.

    Returns:
        The `Oracle` object.
    """
    oracle = getattr(tuner, "oracle", tuner)
    return getattr(oracle, "_oracle", oracle)


def oracle_seed_state(oracle):
    """The oracle's random-draw counter (`Oracle._seed_state`).

    Saved and restored with the oracle's state (so a resumed search goes on
    drawing where it stopped); no public accessor.
    """
    return oracle._seed_state


def set_oracle_seed_state(oracle, value):
    """Sets `Oracle._seed_state` (see `oracle_seed_state`); no public setter."""
    oracle._seed_state = value


def oracle_max_collisions(oracle):
    """How many duplicate draws an oracle retries (`Oracle._max_collisions`).

    Keras Tuner's own limit for random sampling; not a constructor argument
    nor public.
    """
    return oracle._max_collisions


def oracle_has_tried(oracle, values):
    """Whether `values` were already tried (`Oracle._duplicate`).

    Keras Tuner's own duplicate check (it keeps the hashes of tried values);
    no public API.
    """
    return oracle._duplicate(values)


# ------------------------------------------------- initializer string names
# (keras-nightly 3.16.0.dev: registered names in `keras.initializers.get`)


def add_initializer_names(*classes):
    """Lets a string identifier name each class by its registered name.

    Keras up to 3.15 resolves a string initializer identifier
    (`kernel_initializer="kerasreg>HeNormal"`) through
    `keras.saving.deserialize_keras_object`, which finds registered classes;
    keras-nightly 3.16.0.dev2026102704 looks strings up only in its table of
    built-ins, `keras.src.initializers.ALL_OBJECTS_DICT` (as
    `keras.regularizers.get` already does in 3.15), and has no public way to
    add a name to it. Adding each registered name (`"package>Class"`, never a
    built-in name) there keeps such strings working on every Keras.

    Args:
        *classes: `keras.initializers.Initializer` subclasses registered
            with `keras.saving.register_keras_serializable`.
    """
    import keras
    from keras.src import initializers

    for cls in classes:
        initializers.ALL_OBJECTS_DICT[keras.saving.get_registered_name(cls)] = cls
