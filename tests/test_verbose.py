"""Every `verbose` argument of kerasreg's public objects, on both backends.

kerasreg's own lines are compared exactly. Where `verbose` is only passed on
to Keras' `fit` / `predict`, the test checks that `0` prints nothing and
that `1` and `2` print something (Keras' progress output, whose contents are
Keras'). Only `sys.stdout` is read (`capsys`): TensorFlow, absl and XLA write
their C++ log lines to the process's stderr, never compared here.
"""

import math

import keras
import numpy as np
import pytest

import kerasreg
from kerasreg import datasets
from kerasreg.calibration import fit_temperature
from kerasreg.diagnostics import overfitting_report

BAD_VERBOSE = ["loud", -1, 0.5, None]


def _data(n=8, d=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    return x, x.argmax(axis=1).astype("int32")


def _mlp(d=3, classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((d,)), keras.layers.Dense(classes, activation="softmax")
    ])


def _compiled(seed=0):
    model = _mlp(seed=seed)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model


def _rate_line(name, epoch, rate, t):
    return [
        "",
        f"Epoch {epoch}: {name} setting learning rate to {rate:.6g} (t={t}).",
    ]


# --------------------------------------------------- callbacks (our lines)


@pytest.mark.parametrize("verbose", [0, 1, 2])
@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_schedule_callback(unit, verbose, capsys):
    # 8 rows in batches of 4: 2 steps per epoch. StepDecay(0.1, 0.5, 2) halves
    # the rate every 2 epochs (unit="epoch") or every 2 steps (unit="step");
    # the line gives the rate of the epoch's first epoch or step `t`.
    x, y = _data()
    callback = kerasreg.ScheduleCallback(
        kerasreg.StepDecay(0.1, 0.5, 2), unit=unit, verbose=verbose
    )
    _compiled().fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[callback])
    out = capsys.readouterr().out
    if not verbose:
        assert out == ""
        return
    ts = [0, 1, 2] if unit == "epoch" else [0, 2, 4]
    expected = []
    for epoch, t in enumerate(ts, 1):
        rate = float(np.float32(0.1 * 0.5 ** (t // 2)))
        expected += _rate_line("ScheduleCallback", epoch, rate, t)
    assert out.splitlines() == expected


@pytest.mark.parametrize("verbose", [0, 1, 2])
@pytest.mark.parametrize("store", ["memory", "dir"])
def test_snapshot_callback(store, verbose, tmp_path, capsys):
    # 2 steps per epoch, 4 epochs: 8 steps, 2 cycles of 4 steps ending at
    # steps 3 and 7. Epochs start at steps 0, 2, 4, 6, where the cosine
    # 0.1 / 2 * (cos(pi * (t mod 4) / 4) + 1) is 0.1, 0.05, 0.1, 0.05.
    x, y = _data()
    callback = kerasreg.SnapshotCallback(
        2,
        initial_learning_rate=0.1,
        snapshot_dir=str(tmp_path / "snaps") if store == "dir" else None,
        verbose=verbose,
    )
    _compiled().fit(x, y, epochs=4, batch_size=4, verbose=0, callbacks=[callback])
    out = capsys.readouterr().out
    if not verbose:
        assert out == ""
        return
    expected = []
    for epoch, t in enumerate([0, 2, 4, 6], 1):
        rate = 0.05 * (math.cos(math.pi * (t % 4) / 4) + 1)
        expected += _rate_line("SnapshotCallback", epoch, rate, t)
        if t + 1 in (3, 7):  # the epoch ends with a cycle
            i = (t + 1) // 4 + 1
            expected += ["", f"SnapshotCallback: snapshot {i} taken after step {t + 1}."]
    assert out.splitlines() == expected


@pytest.mark.parametrize("verbose", BAD_VERBOSE)
def test_snapshot_callback_bad_verbose(verbose):
    with pytest.raises(
        ValueError,
        match=r"argument `verbose`\. Expected an integer >= 0 .*Received: "
        r"verbose=" + repr(verbose).replace(".", r"\."),
    ):
        kerasreg.SnapshotCallback(2, verbose=verbose)


# ------------------------------------------------ functions (our lines)


@pytest.mark.parametrize("verbose", [0, 1, False, True])
def test_datasets_load(verbose, capsys):
    datasets.load("digits", verbose=verbose)
    expected = [
        "kerasreg.datasets: digits from scikit-learn's bundled copy "
        "(sklearn.datasets.load_digits)"
    ]
    assert capsys.readouterr().out.splitlines() == (expected if verbose else [])


@pytest.mark.parametrize("verbose", [0, 1, False, True])
def test_overfitting_report(verbose, capsys):
    history = {"loss": [1.0, 0.5], "val_loss": [1.0, 0.75]}
    overfitting_report(history, verbose=verbose)
    expected = [
        "epoch  loss  val_loss   gap",
        "    1     1         1     0",
        "    2   0.5      0.75  0.25",
        "verdict: overfitting: more regularization (L2, dropout) or more data",
    ]
    assert capsys.readouterr().out.splitlines() == (expected if verbose else [])


@pytest.mark.parametrize("verbose", ["auto", 0, 1, 2])
def test_fit_bootstrap(verbose, capsys):
    # One line per member (with the last epoch's loss) unless verbose=0; 1
    # and 2 also pass on to each member's `fit` (Keras' progress output).
    x, y = _data()
    ensemble = kerasreg.fit_bootstrap(
        _compiled, x, y, n_members=2, bootstrap=False, seed=3, epochs=1,
        batch_size=4, verbose=verbose,
    )
    lines = capsys.readouterr().out.splitlines()
    ours = [line for line in lines if line.startswith("member ")]
    expected = [
        f"member {i + 1}/2 (seed {3 + i}): 8 rows, loss "
        f"{history['loss'][-1]:.4f}"
        for i, history in enumerate(ensemble.histories)
    ]
    assert ours == ([] if verbose == 0 else expected)
    # Keras' progress output only when passed on.
    assert (len(lines) > len(ours)) == (verbose in (1, 2))


@pytest.mark.parametrize(
    "call",
    [
        lambda v: datasets.load("digits", verbose=v),
        lambda v: overfitting_report({"loss": [1.0], "val_loss": [1.0]}, verbose=v),
        lambda v: kerasreg.fit_bootstrap(_compiled, *_data(), verbose=v),
    ],
    ids=["datasets.load", "overfitting_report", "fit_bootstrap"],
)
@pytest.mark.parametrize("verbose", BAD_VERBOSE + [3])
def test_bad_verbose_is_refused(call, verbose):
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `verbose`\. Expected one "
        r"of .*Received: verbose=" + repr(verbose).replace(".", r"\."),
    ):
        call(verbose)


# ------------------------------------- passed on to Keras' predict / fit


def _ensembles():
    """One of each model with a per-member `*_predictions(verbose=)`."""
    x, _ = _data()
    members = [_mlp(seed=i) for i in range(2)]
    multi_head = kerasreg.MultiHeadEnsemble(
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)]),
        lambda: keras.layers.Dense(3, activation="softmax"),
        n_heads=2,
    )
    multi_head(x[:1])
    dropout = keras.Sequential([
        keras.Input((3,)), keras.layers.Dropout(0.5),
        keras.layers.Dense(3, activation="softmax"),
    ])
    return {
        "member_predictions": (kerasreg.Ensemble(members), 2),
        "head_predictions": (multi_head, 2),
        "sample_predictions": (kerasreg.MCDropout(dropout, n_samples=3), 3),
    }


@pytest.mark.parametrize("verbose", [0, 1, 2])
@pytest.mark.parametrize(
    "method", ["member_predictions", "head_predictions", "sample_predictions"]
)
def test_member_predictions(method, verbose, capsys):
    x, _ = _data()
    model, n = _ensembles()[method]
    capsys.readouterr()
    probs = getattr(model, method)(x, verbose=verbose)
    assert probs.shape == (n, 8, 3)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    assert (capsys.readouterr().out != "") == (verbose > 0)


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_fit_temperature(verbose, capsys):
    # softmax(x) scored on the argmax labels, two of them wrong: the
    # NLL-optimal temperature lies between 0.1 and 1 (by hand: NLL 0.99,
    # 0.54, 0.72 at T = 0.1, 0.3, 1).
    x, y = _data()
    y[:2] = (y[:2] + 1) % 3
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(3, "softmax", use_bias=False, kernel_initializer="identity"),
    ])
    scaled = fit_temperature(model, x, y, verbose=verbose)
    assert 0.1 < scaled.temperature < 1
    assert (capsys.readouterr().out != "") == (verbose > 0)


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_snapshot_ensemble_fit(verbose, capsys):
    # No `verbose` of its own: `fit(verbose=)` is Keras' (its snapshot
    # callback is quiet).
    x, y = _data()
    ensemble = kerasreg.SnapshotEnsemble(_mlp(), n_snapshots=2)
    ensemble.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    ensemble.fit(x, y, epochs=2, batch_size=4, verbose=verbose)
    out = capsys.readouterr().out
    assert (out != "") == (verbose > 0)
    assert "SnapshotCallback" not in out
    assert ensemble.snapshot_steps == [1, 3]


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_coarse_to_fine_search(verbose, tmp_path, capsys):
    # Keras Tuner's `search(verbose=)` (which sets `oracle.verbose`) also
    # switches the oracle's line announcing each later stage.
    keras_tuner = pytest.importorskip("keras_tuner")
    from kerasreg.tuning import CoarseToFine
    from kerasreg.tuning import log_uniform

    class Toy(CoarseToFine):
        def run_trial(self, trial, *args, **kwargs):
            return {"score": -abs(math.log10(trial.hyperparameters["lr"]) + 2)}

    tuner = Toy(
        lambda hp: log_uniform(hp, "lr", 1e-4, 1.0),
        keras_tuner.Objective("score", "max"),
        stages=((3, 1), (2, 2)),
        top_k=2,
        seed=0,
        directory=str(tmp_path),
        project_name="toy",
    )
    tuner.search(verbose=verbose)
    lines = capsys.readouterr().out.splitlines()
    ours = [line for line in lines if line.startswith("CoarseToFine:")]
    assert len(ours) == (1 if verbose else 0)
    if verbose:
        assert ours[0].startswith(
            "CoarseToFine: stage 2/2 (2 trials x 2 epochs), ranges: lr: ["
        )
    # Keras Tuner's own progress lines follow the same switch.
    assert (len(lines) > len(ours)) == (verbose > 0)
