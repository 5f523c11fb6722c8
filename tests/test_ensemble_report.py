import sys
import types

import keras
import numpy as np
import pytest

from kerasreg import Ensemble
from kerasreg import MultiHeadEnsemble
from kerasreg.ensembles import report
from test_ensemble import batch_normalized_member


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _member(seed, width=None):
    rng = np.random.default_rng(seed)
    if width is None:
        w = rng.normal(size=(4, 3)).astype("float32")
        b = rng.normal(size=(3,)).astype("float32")
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        m.set_weights([w, b])
        return m, lambda x: _softmax(x @ w + b)
    m = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    return m, None


def _data(n=60):
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, size=n)


def _expected_row(y, p, n_bins=15):
    p = np.asarray(p, dtype=np.float64)
    n = len(y)
    conf, pred = p.max(1), p.argmax(1)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = sum(
        abs(np.sum(pred[bins == b] == y[bins == b]) - np.sum(conf[bins == b]))
        for b in range(n_bins)
    ) / n
    return {
        "accuracy": np.mean(pred == y),
        "nll": -np.mean(np.log(np.clip(p[np.arange(n), y], 1e-12, 1))),
        "ece": ece,
        "brier": np.mean(np.sum((p - np.eye(3)[y]) ** 2, axis=1)),
    }


def _assert_row(row, expected):
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, abs=2e-5), key


def test_report_rows_against_numpy(monkeypatch):
    # Hide any real averaging module: this test checks the row is skipped.
    monkeypatch.setitem(sys.modules, "kerasreg.ensembles.averaging", None)
    pairs = [_member(s) for s in range(3)]
    x, y = _data()
    ens = Ensemble([m for m, _ in pairs], weights=[1, 1, 2])
    table = report(ens, x, y)
    probs = np.stack([f(x) for _, f in pairs])
    names = [r["model"] for r in table.rows]
    assert names == ["member 0", "member 1", "member 2", "mean", "vote", "geometric"]
    for i in range(3):
        _assert_row(table.row(f"member {i}"), _expected_row(y, probs[i]))
    mean = np.tensordot([0.25, 0.25, 0.5], probs, axes=1)
    _assert_row(table.row("mean"), _expected_row(y, mean))
    geo = np.exp(np.tensordot([0.25, 0.25, 0.5], np.log(probs), axes=1))
    _assert_row(table.row("geometric"), _expected_row(y, geo / geo.sum(1, keepdims=True)))
    votes = np.argmax(probs, -1)
    shares = np.tensordot([0.25, 0.25, 0.5], np.eye(3)[votes], axes=1)
    tied = shares >= shares.max(1, keepdims=True) - 1e-9
    winner = np.where(tied, mean, -1).argmax(1)
    assert table.row("vote")["accuracy"] == pytest.approx(np.mean(winner == y))
    pairs_differ = [np.mean(votes[i] != votes[j]) for i, j in [(0, 1), (0, 2), (1, 2)]]
    assert table.disagreement == pytest.approx(np.mean(pairs_differ))
    assert any("parameter-averaged: skipped" in n for n in table.notes)

    d = table.to_dict()
    assert d["disagreement"] == table.disagreement and len(d["rows"]) == 6
    text = str(table)
    lines = text.splitlines()
    assert lines[0].split() == ["model", "accuracy", "nll", "ece", "brier"]
    # Aligned: the header, rule and rows have the same width.
    assert len({len(line) for line in lines[:8]}) == 1
    assert f"disagreement: {table.disagreement:.4f}" in text


def test_report_batch_size_and_n_bins():
    pairs = [batch_normalized_member(seed=s) for s in range(2)]
    x, y = _data()
    table = report(Ensemble([m for m, _ in pairs]), x, y, batch_size=7, n_bins=4)
    # The members predict in batches of 7 (their outputs depend on it).
    probs = np.stack([_softmax(f(x, 7)) for _, f in pairs])
    for i in range(2):
        _assert_row(table.row(f"member {i}"), _expected_row(y, probs[i], 4))
    _assert_row(table.row("mean"), _expected_row(y, probs.mean(0), 4))
    # The parameter-averaged model too: its logits (linear in the weights)
    # are the mean of the members', in batches of 7.
    averaged = _softmax(np.mean([f(x, 7) for _, f in pairs], axis=0))
    _assert_row(table.row("parameter-averaged"), _expected_row(y, averaged, 4))
    # (With the default 15 bins the calibration error differs.)
    assert _expected_row(y, probs.mean(0), 4)["ece"] != pytest.approx(
        _expected_row(y, probs.mean(0))["ece"], abs=1e-3
    )


def test_parameter_averaged_row_uses_average_weights(monkeypatch):
    calls = []

    def average_weights(models, weights=None):
        calls.append((len(models), weights))
        clone = keras.models.clone_model(models[0])
        w = np.ones(len(models)) / len(models) if weights is None else np.asarray(weights)
        clone.set_weights(
            [
                sum(wi * m.get_weights()[k] for wi, m in zip(w, models))
                for k in range(len(models[0].get_weights()))
            ]
        )
        return clone

    fake = types.ModuleType("kerasreg.ensembles.averaging")
    fake.average_weights = average_weights
    monkeypatch.setitem(sys.modules, "kerasreg.ensembles.averaging", fake)
    pairs = [_member(s) for s in range(2)]
    x, y = _data()
    table = report(Ensemble([m for m, _ in pairs]), x, y)
    assert calls == [(2, None)]
    ws = [m.get_weights() for m, _ in pairs]
    w = (ws[0][0] + ws[1][0]) / 2
    b = (ws[0][1] + ws[1][1]) / 2
    _assert_row(table.row("parameter-averaged"), _expected_row(y, _softmax(x @ w + b)))


def test_different_architectures_skip_parameter_average():
    members = [_member(0, width=5)[0], _member(1, width=7)[0]]
    x, y = _data()
    table = report(Ensemble(members), x, y)
    assert "parameter-averaged" not in [r["model"] for r in table.rows]
    assert any("differ in architecture" in n for n in table.notes)


def test_multi_head_report():
    trunk = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu")])
    model = MultiHeadEnsemble(
        trunk, lambda: keras.layers.Dense(3, activation="softmax"), n_heads=2
    )
    x, y = _data()
    table = report(model, x, y)
    heads = model.head_predictions(x)
    assert [r["model"] for r in table.rows][:2] == ["head 0", "head 1"]
    _assert_row(table.row("head 1"), _expected_row(y, heads[1]))
    _assert_row(table.row("mean"), _expected_row(y, heads.mean(0)))


def test_bad_ensemble():
    x, y = _data()
    with pytest.raises(ValueError, match="argument `ensemble`"):
        report([_member(0)[0]], x, y)


def _build_mlp():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def test_deep_ensemble_report():
    from kerasreg import DeepEnsemble

    model = DeepEnsemble(_build_mlp, n_members=2, seed=1)
    x, y = _data()
    table = report(model, x, y, calibration_data=(x, y))
    members = model.member_predictions(x)
    assert [r["model"] for r in table.rows] == [
        "member 0", "member 1", "mean", "vote", "geometric"
    ]
    _assert_row(table.row("member 1"), _expected_row(y, members[1]))
    _assert_row(table.row("mean"), _expected_row(y, members.mean(0)))
    assert table.row("mean")["temperature"] > 0


def test_mc_dropout_report():
    from kerasreg import MCDropout

    model = MCDropout(_build_mlp(), n_samples=3)
    x, y = _data()
    samples = model.sample_predictions(x)
    assert samples.shape == (3, len(x), 3)
    # Each pass is stochastic: score the report against the passes it got.
    fixed = np.random.default_rng(0).dirichlet(np.ones(3), size=(3, len(x)))
    model.sample_predictions = lambda inputs, batch_size=None: fixed.astype("float32")
    table = report(model, x, y)
    assert [r["model"] for r in table.rows] == [
        "sample 0", "sample 1", "sample 2", "mean", "vote", "geometric"
    ]
    _assert_row(table.row("sample 2"), _expected_row(y, fixed[2]))
    _assert_row(table.row("mean"), _expected_row(y, fixed.mean(0)))
