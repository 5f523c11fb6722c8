import keras
import numpy as np
import pytest

from kerasreg import Ensemble
from kerasreg import fit_bootstrap

N = 40


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 4)).astype("float32"), rng.integers(0, 3, size=N)


def _builder(record=None):
    def build():
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
        )
        model.compile("sgd", "sparse_categorical_crossentropy")
        if record is not None:
            record.append([w.copy() for w in model.get_weights()])
        return model

    return build


def test_bootstrap_resamples(capsys):
    x, y = _data()
    ens = fit_bootstrap(_builder(), x, y, n_members=3, seed=7, epochs=1)
    assert isinstance(ens, Ensemble) and len(ens.members) == 3
    idx = ens.bootstrap_indices
    assert len(idx) == 3 and len(ens.oob_indices) == 3
    for i in range(3):
        assert idx[i].shape == (N,)
        assert idx[i].min() >= 0 and idx[i].max() < N
        # Drawn with replacement: some rows repeat, so some are left out.
        assert len(np.unique(idx[i])) < N
        expected_oob = np.array([r for r in range(N) if r not in set(idx[i])])
        np.testing.assert_array_equal(ens.oob_indices[i], expected_oob)
        assert len(expected_oob) > 0
    assert not np.array_equal(idx[0], idx[1])
    assert not np.array_equal(idx[1], idx[2])
    assert ens.member_seeds == [7, 8, 9]
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("member")]
    assert len(lines) == 3
    assert lines[0].startswith("member 1/3 (seed 7): 40 rows resampled")
    # Same seed, same resamples (whatever the global state).
    keras.utils.set_random_seed(123)
    again = fit_bootstrap(_builder(), x, y, n_members=2, seed=7, epochs=1)
    np.testing.assert_array_equal(again.bootstrap_indices[0], idx[0])
    np.testing.assert_array_equal(again.bootstrap_indices[1], idx[1])


def test_members_train_on_their_resample():
    # lr 0 and one full batch: the loss fit reports for member i is
    # sum(w[idx] * l[idx]) / N over its own resample idx, with the sample
    # weights resampled alongside the rows.
    x, y = _data()
    sw = np.arange(N, dtype="float32")

    def build():
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
        )
        model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
        return model

    ens = fit_bootstrap(
        build, x, y, n_members=2, seed=0, epochs=1, batch_size=N, sample_weight=sw
    )
    for i in range(2):
        idx = ens.bootstrap_indices[i]
        p = ens.members[i].predict(x, verbose=0)
        row_loss = -np.log(p[np.arange(N), y])
        expected = np.sum(sw[idx] * row_loss[idx]) / N
        full_data = np.sum(sw * row_loss) / N
        assert ens.histories[i]["loss"][0] == pytest.approx(expected, rel=1e-5)
        assert expected != pytest.approx(full_data, rel=1e-3)


def test_seeds_without_bootstrap(capsys):
    x, y = _data()
    record = []
    ens = fit_bootstrap(
        _builder(record), x, y, n_members=3, bootstrap=False, seed=3, epochs=1
    )
    assert ens.bootstrap_indices is None and ens.oob_indices is None
    assert ens.member_seeds == [3, 4, 5]
    for i in range(3):
        keras.utils.set_random_seed(3 + i)
        fresh = _builder()()
        for a, b in zip(fresh.get_weights(), record[i], strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(record[0][0], record[1][0])
    out = capsys.readouterr().out
    assert "member 3/3 (seed 5): 40 rows" in out


def test_combine_is_passed_on():
    x, y = _data()
    ens = fit_bootstrap(_builder(), x, y, n_members=2, seed=0, combine="vote")
    assert ens.combine == "vote"


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"n_members": 0}, "n_members"),
        ({"n_members": 2.5}, "n_members"),
        ({"seed": -1}, "seed"),
        ({"combine": "max"}, "combine"),
    ],
)
def test_bad_arguments(kwargs, argument):
    x, y = _data()
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        fit_bootstrap(_builder(), x, y, **kwargs)


def test_bad_data_and_builder():
    x, y = _data()
    with pytest.raises(ValueError, match="argument `y`"):
        fit_bootstrap(_builder(), x, y[:-1])
    with pytest.raises(ValueError, match="argument `build_fn`"):
        fit_bootstrap(lambda: None, x, y, n_members=1)
    with pytest.raises(ValueError, match="argument `build_fn`"):
        fit_bootstrap("model", x, y)


def test_uncompiled_model_refused_before_training():
    x, y = _data()
    started = []

    def uncompiled():
        return keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")],
            name="plain",
        )

    watch = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: started.append(1))
    with pytest.raises(
        ValueError,
        match=r"argument `build_fn`\. Expected a callable returning a compiled "
        r"Keras model .*Received: build_fn=<function .*uncompiled.*'plain' is "
        r"not compiled",
    ):
        fit_bootstrap(uncompiled, x, y, n_members=2, epochs=1, callbacks=[watch])
    assert started == []


def test_verbose_zero_is_silent(capsys):
    # Library code prints only when asked: verbose=0 drops the member lines
    # (the default, "auto", prints them with each member's fit silent).
    x, y = _data()
    ens = fit_bootstrap(_builder(), x, y, n_members=2, seed=0, epochs=1, verbose=0)
    assert len(ens.members) == 2
    assert capsys.readouterr().out == ""
