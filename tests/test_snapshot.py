"""Tests for SnapshotCallback and SnapshotEnsemble (both backends)."""

import json
import os
import warnings

import keras
import numpy as np
import pytest

import kerasreg
from kerasreg import SnapshotCallback
from kerasreg import SnapshotEnsemble
from kerasreg.callbacks.snapshot import FileStore
from kerasreg.ensembles import report
from kerasreg.schedules import CyclicCosine


def _data(n=48, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, :classes].argmax(axis=1)).astype("int32")
    return x, y


def _mlp(d=6, classes=3, hidden=8, bn=False):
    layers = [keras.Input((d,)), keras.layers.Dense(hidden, activation="relu")]
    if bn:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Dense(classes, activation="softmax"))
    return keras.Sequential(layers)


def _floats(model):
    return [
        keras.ops.convert_to_numpy(v)
        for v in model.trainable_variables + model.non_trainable_variables
        if "float" in str(v.dtype)
    ]


class _Recorder(keras.callbacks.Callback):
    """Weights before and after each step of the fit (position -> arrays)."""

    def __init__(self):
        super().__init__()
        self.before, self.after = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.before.append(self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        self.after.append(self.model.get_weights())


def test_callback_snapshots_at_cycle_ends():
    # 5 epochs x 4 steps = 20 steps, 3 cycles of ceil(20/3) = 7 steps: the
    # last cycle is shorter, so the ends are 6, 13 and 19.
    x, y = _data(n=16)
    model = _mlp()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    recorder = _Recorder()
    snap = SnapshotCallback(3, initial_learning_rate=0.2)
    model.fit(x, y, epochs=5, batch_size=4, shuffle=False, verbose=0,
              callbacks=[recorder, snap])
    ends = CyclicCosine(0.2, total_steps=20, n_cycles=3).cycle_end_steps
    assert ends == (6, 13, 19)
    assert snap.snapshot_steps == list(ends)
    snapshots = snap.snapshots
    assert len(snapshots) == 3
    for snapshot, t in zip(snapshots, ends):
        for got, want in zip(snapshot.get_weights(), recorder.after[t]):
            np.testing.assert_allclose(got, want, rtol=0, atol=0)
    kernels = [s.get_weights()[0] for s in snapshots]
    assert not np.allclose(kernels[0], kernels[1])
    assert not np.allclose(kernels[1], kernels[2])
    # The callback's own state is detached from the optimizer after fit.
    assert len(model.optimizer.variables) == 2


def test_learning_rate_used_is_cyclic_cosine():
    # Linear model, plain SGD, MSE: w' = w - lr * g with g = 2/B X^T (Xw - y)
    # (mean over the batch), so the rate each step used is recoverable.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(1, use_bias=False)]
    )
    model.compile(keras.optimizers.SGD(1.0), "mse")
    recorder = _Recorder()
    snap = SnapshotCallback(3, initial_learning_rate=0.05, min_learning_rate=0.01)
    model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0,
              callbacks=[recorder, snap])
    schedule = CyclicCosine(0.05, total_steps=12, n_cycles=3,
                            min_learning_rate=0.01)
    for t in range(12):
        w = recorder.before[t][0].astype("float64")
        xb = x[4 * (t % 4): 4 * (t % 4) + 4].astype("float64")
        yb = y[4 * (t % 4): 4 * (t % 4) + 4].astype("float64")
        g = 2.0 / 4 * xb.T @ (xb @ w - yb)
        step = recorder.after[t][0] - recorder.before[t][0]
        lr = -(step.ravel() @ g.ravel()) / (g.ravel() @ g.ravel())
        np.testing.assert_allclose(lr, float(schedule(t)), rtol=2e-3)


def _fit_se(x, y, epochs=6, n=3, keep=None, batch_size=16, **kwargs):
    se = SnapshotEnsemble(_mlp(), n_snapshots=n, initial_learning_rate=0.2,
                          keep=keep, **kwargs)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
               metrics=["accuracy"])
    se.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=False,
           verbose=0)
    return se


def test_predict_is_mean_of_snapshots_and_keras_round_trip(tmp_path):
    x, y = _data()
    se = _fit_se(x, y)
    assert se.snapshot_steps == [5, 11, 17]
    members = np.stack([m.predict(x, verbose=0) for m in se.snapshots])
    probs = se.predict(x, verbose=0)
    np.testing.assert_allclose(probs, members.mean(axis=0), atol=1e-6)
    loss, acc = se.evaluate(x, y, verbose=0)
    mean = members.mean(axis=0)
    np.testing.assert_allclose(acc, np.mean(mean.argmax(1) == y), atol=1e-6)
    np.testing.assert_allclose(
        loss, -np.mean(np.log(mean[np.arange(len(y)), y])), rtol=1e-4
    )
    path = str(tmp_path / "se.keras")
    se.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SnapshotEnsemble)
    assert loaded.snapshot_steps == [5, 11, 17]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), probs, atol=1e-6)
    for a, b in zip(loaded.snapshots, se.snapshots):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)


def test_keep_vote_and_last():
    x, y = _data()
    se = _fit_se(x, y, epochs=8, n=4, keep=3)
    assert se.snapshot_steps == [11, 17, 23]  # the last 3 of 4
    members = np.stack([m.predict(x, verbose=0) for m in se.snapshots])
    np.testing.assert_allclose(
        se.predict(x, verbose=0), members.mean(axis=0), atol=1e-6
    )
    voted = se.ensemble(last=2, combine="vote").predict(x, verbose=0)
    votes = members[-2:].argmax(axis=-1)
    shares = np.stack([(votes == c).mean(axis=0) for c in range(3)], axis=-1)
    np.testing.assert_allclose(voted, shares, atol=2e-5)


def test_fit_validation_reports_the_current_model():
    x, y = _data()
    se = SnapshotEnsemble(_mlp(), n_snapshots=2, initial_learning_rate=0.2)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")

    class Check(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch != 1:
                return
            inner = se.model(x, training=False)
            self.expected = float(
                keras.ops.convert_to_numpy(
                    keras.losses.sparse_categorical_crossentropy(y, inner)
                ).mean()
            )
            self.got = logs["val_loss"]

    check = Check()
    # 9 steps, cycle ends 4 and 8: after epoch 2 (step 5) one snapshot is
    # taken and the model has moved on; the validation is the live model.
    se.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0,
           validation_data=(x, y), callbacks=[check])
    np.testing.assert_allclose(check.got, check.expected, rtol=1e-4)


@pytest.mark.slow
def test_digits_ensemble_beats_mean_snapshot():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    xtr, ytr, xte, yte = x[:800], y[:800], x[800:], y[800:]
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    se = SnapshotEnsemble(model, n_snapshots=4, initial_learning_rate=0.2)
    se.compile(keras.optimizers.SGD(0.1, momentum=0.9),
               "sparse_categorical_crossentropy", metrics=["accuracy"])
    se.fit(xtr, ytr, epochs=12, batch_size=64, verbose=0)
    members = np.stack([m.predict(xte, verbose=0) for m in se.snapshots])
    member_acc = [(p.argmax(1) == yte).mean() for p in members]
    _, acc = se.evaluate(xte, yte, verbose=0)
    assert len(set(round(a, 6) for a in member_acc)) > 1 or np.any(
        members[0] != members[-1]
    )
    assert acc >= np.mean(member_acc)
    assert acc > 0.85


def _resume_run(tmp_path, initial, interrupt, snapshot_dir=None):
    x, y = _data()
    model = _mlp(bn=True)
    model.set_weights(initial)
    se = SnapshotEnsemble(model, n_snapshots=3, initial_learning_rate=0.2,
                          snapshot_dir=snapshot_dir)
    se.compile(keras.optimizers.SGD(0.1, momentum=0.9),
               "sparse_categorical_crossentropy")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if interrupt and epoch == 3:
                raise RuntimeError("interrupted")

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    se.fit(x, y, epochs=6, batch_size=16, shuffle=False, verbose=0,
           callbacks=[backup, Interrupt()])
    return se


@pytest.mark.slow
@pytest.mark.parametrize("use_dir", [False, True], ids=["memory", "dir"])
def test_backup_and_restore_resume_equals_uninterrupted(tmp_path, use_dir):
    initial = _mlp(bn=True).get_weights()
    snap_a = str(tmp_path / "a") if use_dir else None
    snap_b = str(tmp_path / "b") if use_dir else None
    reference = _resume_run(tmp_path / "ref", initial, False, snap_a)
    with pytest.raises(RuntimeError, match="interrupted"):
        _resume_run(tmp_path / "run", initial, True, snap_b)
    # A new process would start from a fresh model: other initial weights.
    other = _mlp(bn=True).get_weights()
    resumed = _resume_run(tmp_path / "run", other, False, snap_b)
    assert resumed.snapshot_steps == reference.snapshot_steps == [5, 11, 17]
    for a, b in zip(resumed.snapshots, reference.snapshots):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    for wa, wb in zip(resumed.model.get_weights(),
                      reference.model.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_snapshot_dir_files_and_lazy_load(tmp_path):
    x, y = _data()
    directory = tmp_path / "snaps"
    se = _fit_se(x, y, snapshot_dir=str(directory))
    manifest = json.loads((directory / "snapshots.json").read_text())
    assert manifest["steps"] == [5, 11, 17]
    assert sorted(os.listdir(directory)) == [
        "snapshot_000.weights.h5", "snapshot_001.weights.h5",
        "snapshot_002.weights.h5", "snapshots.json",
    ]
    # Another process: rebuilt from the files alone.
    store = FileStore(str(directory))
    rebuilt = [store.load(i) for i in range(3)]
    members = np.stack([m.predict(x, verbose=0) for m in rebuilt])
    np.testing.assert_allclose(
        se.predict(x, verbose=0), members.mean(axis=0), atol=1e-6
    )
    # The .keras file keeps the directory: the loaded model reads it.
    path = str(tmp_path / "se.keras")
    se.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), members.mean(axis=0), atol=1e-6
    )


def test_callback_with_snapshot_dir(tmp_path):
    x, y = _data()
    model = _mlp()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    snap = SnapshotCallback(2, snapshot_dir=str(tmp_path), keep=1)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[snap])
    assert snap.snapshot_steps == [5]
    (last,) = snap.snapshots
    for a, b in zip(last.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_averaged_weights_and_batchnorm(tmp_path):
    x, y = _data()
    se = SnapshotEnsemble(_mlp(bn=True), n_snapshots=3,
                          initial_learning_rate=0.2)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    se.fit(x, y, epochs=3, batch_size=16, verbose=0)
    snaps = [s.get_weights() for s in se.snapshots]
    averaged = se.averaged(x, batch_size=16)
    w = averaged.get_weights()
    # Dense kernels and biases, BN gamma/beta: the mean of the snapshots.
    for i in (0, 1, 2, 3, 6, 7):
        np.testing.assert_allclose(
            w[i], np.mean([s[i] for s in snaps], axis=0), atol=1e-6
        )
    # BN statistics: mean over the 3 batches of the averaged Dense output.
    h = np.maximum(x @ w[0] + w[1], 0.0).reshape(3, 16, -1)
    np.testing.assert_allclose(w[4], h.mean(axis=1).mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(w[5], h.var(axis=1).mean(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="BatchNormalization"):
        se.averaged()


def test_report_on_snapshot_ensemble():
    x, y = _data()
    se = _fit_se(x, y)
    table = report(se, x, y)
    names = [r["model"] for r in table.rows]
    assert names[:3] == ["snapshot 0", "snapshot 1", "snapshot 2"]
    # Parameter-averaged row, with the real average_weights: numpy forward
    # pass with the mean of the snapshots' weights.
    snaps = [s.get_weights() for s in se.snapshots]
    w = [np.mean([s[i] for s in snaps], axis=0) for i in range(4)]
    logits = np.maximum(x @ w[0] + w[1], 0) @ w[2] + w[3]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    row = table.row("parameter-averaged")
    np.testing.assert_allclose(row["accuracy"], np.mean(p.argmax(1) == y))
    np.testing.assert_allclose(
        row["nll"], -np.mean(np.log(p[np.arange(len(y)), y])), rtol=1e-4
    )


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"n_snapshots": 0}, "n_snapshots"),
        ({"n_snapshots": 2.5}, "n_snapshots"),
        ({"n_snapshots": 3, "keep": 4}, "keep"),
        ({"n_snapshots": 3, "keep": 0}, "keep"),
        ({"combine": "median"}, "combine"),
        ({"initial_learning_rate": 0.0}, "initial_learning_rate"),
        ({"initial_learning_rate": 0.1, "min_learning_rate": 0.2},
         "min_learning_rate"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        SnapshotEnsemble(_mlp(), **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k != "combine"}
    if kwargs:
        kwargs.setdefault("n_snapshots", 3)
        with pytest.raises(ValueError, match=f"argument `{argument}`"):
            SnapshotCallback(**kwargs)


def test_bad_fits():
    x, y = _data(n=16)
    se = SnapshotEnsemble(_mlp(), n_snapshots=6)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="n_snapshots=6"):  # 4 steps < 6
        se.fit(x, y, epochs=1, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="only 5 cycle ends"):  # 10 steps
        se.fit(x[:10], y[:10], epochs=1, batch_size=1, verbose=0)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    se.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="schedule object"):
        se.fit(x, y, epochs=8, batch_size=4, verbose=0)

    def batches():
        while True:
            yield x, y

    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        se.fit(batches(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="argument `last`"):
        _fit_se(*_data()).ensemble(last=4)


def test_config_round_trip():
    se = SnapshotEnsemble(_mlp(), n_snapshots=4, initial_learning_rate=0.05,
                          min_learning_rate=0.001, keep=2, combine="geometric")
    config = se.get_config()
    clone = SnapshotEnsemble.from_config(config)
    assert clone.get_config() == config
    assert config["keep"] == 2 and config["combine"] == "geometric"
    snap = SnapshotCallback(4, 0.05, 0.001, keep=2)
    assert SnapshotCallback.from_config(snap.get_config()).get_config() == (
        snap.get_config()
    )
    assert kerasreg.SnapshotEnsemble is SnapshotEnsemble


def test_callback_alone_resume_keeps_snapshots(tmp_path):
    x, y = _data()
    initial = _mlp().get_weights()

    def run(directory, interrupt):
        model = _mlp()
        model.set_weights(initial)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      "sparse_categorical_crossentropy")
        snap = SnapshotCallback(3, initial_learning_rate=0.2)

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if interrupt and epoch == 4:
                    raise RuntimeError("interrupted")

        backup = keras.callbacks.BackupAndRestore(str(directory))
        model.fit(x, y, epochs=6, batch_size=16, shuffle=False, verbose=0,
                  callbacks=[backup, snap, Interrupt()])
        return snap

    reference = run(tmp_path / "ref", False)
    with pytest.raises(RuntimeError, match="interrupted"):
        run(tmp_path / "run", True)
    resumed = run(tmp_path / "run", False)  # fresh model and callback
    assert resumed.snapshot_steps == reference.snapshot_steps == [5, 11, 17]
    for a, b in zip(resumed.snapshots, reference.snapshots):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_logits_model_and_non_model_refused():
    logits = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="argument `model`.*logits"):
        SnapshotEnsemble(logits)
    with pytest.raises(ValueError, match="argument `model`"):
        SnapshotEnsemble("not a model")


def test_tf_data_and_class_weight():
    import tensorflow as tf

    x, y = _data()
    se = SnapshotEnsemble(_mlp(), n_snapshots=2, initial_learning_rate=0.2)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    se.fit(dataset, epochs=2, verbose=0)
    assert se.snapshot_steps == [2, 5]
    se.fit(x, y, epochs=2, batch_size=16, verbose=0,
           class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    assert se.snapshot_steps == [2, 5]
    members = np.stack([m.predict(x, verbose=0) for m in se.snapshots])
    np.testing.assert_allclose(se.predict(x, verbose=0), members.mean(0),
                               atol=1e-6)


# ---------------------------------------------------------------- issue 12


def my_loss(y_true, y_pred):  # an ordinary, unregistered Python loss
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)


def test_callback_snapshots_uncompiled_with_unregistered_loss(tmp_path):
    x, y = _data()
    model = _mlp()
    model.compile(keras.optimizers.SGD(0.1), my_loss)
    recorder = _Recorder()
    snap = SnapshotCallback(2, initial_learning_rate=0.2)
    disk = SnapshotCallback(2, initial_learning_rate=0.2,
                            snapshot_dir=tmp_path / "snaps")
    model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
              callbacks=[recorder, snap, disk])
    assert snap.snapshot_steps == disk.snapshot_steps == [2, 5]
    for snapshots in (snap.snapshots, disk.snapshots,
                      [FileStore(str(tmp_path / "snaps")).load(i)
                       for i in range(2)]):
        assert [s.compiled for s in snapshots] == [False, False]
        for snapshot, t in zip(snapshots, [2, 5]):
            for got, want in zip(snapshot.get_weights(), recorder.after[t]):
                np.testing.assert_array_equal(got, want)


def test_callback_on_unbuilt_sequential():
    x, y = _data(n=16)
    model = keras.Sequential([
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    assert not model.built
    recorder = _Recorder()
    snap = SnapshotCallback(2, initial_learning_rate=0.2)
    model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
              callbacks=[recorder, snap])
    assert snap.snapshot_steps == [3, 7]
    for snapshot, t in zip(snap.snapshots, [3, 7]):
        for got, want in zip(snapshot.get_weights(), recorder.after[t]):
            np.testing.assert_array_equal(got, want)
    assert len(model.optimizer.variables) == 2


def test_interrupted_callback_fit_saves_a_clean_model(tmp_path):
    import warnings

    x, y = _data()
    model = _mlp()
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  "sparse_categorical_crossentropy")

    class Raise(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
                  callbacks=[SnapshotCallback(2), Raise()])
    path = str(tmp_path / "m.keras")
    model.save(path)
    n_plain = 2 + len(model.trainable_variables)  # iterations, rate, momenta
    assert len(model.optimizer.variables) == n_plain
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Skipping variable loading"
        loaded = keras.saving.load_model(path)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 2
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


class _Rates(keras.callbacks.Callback):
    """The learning rate each step trained with."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate)))


def test_continue_with_initial_epoch_starts_a_new_run():
    # fit(epochs=2), then the usual Keras continuation fit(epochs=4,
    # initial_epoch=2): a new run over the 2 * 3 steps of that call.
    x, y = _data()
    se = SnapshotEnsemble(_mlp(), n_snapshots=2, initial_learning_rate=0.2)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    first = _Rates()
    se.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
           callbacks=[first])
    assert se.snapshot_steps == [2, 5]
    rates, after = _Rates(), []

    class Inner(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            after.append(self.model.model.get_weights())  # the wrapped model

    recorder = Inner()
    se.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, shuffle=False,
           verbose=0, callbacks=[rates, recorder])
    expected = [float(CyclicCosine(0.2, 6, 2)(t)) for t in range(6)]
    np.testing.assert_allclose(first.rates, expected, rtol=1e-6)
    np.testing.assert_allclose(rates.rates, expected, rtol=1e-6)
    assert max(rates.rates) <= 0.2 * (1 + 1e-6)
    assert se.snapshot_steps == [2, 5]
    for snapshot, t in zip(se.snapshots, [2, 5]):
        for got, want in zip(snapshot.get_weights(), after[t]):
            np.testing.assert_array_equal(got, want)


def test_two_output_model_refused():
    inputs = keras.Input((6,))
    a = keras.layers.Dense(3, activation="softmax", name="a")(inputs)
    b = keras.layers.Dense(2, activation="softmax", name="b")(inputs)
    model = keras.Model(inputs, [a, b])
    with pytest.raises(ValueError, match=r"argument `model`.*2 outputs"):
        SnapshotEnsemble(model)


@pytest.mark.parametrize("bad", [123, "", ["dir"]])
def test_bad_snapshot_dir(bad):
    with pytest.raises(ValueError, match="argument `snapshot_dir`"):
        SnapshotCallback(2, snapshot_dir=bad)
    with pytest.raises(ValueError, match="argument `snapshot_dir`"):
        SnapshotEnsemble(_mlp(), snapshot_dir=bad)


# ---------------------------------------------------------------- issue 13


def test_snapshots_taken_in_step_with_steps_per_execution():
    # 5 epochs x 4 steps, 3 cycles: ends 6, 13, 19. With executions of 3
    # steps the batch hooks see only every third step (13 is inside an
    # execution); the copies are made inside the step, so each snapshot
    # holds the weights right after its cycle-end step.
    x, y = _data(n=16)
    initial = _mlp().get_weights()

    def run(steps_per_execution, recorder=None):
        model = _mlp()
        model.set_weights(initial)
        model.compile(keras.optimizers.SGD(0.1),
                      "sparse_categorical_crossentropy",
                      steps_per_execution=steps_per_execution)
        snap = SnapshotCallback(3, initial_learning_rate=0.2)
        model.fit(x, y, epochs=5, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[snap] + ([recorder] if recorder else []))
        return snap

    recorder = _Recorder()
    reference = run(1, recorder)
    snap = run(3)
    assert snap.snapshot_steps == reference.snapshot_steps == [6, 13, 19]
    for snapshot, t in zip(snap.snapshots, [6, 13, 19]):
        for got, want in zip(snapshot.get_weights(), recorder.after[t]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_variable_snapshots_need_no_batch_hook():
    # Without `snapshot_dir` nothing runs in python per batch: the callback
    # keeps Keras' default batch hooks (which lets Keras dispatch batch ends
    # asynchronously); a file store needs one (the files are written from
    # python at cycle ends).
    default = keras.callbacks.Callback.on_train_batch_end
    in_memory = SnapshotCallback(2)
    assert "on_train_batch_end" not in vars(in_memory)
    assert type(in_memory).on_train_batch_end is default
    assert "on_train_batch_end" in vars(SnapshotCallback(2, snapshot_dir="d"))


def test_ensemble_rates_and_snapshots_per_step_with_plateau_cut():
    # SnapshotEnsemble: the per-step rates are the cyclic cosine's, times
    # the ReduceLROnPlateau cut from the epoch after it on.
    x, y = _data()
    se = SnapshotEnsemble(_mlp(), n_snapshots=2, initial_learning_rate=0.2)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")

    class Plateau(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["plateau"] = 1.0

    rates = _Rates()
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="plateau", factor=0.5, patience=1, min_delta=0.0, mode="min")
    se.fit(x, y, epochs=4, batch_size=16, shuffle=False, verbose=0,
           callbacks=[rates, Plateau(), plateau])
    # Cuts at the ends of epochs 1 and 2: scale 1, 1, 0.5, 0.25.
    scale = np.repeat([1.0, 1.0, 0.5, 0.25], 3)
    expected = scale * np.array(
        [float(CyclicCosine(0.2, 12, 2)(t)) for t in range(12)])
    np.testing.assert_allclose(rates.rates, expected, rtol=1e-6)
    assert se.snapshot_steps == [5, 11]


def test_kept_indices_are_the_last_keep_taken():
    from kerasreg.callbacks.snapshot import kept_indices

    class Store:
        count = 5

    assert kept_indices(Store(), 2) == range(3, 5)
    assert kept_indices(Store(), 5) == range(5)
    assert kept_indices(Store(), None) == range(5)
    assert kept_indices(None, 3) == range(0)


def _own_variables(se):
    return [v for v in se.non_trainable_variables
            if not any(v is w for w in se.model.variables)]


def test_store_is_one_buffer_per_dtype():
    # However many weights the model has, its snapshots live in one
    # (n_snapshots, size) buffer per dtype (plus the steps, -1 where none
    # was taken): the jax train step carries every state variable through
    # each call.
    x, y = _data()
    se = _fit_se(x, y)
    sizes = sum(int(np.prod(v.shape)) for v in se.model.weights)
    assert [tuple(v.shape) for v in _own_variables(se)] == [(3, sizes), (3,)]
    # A layer of another dtype gets a buffer of its own; values round-trip.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(3, activation="softmax", dtype="float64")])
    se = SnapshotEnsemble(model, n_snapshots=2, initial_learning_rate=0.2)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    after = []

    class Recorder(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            # `self.model` (the ensemble) syncs the jax training state.
            after.append(self.model.model.get_weights())

    recorder = Recorder()
    se.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
           callbacks=[recorder])
    assert [str(v.dtype) for v in _own_variables(se)] == [
        "float32", "float64", "int32"]
    assert se.snapshot_steps == [2, 5]
    for snapshot, t in zip(se.snapshots, se.snapshot_steps):
        for got, want in zip(snapshot.get_weights(), after[t]):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("layout", ["per_weight", "count"])
def test_loads_the_earlier_layouts(layout):
    # `.keras` files of earlier layouts: the first held one variable per
    # snapshot and weight (`snapshot_<i>_<j>`), the second one buffer per
    # dtype; both then a count and the steps (0 in the rows not taken).
    # Here 3 of 4 snapshots were taken.
    x, y = _data()
    se = _fit_se(x, y, n=4, epochs=4)
    assert se.snapshot_steps == [2, 5, 8, 11]
    buffer, steps = [keras.ops.convert_to_numpy(v) for v in _own_variables(se)]
    if layout == "per_weight":
        shapes = [tuple(w.shape) for w in se.model.get_weights()]
        bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
        legacy = [row[a:b].reshape(shape) for row in buffer
                  for a, b, shape in zip(bounds, bounds[1:], shapes)]
    else:
        legacy = [buffer]
    legacy += [np.int32(3), np.array([2, 5, 8, 0], "int32")]
    fresh = SnapshotEnsemble(
        _mlp(), n_snapshots=4, keep=2, initial_learning_rate=0.2)
    fresh.build((None, 6))
    fresh.load_own_variables({str(i): v for i, v in enumerate(legacy)})
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(_own_variables(fresh)[-1]), [2, 5, 8, -1])
    assert fresh.snapshot_steps == [5, 8]
    for got, want in zip(fresh.snapshots, se.snapshots[1:3]):
        for a, b in zip(got.get_weights(), want.get_weights()):
            np.testing.assert_array_equal(a, b)


class GuideNet(keras.Model):
    """The Keras guide's subclassed model: no `training` argument in `call`,
    no constructor argument, no `get_config`."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(3, activation="softmax")

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def test_subclassed_model_without_training_argument():
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = GuideNet()
    model(x[:2])
    se = SnapshotEnsemble(model, n_snapshots=2, initial_learning_rate=0.05)
    se.compile("sgd", "sparse_categorical_crossentropy")
    se.fit(x, y, epochs=4, batch_size=16, verbose=0)
    members = se.snapshots
    assert len(members) == 2 and all(isinstance(m, GuideNet) for m in members)
    want = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(se.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    averaged = se.averaged(x)
    for got, *each in zip(_floats(averaged), *[_floats(m) for m in members]):
        np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-6, atol=1e-7)


def _stops_after_two_epochs():
    # A `min_delta` larger than any loss: epoch 1 improves on the initial
    # +inf, epoch 2 does not, and `patience=0` stops the fit there.
    return keras.callbacks.EarlyStopping("loss", min_delta=1e9, patience=0)


def _our_warnings(caught):
    return [w for w in caught if "SnapshotEnsemble" in str(w.message)]


def test_early_stopped_fit_warns_with_the_snapshot_counts():
    # 16 rows in batches of 4, 4 epochs: 16 steps, 4 cycles ending at steps
    # 3, 7, 11, 15. Stopped after epoch 2 (8 steps): snapshots 1 and 2 only.
    x, y = _data(n=16)
    se = SnapshotEnsemble(_mlp(), n_snapshots=4, initial_learning_rate=0.1)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = se.fit(x, y, epochs=4, batch_size=4, verbose=0,
                         callbacks=[_stops_after_two_epochs()])
    assert len(history.history["loss"]) == 2
    assert se.snapshot_steps == [3, 7]
    [warning] = _our_warnings(caught)
    assert warning.category is UserWarning
    assert str(warning.message).startswith(
        "SnapshotEnsemble 'snapshot_ensemble': fit stopped after 8 of its 16 "
        "steps, before the end of the last cycle: only 2 of the "
        "n_snapshots=4 snapshots were taken."
    )
    assert warning.filename == __file__  # points at the call of `fit`


def test_full_continued_and_resumed_fits_do_not_warn(tmp_path):
    x, y = _data(n=16)
    se = SnapshotEnsemble(_mlp(), n_snapshots=4, initial_learning_rate=0.1)
    se.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    fit = dict(batch_size=4, shuffle=False, verbose=0)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        se.fit(x, y, epochs=4, **fit)
        assert se.snapshot_steps == [3, 7, 11, 15]
        # The usual continuation: a new run of 2 * 4 steps, 4 cycles of 2.
        se.fit(x, y, epochs=6, initial_epoch=4, **fit)
        assert se.snapshot_steps == [1, 3, 5, 7]
        with pytest.raises(RuntimeError, match="interrupted"):
            se.fit(x, y, epochs=4, callbacks=[backup, Interrupt()], **fit)
        # Resumed at epoch 2: the run of 16 steps, finished.
        se.fit(x, y, epochs=4, callbacks=[backup], **fit)
        assert se.snapshot_steps == [3, 7, 11, 15]
    assert _our_warnings(caught) == []
