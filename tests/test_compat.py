"""The private Keras / Keras Tuner members `kerasreg._compat` relies on.

One test per `_compat` function (and per overridden hook): each fails with
a message naming the Keras member when a release moves, renames or stops
honouring it.
"""

import inspect

import keras
import keras_tuner
import numpy as np
import pytest

from kerasreg import _compat
from kerasreg._compat import local_oracle


def _has(obj, name, member):
    assert hasattr(obj, name), (
        f"Keras {keras.version()} / Keras Tuner {keras_tuner.__version__}: "
        f"`{member}` is gone; update kerasreg/_compat.py."
    )


def _dense_model():
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation="relu")]
    )


# ------------------------------------------------------------------- layers


class _Block(keras.layers.Layer):
    """A plain (non-model) layer holding a layer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(2, name="inner")

    def call(self, x):
        return self.inner(x)


def test_sublayers():
    _has(keras.layers.Layer, "_flatten_layers", "keras.layers.Layer._flatten_layers")
    block = _Block(name="block")
    nested = keras.Sequential([keras.Input((3,)), block], name="nested")
    model = keras.Sequential(
        [keras.Input((3,)), nested, keras.layers.Dense(1, name="out")]
    )
    def names(layers):
        return {
            layer.name for layer in layers
            if not isinstance(layer, keras.layers.InputLayer)
        }

    found = names(_compat.sublayers(model))
    assert found == {model.name, "nested", "block", "inner", "out"}, (
        "`Layer._flatten_layers` no longer finds the layers nested in "
        f"models and in plain layers: {found}"
    )
    assert _compat.sublayers(model)[0] is model
    assert names(_compat.sublayers(model, include_self=False)) == (
        found - {model.name}
    )
    assert names(_compat.sublayers(model, recursive=False)) == {
        model.name, "nested", "out"
    }


def test_unlocked_state():
    _has(keras.layers.Layer(), "_tracker", "keras.layers.Layer._tracker")
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    with pytest.raises(ValueError):
        # Otherwise `unlocked_state` has nothing left to do.
        layer.add_weight(shape=(), name="before")
    with _compat.unlocked_state(layer):
        extra = layer.add_weight(shape=(), name="extra")
    assert any(v is extra for v in layer.weights), (
        "`Layer._tracker.unlock()` no longer lets a built layer add a variable"
    )
    assert layer._tracker.locked, "`Layer._tracker.lock()` no longer relocks"


def test_replaced_calls():
    model = _dense_model()
    layer = model.layers[0]
    seen = []

    def make_call(layer):
        original = layer.call

        def call(inputs, *args, **kwargs):
            seen.append(layer.name)
            return original(inputs, *args, **kwargs)

        return call

    x = np.ones((2, 3), "float32")
    with _compat.replaced_calls([layer], make_call):
        model(x)
    assert seen == [layer.name], (
        "`Layer.__call__` no longer calls the instance's `call` attribute"
    )
    assert "call" not in vars(layer)
    model(x)
    assert seen == [layer.name]


def test_switched_activation():
    layer = keras.layers.Dense(
        1, activation="relu", kernel_initializer="ones", use_bias=False
    )
    x = -np.ones((1, 2), "float32")
    assert float(keras.ops.convert_to_numpy(layer(x))[0, 0]) == 0.0
    with _compat.switched_activation(layer, keras.activations.linear):
        out = float(keras.ops.convert_to_numpy(layer(x))[0, 0])
    assert out == -2.0, "`Dense.call` no longer applies `layer.activation`"
    assert layer.activation is keras.activations.relu


def test_set_batchnorm_momentum():
    layer = keras.layers.BatchNormalization(momentum=0.99)
    x = np.arange(8, dtype="float32").reshape(4, 2)
    layer(x, training=False)
    _compat.set_batchnorm_momentum(layer, 0.0)
    layer(x, training=True)
    mean = keras.ops.convert_to_numpy(layer.moving_mean)
    np.testing.assert_allclose(
        mean, x.mean(axis=0), rtol=1e-6,
        err_msg="`BatchNormalization.call` no longer reads `layer.momentum`",
    )


@pytest.mark.parametrize(
    "cls",
    [
        keras.layers.Dropout,
        keras.layers.GaussianDropout,
        keras.layers.AlphaDropout,
        keras.layers.SpatialDropout1D,
    ],
)
def test_set_dropout_rate(cls):
    layer = cls(0.5, seed=0)
    x = np.ones((2, 4, 3), "float32")
    _compat.set_dropout_rate(layer, 0.0)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_array_equal(
        out, x, err_msg=f"`{cls.__name__}.call` no longer reads `layer.rate`"
    )


def test_set_noise_stddev():
    layer = keras.layers.GaussianNoise(1.0, seed=0)
    x = np.ones((2, 3), "float32")
    _compat.set_noise_stddev(layer, 0.0)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_array_equal(
        out, x, err_msg="`GaussianNoise.call` no longer reads `layer.stddev`"
    )


def test_set_activity_regularizer():
    layer = keras.layers.Dense(2)
    x = np.ones((1, 3), "float32")
    layer(x)
    assert not layer.losses
    _compat.set_activity_regularizer(layer, keras.regularizers.L2(1.0))
    layer(x)
    assert layer.losses, (
        "`Layer.__call__` no longer reads `layer.activity_regularizer`"
    )
    _compat.set_activity_regularizer(layer, None)
    layer(x)
    assert not layer.losses


# ------------------------------------------------------------------- models


def test_compiled_loss():
    model = _dense_model()
    _has(model, "_compile_loss", "keras.Model._compile_loss")
    assert _compat.compiled_loss(model) is None
    model.compile(loss="mse")
    loss = _compat.compiled_loss(model)
    y = np.zeros((2, 2), "float32")
    y_pred = np.ones((2, 2), "float32")
    value = float(keras.ops.convert_to_numpy(loss(y, y_pred, None)))
    assert value == pytest.approx(1.0), (
        "`Model._compile_loss(y, y_pred, sample_weight)` no longer gives the "
        f"compiled loss: {value}"
    )


def test_scale_and_unscale_loss_for_distribution():
    # Outside a strategy (and on every backend but tensorflow) both are the
    # identity; their effect under `tf.distribute.MirroredStrategy` is
    # checked in tests/test_deep_ensemble.py (two devices vs one).
    from keras.src.losses import loss as loss_module

    for name in ("scale_loss_for_distribution",
                 "unscale_loss_for_distribution"):
        _has(loss_module, name, f"keras.src.losses.loss.{name}")
    value = keras.ops.convert_to_tensor(2.5)
    for fn in (_compat.scale_loss_for_distribution,
               _compat.unscale_loss_for_distribution):
        assert float(keras.ops.convert_to_numpy(fn(value))) == 2.5


def test_marked_uncompiled():
    model = _dense_model()
    model.compile(optimizer="sgd", loss="mse")
    assert keras.models.clone_model(model).compiled, (
        "`keras.models.clone_model` no longer compiles the clone of a "
        "compiled model: `_compat.marked_uncompiled` can go"
    )
    with _compat.marked_uncompiled(model):
        clone = keras.models.clone_model(model)
    assert not clone.compiled, (
        "`keras.models.clone_model` no longer reads `model.compiled`"
    )
    assert model.compiled


def test_compile_train_function():
    model = _dense_model()
    model.compile(optimizer="sgd", loss="mse")
    traced = []
    own = model.train_step

    def step(*args):  # (data), or (state, data) on jax
        traced.append(True)
        return own(*args)

    function = _compat.compile_train_function(model, step)
    assert function is model.train_function
    assert "train_step" not in vars(model)
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    assert traced, (
        "`Model.make_train_function` no longer compiles the `train_step` "
        "set on the instance"
    )


def test_set_train_function():
    model = _dense_model()
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 3)), np.zeros((4, 2))
    model.fit(x, y, epochs=1, verbose=0)
    ours = model.train_function
    model.make_train_function(force=True)
    assert model.train_function is not ours
    _compat.set_train_function(model, ours)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.train_function is ours, (
        "`fit` no longer keeps the `train_function` set on the model"
    )


# --------------------------------------------------------------- optimizers


def test_track_and_untrack_optimizer_variable():
    optimizer = keras.optimizers.Adam()
    _has(optimizer, "_track_variable", "keras.optimizers.Optimizer._track_variable")
    _has(optimizer, "_tracker", "keras.optimizers.Optimizer._tracker")
    optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    variable = keras.Variable(0.0, trainable=False, name="extra")
    _compat.track_optimizer_variable(optimizer, variable)
    assert any(v is variable for v in optimizer.variables), (
        "`Optimizer._track_variable` no longer lists the variable in "
        "`optimizer.variables`"
    )
    _compat.untrack_optimizer_variable(optimizer, variable)
    assert not any(v is variable for v in optimizer.variables), (
        "`Optimizer._tracker.untrack` no longer removes the variable"
    )


def test_guard_optimizer_saving(tmp_path):
    model = _dense_model()
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    calls = []
    _compat.guard_optimizer_saving(model.optimizer, lambda: calls.append(1))
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    model.load_weights(path)
    assert len(calls) == 2, (
        "`save_weights` / `load_weights` no longer call the optimizer's "
        f"`save_own_variables` / `load_own_variables` on the instance: {calls}"
    )
    _compat.unguard_optimizer_saving(model.optimizer)
    assert "save_own_variables" not in vars(model.optimizer)
    model.save_weights(path)
    assert len(calls) == 2


# ------------------------------------------------------------------ backend


def test_float64_promotion_kept():
    from keras.src.backend.common import dtypes

    table = getattr(dtypes, "BIT64_TO_BIT32_DTYPE", None)
    assert isinstance(table, dict) and "float64" in table, (
        "`keras.src.backend.common.dtypes.BIT64_TO_BIT32_DTYPE` moved or no "
        "longer maps float64: `_compat.float64_promotion_kept` is a no-op"
    )
    previous = table["float64"]
    if keras.backend.backend() == "jax":
        assert previous == "float32", (
            "`BIT64_TO_BIT32_DTYPE` no longer demotes float64 on jax"
        )
    with _compat.float64_promotion_kept():
        assert table["float64"] == "float64"
    assert table["float64"] == previous


# ------------------------------------------------------------- Keras Tuner


def test_local_oracle_of_a_single_process_tuner(tmp_path):
    tuner = keras_tuner.RandomSearch(
        lambda hp: None, objective="val_loss", max_trials=1,
        directory=str(tmp_path), project_name="p",
    )
    assert local_oracle(tuner) is tuner.oracle
    assert local_oracle(tuner.oracle) is tuner.oracle


def test_local_oracle_unwraps_the_oracle_client_of_a_worker(monkeypatch):
    # A distributed worker's `tuner.oracle` is Keras Tuner's OracleClient,
    # which keeps the worker's Oracle in the private `_oracle`.
    pytest.importorskip("grpc")
    from keras_tuner.src.distribute.oracle_client import OracleClient

    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "1")  # never connected to
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=3)
    client = OracleClient(oracle)
    with pytest.raises(AttributeError):
        client.trials  # no public way to the worker's Oracle
    assert local_oracle(client) is oracle, "`OracleClient._oracle` is gone"

    class Worker:
        pass

    worker = Worker()
    worker.oracle = client
    assert local_oracle(worker) is oracle


def test_oracle_seed_state():
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective="val_loss", max_trials=1, seed=5
    )
    _has(oracle, "_seed_state", "keras_tuner.Oracle._seed_state")
    assert _compat.oracle_seed_state(oracle) == 5
    _compat.set_oracle_seed_state(oracle, 7)
    assert oracle.get_state()["seed_state"] == 7, (
        "`Oracle.get_state()` no longer saves `Oracle._seed_state`"
    )


def test_oracle_max_collisions():
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective="val_loss", max_trials=1
    )
    _has(oracle, "_max_collisions", "keras_tuner.Oracle._max_collisions")
    assert isinstance(_compat.oracle_max_collisions(oracle), int)


def test_oracle_has_tried(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("x", [1, 2, 3])

    def build(hp):
        hp.Choice("x", [1, 2, 3])
        model = _dense_model()
        model.compile(loss="mse")
        return model

    tuner = keras_tuner.RandomSearch(
        build, objective="val_loss", max_trials=3, hyperparameters=hp,
        directory=str(tmp_path), project_name="p", seed=0,
    )
    oracle = tuner.oracle
    _has(oracle, "_duplicate", "keras_tuner.Oracle._duplicate")
    trial = oracle.create_trial("tuner0")
    tried = dict(trial.hyperparameters.values)
    assert _compat.oracle_has_tried(oracle, tried), (
        "`Oracle._duplicate` no longer knows the values of a created trial"
    )
    other = {"x": next(v for v in (1, 2, 3) if v != tried["x"])}
    assert not _compat.oracle_has_tried(oracle, other)


# ---------------------------------------------------------- overridden hooks


def _signature(cls, name):
    method = getattr(cls, name, None)
    assert method is not None, (
        f"`{cls.__module__}.{cls.__qualname__}.{name}`, a hook kerasreg "
        "overrides, is gone (see kerasreg/_compat.py)"
    )
    return str(inspect.signature(method))


def test_hook_oracle_check_consecutive_failures(tmp_path):
    assert _signature(keras_tuner.Oracle, "_check_consecutive_failures") == (
        "(self)"
    ), "`keras_tuner.Oracle._check_consecutive_failures` changed signature"
    called = []

    class Oracle(keras_tuner.oracles.RandomSearchOracle):
        def _check_consecutive_failures(self):
            called.append(True)

    def build(hp):
        hp.Float("x", 0.0, 1.0)
        model = _dense_model()
        model.compile(loss="mse")
        return model

    oracle = Oracle(objective="val_loss", max_trials=2)
    keras_tuner.Tuner(
        oracle=oracle, hypermodel=build, directory=str(tmp_path),
        project_name="p",
    )
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"val_loss": 1.0})
    trial.status = keras_tuner.engine.trial.TrialStatus.COMPLETED
    oracle.end_trial(trial)
    assert called, (
        "`keras_tuner.Oracle.end_trial` no longer calls "
        "`_check_consecutive_failures`, the hook kerasreg overrides"
    )


def test_hook_tuner_build_and_fit_model():
    assert _signature(keras_tuner.Tuner, "_build_and_fit_model") == (
        "(self, trial, *args, **kwargs)"
    ), "`keras_tuner.Tuner._build_and_fit_model` changed signature"
    assert "_build_and_fit_model" in inspect.getsource(
        keras_tuner.Tuner.run_trial
    ), "`keras_tuner.Tuner.run_trial` no longer calls the overridden hook"


def test_keras_internals_only_in_compat():
    # The members above are reached only through kerasreg/_compat.py.
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "kerasreg"
    pattern = re.compile(
        r"from keras\.src|import keras\.src|_jax_state|\._value\b"
        r"|_track_variable|_flatten_layers|_compile_loss|\._tracker\b"
        r"|\._seed_state\b|\._max_collisions|\._duplicate\(|_init_seed"
        r"|\._oracle\b|object\.__setattr__"
    )
    offenders = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        if path.name != "_compat.py" or path.parent != root
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], "Keras internals outside _compat.py:\n" + "\n".join(
        offenders
    )


# ------------------------------------------------- initializer string names
# (keras-nightly 3.16.0.dev: registered names in `keras.initializers.get`)


def test_add_initializer_names():
    # Regression: keras-nightly 3.16.0.dev2026102704's `keras.initializers.get`
    # looks strings up only in `keras.src.initializers.ALL_OBJECTS_DICT`, so
    # `kernel_initializer="kerasreg>HeNormal"` failed there.
    import keras
    from keras.src import initializers

    import kerasreg
    from kerasreg import _compat

    assert isinstance(getattr(initializers, "ALL_OBJECTS_DICT", None), dict), (
        f"Keras {keras.version()}: `keras.src.initializers.ALL_OBJECTS_DICT` "
        "is gone; update kerasreg/_compat.py."
    )
    assert initializers.ALL_OBJECTS_DICT["kerasreg>HeNormal"] is kerasreg.HeNormal
    assert isinstance(keras.initializers.get("kerasreg>HeNormal"), kerasreg.HeNormal)
    assert isinstance(keras.initializers.get("he_normal"), keras.initializers.HeNormal)

    @keras.saving.register_keras_serializable(package="kerasreg_test")
    class Halves(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return keras.ops.full(shape, 0.5, dtype=dtype)

    try:
        _compat.add_initializer_names(Halves)
        layer = keras.layers.Dense(2, kernel_initializer="kerasreg_test>Halves")
        layer.build((None, 3))
        assert keras.ops.convert_to_numpy(layer.kernel).tolist() == [[0.5] * 2] * 3
        # Still serialized as a registered (not built-in) object.
        config = keras.saving.serialize_keras_object(layer.kernel_initializer)
        assert config["registered_name"] == "kerasreg_test>Halves"
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is Halves
    finally:
        initializers.ALL_OBJECTS_DICT.pop("kerasreg_test>Halves", None)
        keras.saving.get_custom_objects().pop("kerasreg_test>Halves", None)
