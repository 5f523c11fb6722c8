"""Tests for kerasreg.callbacks.WeightEMA (numpy recurrence references)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

import kerasreg
from kerasreg.callbacks import WeightEMA


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1))).astype("float32")
    return x, y


def _model(lr=0.05, batchnorm=True):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((5,)), keras.layers.Dense(4)]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization(momentum=0.8))
    layers.append(keras.layers.Dense(1))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.SGD(lr), "mse")
    return model


def _numpy(model):
    return [np.array(ops.convert_to_numpy(v)) for v in model.weights]


class Recorder(keras.callbacks.Callback):
    """Records all model weights at the start and after every batch."""

    def on_train_begin(self, logs=None):
        self.weights = [_numpy(self.model)]

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append(_numpy(self.model))


def _reference(recorded, averaged, decay, warmup=False, every=1, start=0):
    """The numpy recurrence of the EMA over the recorded weights."""
    shadow = [w.copy() for w in recorded[0]]
    n = 0
    for s in range(1, len(recorded)):
        w = recorded[s]
        if s <= start:
            shadow = [a.copy() for a in w]
            continue
        if (s - start) % every:
            continue
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        shadow = [
            d * sh + (1 - d) * a if avg else a
            for sh, a, avg in zip(shadow, w, averaged, strict=True)
        ]
        n += 1
    # Variables that are not averaged are taken as they are now.
    return [
        sh if avg else w for sh, w, avg in zip(shadow, recorded[-1], averaged, strict=True)
    ]


def _averaged_mask(model, include_bn=True):
    trainable = {id(v) for v in model.trainable_variables}
    bn = set()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            bn |= {id(layer.moving_mean), id(layer.moving_variance)}
    return [
        id(v) in trainable or (include_bn and id(v) in bn)
        for v in model.weights
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(decay=0.9),
        dict(decay=0.95, warmup=True),
        dict(decay=0.9, every=3, start_step=2),
        dict(decay=0.9, warmup=True, every=4),
        dict(decay=0.9, include_batchnorm_statistics=False),
    ],
)
def test_shadow_equals_numpy_recurrence(kwargs):
    x, y = _data()
    model = _model()
    ema, recorder = WeightEMA(**kwargs), Recorder()
    model.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
        callbacks=[recorder, ema],
    )
    assert len(recorder.weights) == 13  # 12 steps + the start
    mask = _averaged_mask(
        model, kwargs.get("include_batchnorm_statistics", True)
    )
    expected = _reference(
        recorder.weights,
        mask,
        kwargs["decay"],
        kwargs.get("warmup", False),
        kwargs.get("every", 1),
        kwargs.get("start_step", 0),
    )
    for got, want in zip(ema.shadow_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The model itself still holds the raw weights.
    for got, want in zip(_numpy(model), recorder.weights[-1], strict=True):
        np.testing.assert_array_equal(got, want)


def test_validation_uses_ema_and_training_continues_from_raw():
    x, y = _data()
    model = _model()
    ema = WeightEMA(decay=0.8)

    class Probe(Recorder):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            self.at_test, self.at_epoch_begin, self.at_epoch_end = [], [], []

        def on_test_begin(self, logs=None):
            self.at_test.append(_numpy(self.model))

        def on_epoch_begin(self, epoch, logs=None):
            self.at_epoch_begin.append(_numpy(self.model))

        def on_epoch_end(self, epoch, logs=None):
            self.at_epoch_end.append(len(self.weights))

    probe = Probe()
    history = model.fit(
        x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
        validation_data=(x, y), callbacks=[ema, probe],
    )
    mask = _averaged_mask(model)
    for epoch in range(2):
        upto = probe.at_epoch_end[epoch]
        expected = _reference(probe.weights[:upto], mask, 0.8)
        for got, want in zip(probe.at_test[epoch], expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # val_loss is the loss of the EMA weights.
        clone = keras.models.clone_model(model)
        clone.set_weights(expected)
        pred = ops.convert_to_numpy(clone(x, training=False))
        np.testing.assert_allclose(
            history.history["val_loss"][epoch],
            np.mean((pred - y) ** 2),
            rtol=1e-4,
        )
    # Epoch 2 started from the raw weights of the end of epoch 1.
    for got, want in zip(probe.at_epoch_begin[1], probe.weights[3], strict=True):
        np.testing.assert_array_equal(got, want)


def test_evaluate_predict_after_fit_and_averaged_model():
    x, y = _data()
    model = _model()
    ema = WeightEMA(decay=0.9)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[ema])
    raw = _numpy(model)
    n_optimizer = len(model.optimizer.variables)
    averaged = ema.averaged_model()
    for got, want in zip(_numpy(averaged), ema.shadow_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    expected = ops.convert_to_numpy(averaged(x, training=False))
    np.testing.assert_allclose(
        model.predict(x, verbose=0, callbacks=[ema]), expected, rtol=1e-5,
        atol=1e-6,
    )
    loss = model.evaluate(x, y, verbose=0, callbacks=[ema])
    np.testing.assert_allclose(loss, np.mean((expected - y) ** 2), rtol=1e-4)
    # Raw weights are back, and the optimizer state is as without WeightEMA.
    for got, want in zip(_numpy(model), raw, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(model.optimizer.variables) == n_optimizer


def test_optimizer_state_is_restored_and_second_fit_works(tmp_path):
    x, y = _data()
    model = _model()
    plain = _model()
    plain.fit(x, y, batch_size=16, epochs=1, verbose=0)
    ema = WeightEMA(decay=0.9)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[ema])
    assert len(model.optimizer.variables) == len(plain.optimizer.variables)
    # A plain fit and a second fit with the callback both work (the
    # optimizer's own use_ema breaks a second fit on jax).
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    recorder = Recorder()
    model.fit(
        x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
        callbacks=[recorder, ema],
    )
    expected = _reference(recorder.weights, _averaged_mask(model), 0.9)
    for got, want in zip(ema.shadow_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The model saves and loads with its optimizer state intact.
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(a), ops.convert_to_numpy(b)
        )


def test_apply_at_end():
    x, y = _data()
    model = _model()
    ema = WeightEMA(decay=0.9, apply_at_end=True)
    recorder = Recorder()
    model.fit(
        x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
        callbacks=[recorder, ema],
    )
    expected = _reference(recorder.weights, _averaged_mask(model), 0.9)
    for got, want in zip(_numpy(model), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("ema_first", [True, False])
def test_backup_and_restore_resume_equals_uninterrupted(tmp_path, ema_first):
    x, y = _data()
    kwargs = dict(decay=0.9, warmup=True, every=2)

    def callbacks(ema, backup_dir, extra=()):
        backup = keras.callbacks.BackupAndRestore(str(backup_dir))
        order = [ema, backup] if ema_first else [backup, ema]
        return order + list(extra)

    model = _model()
    ema = WeightEMA(**kwargs)
    model.fit(
        x, y, batch_size=16, epochs=4, shuffle=False, verbose=0,
        callbacks=callbacks(ema, tmp_path / "a"),
    )
    uninterrupted = ema.shadow_weights()

    model = _model()
    ema = WeightEMA(**kwargs)
    with pytest.raises(RuntimeError):
        model.fit(
            x, y, batch_size=16, epochs=4, shuffle=False, verbose=0,
            callbacks=callbacks(ema, tmp_path / "b", [_Interrupt(2)]),
        )
    # A new process: a fresh model and a fresh callback.
    keras.backend.clear_session()
    model = _model()
    ema = WeightEMA(**kwargs)
    model.fit(
        x, y, batch_size=16, epochs=4, shuffle=False, verbose=0,
        callbacks=callbacks(ema, tmp_path / "b"),
    )
    for got, want in zip(ema.shadow_weights(), uninterrupted, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_ema_model_not_worse_on_noisy_training():
    rng = np.random.default_rng(3)
    w_true = rng.normal(size=(20,))
    x = rng.normal(size=(512, 20)).astype("float32")
    y = (x @ w_true > 0).astype("int32")
    noisy = np.where(rng.random(512) < 0.2, 1 - y, y)
    x_test = rng.normal(size=(1000, 20)).astype("float32")
    y_test = (x_test @ w_true > 0).astype("int32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(keras.optimizers.SGD(1.0), "sparse_categorical_crossentropy")
    ema = WeightEMA(decay=0.95, warmup=True)
    model.fit(x, noisy, batch_size=8, epochs=2, verbose=0, callbacks=[ema])

    def accuracy(m):
        pred = ops.convert_to_numpy(m(x_test, training=False))
        return np.mean(pred.argmax(-1) == y_test)

    assert accuracy(ema.averaged_model()) >= accuracy(model)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(decay=1.0), "decay"),
        (dict(decay=0.0), "decay"),
        (dict(decay="0.9"), "decay"),
        (dict(every=0), "every"),
        (dict(every=1.5), "every"),
        (dict(start_step=-1), "start_step"),
        (dict(warmup="yes"), "warmup"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"argument `{message}`"):
        WeightEMA(**kwargs)


def test_shadow_weights_before_fit_raises():
    with pytest.raises(ValueError, match="no averaged weights"):
        WeightEMA().shadow_weights()


def test_config_round_trip():
    ema = WeightEMA(decay=0.99, warmup=True, every=3, start_step=5,
                    swap_on_evaluate=False, apply_at_end=True,
                    include_batchnorm_statistics=False)
    config = ema.get_config()
    again = WeightEMA.from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(ema)
    )
    assert isinstance(restored, WeightEMA)
    assert restored.get_config() == config
    assert kerasreg.WeightEMA is WeightEMA


_MIRRORED = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras import ops
    from kerasreg.callbacks import WeightEMA

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.05), "mse")
    weights = []

    class Rec(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            weights.append([ops.convert_to_numpy(v) for v in model.weights])

        def on_train_batch_end(self, batch, logs=None):
            weights.append([ops.convert_to_numpy(v) for v in model.weights])

    ema = WeightEMA(decay=0.8, every=2)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
              validation_data=(x, y), callbacks=[Rec(), ema])
    shadow = [w.copy() for w in weights[0]]
    for s in range(2, len(weights), 2):
        shadow = [0.8 * a + 0.2 * b for a, b in zip(shadow, weights[s])]
    got = ema.shadow_weights()
    assert len(weights) == 9, len(weights)
    for a, b in zip(got, shadow):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    print("MIRRORED_OK")
    """
)


@pytest.mark.slow
def test_mirrored_strategy_two_cpus():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute needs the tensorflow backend")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED], env=env, capture_output=True,
        text=True, timeout=240,
    )
    assert "MIRRORED_OK" in result.stdout, result.stderr[-3000:]


# ---------------------------------------------------------------- issue 12


def my_loss(y_true, y_pred):  # an ordinary, unregistered Python loss
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


class Scale(keras.layers.Layer):  # an unregistered custom layer
    def __init__(self, init=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape):
        self.scale = self.add_weight(
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.init),
        )

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "init": self.init}


def test_averaged_model_unregistered_loss_and_layer_is_uncompiled():
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,)), Scale(0.5), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.SGD(0.05), my_loss)
    ema = WeightEMA(decay=0.9)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[ema])
    averaged = ema.averaged_model()
    assert not averaged.compiled
    assert isinstance(averaged.layers[0], Scale)
    shadows = ema.shadow_weights()
    for got, want in zip(_numpy(averaged), shadows, strict=True):
        np.testing.assert_array_equal(got, want)
    scale, kernel, bias = shadows
    np.testing.assert_allclose(
        ops.convert_to_numpy(averaged(x)), (x * scale) @ kernel + bias,
        rtol=1e-5, atol=1e-6,
    )


def _unbuilt_model():
    """Keras' SwapEMAWeights test model: no `keras.Input`, built by fit."""
    model = keras.Sequential([
        keras.layers.Dense(
            3, kernel_initializer=keras.initializers.GlorotUniform(seed=1)
        ),
        keras.layers.Dense(
            1, kernel_initializer=keras.initializers.GlorotUniform(seed=2)
        ),
    ])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    return model


@pytest.mark.parametrize("every", [1, 2])
def test_unbuilt_sequential_equals_numpy_recurrence(every):
    x, y = _data()
    initial = _unbuilt_model()
    initial.build((None, 5))
    start = _numpy(initial)  # the same seeded initial weights

    class AfterBatches(keras.callbacks.Callback):
        weights = []

        def on_train_batch_end(self, batch, logs=None):
            self.weights.append(_numpy(self.model))

    model = _unbuilt_model()
    assert not model.built
    recorder = AfterBatches()
    ema = WeightEMA(decay=0.8, every=every)
    model.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
        callbacks=[recorder, ema],
    )
    assert len(recorder.weights) == 12
    expected = _reference(
        [start] + recorder.weights, [True] * 4, 0.8, every=every
    )
    for got, want in zip(ema.shadow_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Detached after fit; a second fit starts afresh from the raw weights.
    plain = _unbuilt_model()
    plain.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert len(model.optimizer.variables) == len(plain.optimizer.variables)
    recorder.weights = []
    before = _numpy(model)
    model.fit(
        x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
        callbacks=[recorder, ema],
    )
    expected = _reference(
        [before] + recorder.weights, [True] * 4, 0.8, every=every
    )
    for got, want in zip(ema.shadow_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class _RaiseAtBatch(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("save_first", [True, False])
def test_interrupted_fit_leaves_no_state_behind(tmp_path, save_first):
    import warnings

    x, y = _data()
    plain = _model()
    plain.fit(x, y, batch_size=16, epochs=1, verbose=0)
    n_plain = len(plain.optimizer.variables)
    model = _model()
    ema = WeightEMA(decay=0.9)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
            callbacks=[ema, _RaiseAtBatch(1, 2)],
        )
    if save_first:
        path = str(tmp_path / "m.keras")
        model.save(path)
        assert len(model.optimizer.variables) == n_plain
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "Skipping variable loading"
            loaded = keras.saving.load_model(path)
        assert len(loaded.optimizer.variables) == n_plain
        assert int(ops.convert_to_numpy(loaded.optimizer.iterations)) == 9
        for a, b in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
            np.testing.assert_array_equal(
                ops.convert_to_numpy(a), ops.convert_to_numpy(b)
            )
    # The next fit with the same callback starts a fresh average.
    recorder = Recorder()
    model.fit(
        x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
        callbacks=[recorder, ema],
    )
    expected = _reference(recorder.weights, _averaged_mask(model), 0.9)
    for got, want in zip(ema.shadow_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert len(model.optimizer.variables) == n_plain


def test_in_step_when_runs_the_update_only_on_due_steps():
    from kerasreg.callbacks import _in_step

    x = ops.convert_to_tensor(1)
    assert int(_in_step.when(None, lambda: x + 1, lambda: x)) == 2
    due = ops.convert_to_tensor(True)
    assert int(_in_step.when(due, lambda: x + 1, lambda: x)) == 2
    not_due = ops.convert_to_tensor(False)
    assert int(_in_step.when(not_due, lambda: x + 1, lambda: x)) == 1


class GuideModel(keras.Model):
    """The Keras guide's subclassed model: no argument, no `get_config`."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(4, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def test_averaged_model_of_a_subclassed_model_without_get_config():
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = GuideModel()
    model.compile(keras.optimizers.SGD(0.05), "mse")
    ema = WeightEMA(decay=0.9)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[ema])
    averaged = ema.averaged_model()
    assert isinstance(averaged, GuideModel) and not averaged.compiled
    for got, want in zip(_numpy(averaged), ema.shadow_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
