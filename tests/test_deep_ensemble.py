import json
import math
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerasreg
from kerasreg import DeepEnsemble
from kerasreg.ensembles.deep import poisson_weights

N_FEATURES, N_CLASSES = 6, 3


def _build(dropout=0.0, batchnorm=True, activation="softmax", l2=0.0):
    layers = [
        keras.Input((N_FEATURES,)),
        keras.layers.Dense(
            8,
            activation="relu",
            kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
        ),
    ]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization())
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(N_CLASSES, activation=activation))
    return keras.Sequential(layers)


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype("float32")
    y = rng.integers(0, N_CLASSES, size=n)
    return x, y


def _optimizer(kind):
    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    return keras.optimizers.Adam(learning_rate=0.01)


def _nll(p, y, w=None):
    losses = -np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))
    w = np.ones(len(y)) if w is None else w
    return float(np.sum(w * losses) / len(y))


# The key property -------------------------------------------------------


@pytest.mark.parametrize("kind,weighted", [("sgd", False), ("adam", True)])
def test_fused_member_trains_exactly_as_alone(kind, weighted):
    """Member i of the fused fit == the same member fitted alone."""
    x, y = _data()
    sw = np.linspace(0.5, 1.5, len(x)).astype("float32") if weighted else None
    build = lambda: _build(dropout=0.25, l2=1e-3)  # noqa: E731
    ens = DeepEnsemble(build, n_members=2, seed=0)
    initial = [v.numpy() for v in ens.members[1].variables]
    ens.compile(_optimizer(kind), "sparse_categorical_crossentropy")
    ens.fit(x, y, sample_weight=sw, batch_size=16, epochs=2, shuffle=False,
            verbose=0)
    alone = build()
    # All state, dropout seeds included, as member 1 had it at the start.
    for v, value in zip(alone.variables, initial):
        v.assign(value)
    alone.compile(_optimizer(kind), "sparse_categorical_crossentropy")
    alone.fit(x, y, sample_weight=sw, batch_size=16, epochs=2, shuffle=False,
              verbose=0)
    for got, want in zip(ens.members[1].variables, alone.variables):
        np.testing.assert_allclose(
            got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5
        )


SEQ_LEN, VOCAB = 5, 7


def _build_sequence():
    return keras.Sequential([
        keras.Input((SEQ_LEN,), dtype="int32"),
        keras.layers.Embedding(VOCAB, 4, mask_zero=True),
        keras.layers.SimpleRNN(4, return_sequences=True),
        keras.layers.Dense(N_CLASSES, activation="softmax"),
    ])


def _padded_sequences(n=16, seed=0):
    """Right-padded token sequences (0 = padding) and per-step labels."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, size=(n, SEQ_LEN))
    lengths = rng.integers(1, SEQ_LEN + 1, size=n)
    x[np.arange(SEQ_LEN) >= lengths[:, None]] = 0
    y = rng.integers(0, N_CLASSES, size=(n, SEQ_LEN))
    return x.astype("int32"), y


def test_fused_member_trains_exactly_as_alone_with_keras_masks():
    """The padding is left out of each member's loss, as when alone."""
    x, y = _padded_sequences()
    ens = DeepEnsemble(_build_sequence, n_members=2, seed=0)
    initial = [v.numpy() for v in ens.members[1].variables]
    ens.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    ens.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    alone = _build_sequence()
    for v, value in zip(alone.variables, initial, strict=True):
        v.assign(value)
    alone.compile(keras.optimizers.Adam(0.05),
                  "sparse_categorical_crossentropy")
    alone.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(ens.members[1].variables, alone.variables,
                         strict=True):
        np.testing.assert_allclose(
            got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6
        )


def test_evaluate_leaves_padding_out_of_combined_loss_and_metrics():
    x, y = _padded_sequences()
    ens = DeepEnsemble(_build_sequence, n_members=3, seed=0)
    ens.compile("adam", "sparse_categorical_crossentropy",
                metrics=["accuracy"])
    combined = ens.member_predictions(x).mean(0)  # (N, T, C)
    valid = x != 0
    picked = np.take_along_axis(combined, y[..., None], axis=-1)[..., 0]
    nll = -np.log(np.clip(picked[valid], 1e-7, 1.0)).mean()
    accuracy = np.mean(combined.argmax(-1)[valid] == y[valid])
    logs = ens.evaluate(x, y, batch_size=len(x), verbose=0,
                        return_dict=True)
    np.testing.assert_allclose(logs["loss"], nll, rtol=1e-5)
    np.testing.assert_allclose(logs["accuracy"], accuracy, rtol=1e-6)


def test_members_differ_and_seed_reproduces_them():
    a = DeepEnsemble(_build, n_members=3, seed=4)
    b = DeepEnsemble(_build, n_members=3, seed=4)
    c = DeepEnsemble(_build, n_members=3)  # seed=None: still distinct
    for ens in (a, c):
        k = [m.get_weights()[0] for m in ens.members]
        assert not np.allclose(k[0], k[1]) and not np.allclose(k[1], k[2])
    for ma, mb in zip(a.members, b.members):
        for wa, wb in zip(ma.get_weights(), mb.get_weights()):
            np.testing.assert_array_equal(wa, wb)


def test_a_model_gives_fresh_copies_of_its_architecture(tmp_path):
    x, y = _data()
    model = _build(dropout=0.2, batchnorm=False)

    def plain_loss(y_true, y_pred):  # unregistered: a clone cannot compile
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)

    model.compile("sgd", plain_loss)
    before = [v.numpy() for v in model.variables]
    ens = DeepEnsemble(model, n_members=2, seed=5)
    members = ens.members
    for i, member in enumerate(members):
        # Member i is the architecture built anew under seed + i (so `seed`
        # reproduces it): the same layers, fresh weights and dropout seeds.
        keras.utils.set_random_seed(5 + i)
        fresh = _build(dropout=0.2, batchnorm=False)
        assert [type(layer) for layer in member.layers] == \
            [type(layer) for layer in model.layers]
        for got, want in zip(member.variables, fresh.variables, strict=True):
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    kernels = [m.get_weights()[0] for m in [model, *members]]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert not np.allclose(kernels[a], kernels[b])
    ens.compile("adam", "sparse_categorical_crossentropy")
    ens.fit(x, y, epochs=1, verbose=0)
    assert not np.allclose(ens.members[0].get_weights()[0], kernels[1])
    # The model given is untouched: its weights, and still compiled.
    assert model.compiled and model.loss is plain_loss
    for v, value in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), value)
    path = os.path.join(tmp_path, "deep.keras")
    ens.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_eager(loaded, x), _eager(ens, x), atol=1e-6)


def test_logs_mean_loss_and_member_losses():
    tf = pytest.importorskip("tensorflow")
    x, y = _data()
    ens = DeepEnsemble(lambda: _build(batchnorm=False), n_members=3, seed=1)
    ens.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy",
                metrics=["accuracy"])
    p = ens.member_predictions(x)  # lr 0: the weights never move
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    history = ens.fit(data, epochs=1, shuffle=False, verbose=0,
                      validation_data=data).history
    member = [_nll(p[i], y) for i in range(3)]
    for i in range(3):
        np.testing.assert_allclose(history[f"loss_member_{i}"][0], member[i],
                                   rtol=1e-5)
    np.testing.assert_allclose(history["loss"][0], np.mean(member), rtol=1e-5)
    combined = p.mean(0)
    accuracy = np.mean(combined.argmax(-1) == y)
    np.testing.assert_allclose(history["accuracy"][0], accuracy)
    np.testing.assert_allclose(history["val_accuracy"][0], accuracy)
    np.testing.assert_allclose(history["val_loss"][0], _nll(combined, y),
                               rtol=1e-5)
    assert not any(k.startswith("val_loss_member") for k in history)


@pytest.mark.slow
def test_two_devices_train_exactly_like_one():
    """Data-parallel fit (2 devices) == the same fit on 1 device.

    tensorflow: `tf.distribute.MirroredStrategy` over two logical CPUs;
    jax: `keras.distribution.DataParallel` over two host devices. The devices
    must exist before the backend starts, hence the subprocess. The members
    have an L2 penalty: each replica's share of it must be scaled like
    Keras' own losses, and the logged member losses unscaled.
    """
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        pytest.skip(f"no data-parallel set-up here for backend={backend}")
    script = pathlib.Path(__file__).with_name("_distributed_deep_ensemble.py")
    env = dict(os.environ, KERAS_BACKEND=backend)
    run = subprocess.run([sys.executable, str(script)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["weight_gap"] < 1e-5
    one, two = result["logs_one"], result["logs_two"]
    assert sorted(one) == sorted(two)
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, err_msg=key)


# Inference --------------------------------------------------------------


def _eager(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize("combine", ["mean", "geometric", "vote"])
def test_predictions_combine_members(combine):
    x, _ = _data()
    ens = DeepEnsemble(_build, n_members=3, combine=combine, seed=0)
    p = ens.member_predictions(x)
    assert p.shape == (3, len(x), N_CLASSES)
    for i, m in enumerate(ens.members):
        np.testing.assert_allclose(p[i], _eager(m, x), atol=1e-6)
    out = ens.predict(x, verbose=0)
    if combine == "mean":
        np.testing.assert_allclose(out, p.mean(0), atol=1e-6)
    elif combine == "geometric":
        g = np.exp(np.log(p).mean(0))
        np.testing.assert_allclose(out, g / g.sum(-1, keepdims=True),
                                   atol=1e-5)
    else:
        votes = np.eye(N_CLASSES)[p.argmax(-1)].mean(0)
        np.testing.assert_allclose(out, votes, atol=1e-4)


def test_members_are_plain_models_usable_elsewhere(tmp_path):
    x, y = _data()
    ens = DeepEnsemble(lambda: _build(dropout=0.2), n_members=2, seed=0)
    ens.compile("adam", "sparse_categorical_crossentropy")
    ens.fit(x, y, epochs=1, verbose=0)
    members = ens.members
    assert all(not m.compiled for m in members)
    p = ens.member_predictions(x)
    for i, m in enumerate(members):
        assert not any(m is b for b in ens._branches)
        np.testing.assert_allclose(m.predict(x, verbose=0), p[i], atol=1e-6)
    as_ensemble = kerasreg.Ensemble(members)
    np.testing.assert_allclose(_eager(as_ensemble, x), _eager(ens, x),
                               atol=1e-6)
    averaged = kerasreg.ensembles.average_weights(members)
    np.testing.assert_allclose(
        averaged.get_weights()[0],
        (members[0].get_weights()[0] + members[1].get_weights()[0]) / 2,
        atol=1e-6,
    )
    path = os.path.join(tmp_path, "member.keras")
    members[1].save(path)
    np.testing.assert_allclose(
        _eager(keras.saving.load_model(path), x), _eager(members[1], x),
        atol=1e-6,
    )
    # Standalone: sharing no variable with the ensemble, in either direction.
    before = [w.copy() for w in members[1].get_weights()]
    ens.fit(x, y, epochs=1, verbose=0)
    for got, want in zip(members[1].get_weights(), before):
        np.testing.assert_array_equal(got, want)
    assert not np.allclose(ens.members[1].get_weights()[0], before[0])
    members[0].compile("sgd", "sparse_categorical_crossentropy")
    members[0].fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(
        ens._branches[0].get_weights()[0], ens.members[0].get_weights()[0]
    )
    assert not np.allclose(
        members[0].get_weights()[0], ens.members[0].get_weights()[0]
    )


def test_keras_file_round_trip(tmp_path):
    x, y = _data()
    ens = DeepEnsemble(lambda: _build(dropout=0.2), n_members=3,
                       bootstrap="poisson", combine="geometric", seed=0)
    ens.compile("adam", "sparse_categorical_crossentropy",
                metrics=["accuracy"])
    ens.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "deep.keras")
    ens.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, DeepEnsemble)
    assert (loaded.n_members, loaded.bootstrap, loaded.combine, loaded.seed) \
        == (3, "poisson", "geometric", 0)
    np.testing.assert_allclose(_eager(loaded, x), _eager(ens, x), atol=1e-6)
    # Everything, the dropout and bootstrap seed states included (Keras
    # saves no seed state by itself): training would go on identically.
    assert len(loaded.variables) == len(ens.variables)
    for a, b in zip(loaded.variables, ens.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(loaded.optimizer.variables, ens.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# Bootstrap --------------------------------------------------------------


def test_poisson_weights_have_poisson_moments():
    w = keras.ops.convert_to_numpy(poisson_weights((200_000,), seed=3))
    assert np.all(w == np.round(w)) and w.min() == 0
    assert abs(w.mean() - 1.0) < 0.01
    assert abs(w.var() - 1.0) < 0.02
    for k in range(4):  # P(X = k) = e^-1 / k!
        assert abs(np.mean(w == k) - math.exp(-1) / math.factorial(k)) < 0.005


def test_poisson_bootstrap_multiplies_sample_weight():
    x, y = _data()
    sw = np.linspace(0.0, 2.0, len(x)).astype("float32")
    ens = DeepEnsemble(lambda: _build(batchnorm=False), n_members=3,
                       bootstrap="poisson", seed=7)
    ens.compile("sgd", "sparse_categorical_crossentropy")
    p = ens.member_predictions(x)
    y_pred = ens(x, training=True)  # (N, members, classes)
    ens.compute_loss(x, y, y_pred, sample_weight=sw, training=True)
    # The first draw of a fresh generator with the same seed.
    draws = keras.ops.convert_to_numpy(
        poisson_weights((3, len(x)), seed=keras.random.SeedGenerator(7))
    )
    assert not np.allclose(draws[0], draws[1])
    for i in range(3):
        np.testing.assert_allclose(
            ens.member_loss_trackers[i].result(),
            _nll(p[i], y, sw * draws[i]),
            rtol=1e-5,
        )
    # Fresh weights at the next step.
    ens.compute_loss(x, y, y_pred, sample_weight=sw, training=True)
    second = np.array([float(t.result()) for t in ens.member_loss_trackers])
    first = np.array([_nll(p[i], y, sw * draws[i]) for i in range(3)])
    assert not np.allclose(2 * second - first, first)


# Fit features -----------------------------------------------------------


def test_backup_and_restore_resumes_exactly(tmp_path):
    x, y = _data()

    def make():
        ens = DeepEnsemble(lambda: _build(dropout=0.3), n_members=2,
                           bootstrap="poisson", seed=0)
        ens.compile("adam", "sparse_categorical_crossentropy")
        return ens

    reference = make()
    reference.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    backup = os.path.join(tmp_path, "backup")
    first = make()
    with pytest.raises(RuntimeError, match="interrupted"):
        first.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup),
                             Interrupt()])
    resumed = make()
    history = resumed.fit(
        x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup)],
    )
    assert len(history.epoch) == 1
    for a, b in zip(reference.variables, resumed.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_early_stopping_on_combined_val_accuracy():
    x, y = _data()
    ens = DeepEnsemble(_build, n_members=2, seed=0)
    ens.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy",
                metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    history = ens.fit(x, y, epochs=20, validation_data=(x, y),
                      callbacks=[stop], verbose=0)
    # Learning rate 0: val_accuracy never improves after the first epoch.
    assert len(history.epoch) == 2
    assert stop.stopped_epoch == 1


def test_schedule_callback_drives_all_members():
    x, y = _data()
    ens = DeepEnsemble(_build, n_members=2, seed=0)
    ens.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    cb = kerasreg.ScheduleCallback(lambda epoch: 0.05 / (epoch + 1))
    ens.fit(x, y, epochs=2, callbacks=[cb], verbose=0)
    lr = float(keras.ops.convert_to_numpy(ens.optimizer.learning_rate))
    np.testing.assert_allclose(lr, 0.025, rtol=1e-6)


# Bad input --------------------------------------------------------------


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`n_members`.*n_members=0"):
        DeepEnsemble(_build, n_members=0)
    with pytest.raises(ValueError, match=r"`bootstrap`.*bootstrap='bagging'"):
        DeepEnsemble(_build, bootstrap="bagging")
    with pytest.raises(ValueError, match=r"`combine`.*combine='max'"):
        DeepEnsemble(_build, combine="max")
    with pytest.raises(ValueError, match=r"`build_fn`.*build_fn=3"):
        DeepEnsemble(3)
    # A layer is callable, but not a model: it is not called without inputs.
    with pytest.raises(ValueError, match=r"`build_fn`.*build_fn=<Dense"):
        DeepEnsemble(keras.layers.Dense(N_CLASSES))


def test_bad_build_fn_results():
    def compiled():
        m = _build()
        m.compile("adam", "mse")
        return m

    with pytest.raises(ValueError, match=r"`build_fn`.*uncompiled"):
        DeepEnsemble(compiled, n_members=2)

    widths = iter([8, 9])

    def varying():
        return keras.Sequential([
            keras.Input((N_FEATURES,)),
            keras.layers.Dense(next(widths), activation="relu"),
            keras.layers.Dense(N_CLASSES, activation="softmax"),
        ])

    with pytest.raises(ValueError, match=r"`build_fn`.*same architecture"):
        DeepEnsemble(varying, n_members=2)

    shared = _build()
    with pytest.raises(ValueError, match=r"`build_fn`.*same model twice"):
        DeepEnsemble(lambda: shared, n_members=2)
    with pytest.raises(ValueError, match=r"`build_fn`.*Keras model"):
        DeepEnsemble(lambda: "model", n_members=2)


def test_logits_need_from_logits():
    logits = lambda: _build(activation=None)  # noqa: E731
    with pytest.raises(ValueError, match=r"`build_fn`.*logits"):
        DeepEnsemble(logits, n_members=2, seed=0)
    x, y = _data()
    ens = DeepEnsemble(logits, n_members=2, seed=0, from_logits=True)
    z = np.stack([_eager(m, x) for m in ens.members])
    e = np.exp(z - z.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    np.testing.assert_allclose(_eager(ens, x), p.mean(0), atol=1e-5)


def test_global_clipnorm_is_refused():
    x, y = _data()
    ens = DeepEnsemble(_build, n_members=2, seed=0)
    ens.compile(keras.optimizers.SGD(0.1, global_clipnorm=1.0),
                "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"`optimizer`.*global_clipnorm=1.0"):
        ens.fit(x, y, epochs=1, verbose=0)
