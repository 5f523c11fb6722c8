import struct
import sys

import keras
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import kerasreg
from kerasreg import Ensemble
from kerasreg.calibration import TemperatureScaling
from kerasreg.calibration import apply_temperature
from kerasreg.calibration import fit_temperature
from kerasreg.calibration import optimal_temperature
from kerasreg.calibration import plot_reliability
from kerasreg.ensembles import report
from test_ensemble import batch_normalized_member
from test_ensemble import masked_lstm
from test_ensemble import masked_scores
from test_ensemble import masked_sequences


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _scipy_temperature(y, scores):
    """Reference: scipy's bounded Brent search on the NLL of softmax(s / T)."""
    rows = np.arange(len(y))

    def nll(t):
        z = scores / t
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -log_p[rows, y].mean()

    res = minimize_scalar(
        nll, bounds=(0.01, 100), method="bounded", options={"xatol": 1e-10}
    )
    return res.x


def _data(n=300, classes=4, sharpness=3.0, seed=0):
    """Labels and over-confident logits: the true class leads, noisily."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    z = sharpness * (rng.normal(size=(n, classes)) + 1.5 * np.eye(classes)[y])
    return y, z


@pytest.mark.parametrize("sharpness", [0.3, 3.0])
def test_optimal_temperature_matches_scipy(sharpness):
    y, z = _data(sharpness=sharpness)
    p = _softmax(z)
    expected_logits = _scipy_temperature(y, z)
    expected_probs = _scipy_temperature(y, np.log(p))
    np.testing.assert_allclose(
        optimal_temperature(y, z, from_logits=True), expected_logits, rtol=1e-5
    )
    np.testing.assert_allclose(optimal_temperature(y, p), expected_probs, rtol=1e-5)
    # Over-confident (sharp) logits need T > 1, soft ones T < 1.
    assert (expected_logits > 1) == (sharpness > 1)
    # One-hot labels give the same temperature.
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(
        optimal_temperature(onehot, p), optimal_temperature(y, p), rtol=1e-12
    )


def test_optimal_temperature_binary_single_column():
    y, z = _data(classes=2)
    logit = (z[:, 1] - z[:, 0])[:, None]
    p1 = 1 / (1 + np.exp(-logit))
    two = np.concatenate([np.zeros_like(logit), logit], axis=1)
    expected = _scipy_temperature(y, two)
    np.testing.assert_allclose(
        optimal_temperature(y, logit, from_logits=True), expected, rtol=1e-5
    )
    np.testing.assert_allclose(optimal_temperature(y, p1), expected, rtol=1e-4)
    scaled = apply_temperature(p1, 2.0)
    np.testing.assert_allclose(scaled, 1 / (1 + np.exp(-logit / 2.0)), rtol=1e-9)


def _fixed_model(features=5, classes=4, activation="softmax", scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    w = scale * rng.normal(size=(features, classes)).astype("float32")
    b = rng.normal(size=(classes,)).astype("float32")
    model = keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(classes, activation=activation)]
    )
    model.set_weights([w, b])
    return model, (lambda x: x @ w + b)


def _noisy_argmax(logits, scale=2.0, seed=0):
    """Labels that follow the logits, with noise."""
    noise = np.random.default_rng(seed).normal(scale=scale, size=logits.shape)
    return np.argmax(logits + noise, axis=1)


def _x(n=40, features=5, seed=1):
    return np.random.default_rng(seed).normal(size=(n, features)).astype("float32")


def test_temperature_scaling_outputs_against_numpy():
    x = _x()
    probs_model, logits = _fixed_model()
    p = _softmax(logits(x))
    scaled = TemperatureScaling(probs_model, temperature=1.7)
    assert scaled.temperature == pytest.approx(1.7)
    np.testing.assert_allclose(
        scaled.predict(x, verbose=0),
        _softmax(np.log(p) / 1.7),
        atol=1e-6,
    )
    logit_model, logits = _fixed_model(activation=None)
    scaled = TemperatureScaling(logit_model, temperature=0.6, from_logits=True)
    np.testing.assert_allclose(
        scaled.predict(x, verbose=0), _softmax(logits(x) / 0.6), atol=1e-6
    )
    sigmoid_model, logits = _fixed_model(classes=1, activation="sigmoid")
    scaled = TemperatureScaling(sigmoid_model, temperature=2.5)
    np.testing.assert_allclose(
        scaled.predict(x, verbose=0),
        1 / (1 + np.exp(-logits(x) / 2.5)),
        atol=1e-5,
    )


def test_temperature_scaling_keeps_the_keras_mask():
    x, y = masked_sequences()
    model = masked_lstm(0)
    scaled = TemperatureScaling(model, temperature=1.7)
    p = model.predict(x, verbose=0).astype(np.float64)
    expected = masked_scores(_softmax(np.log(p) / 1.7), y, x != 0)
    scaled.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    out = scaled.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert out["loss"] == pytest.approx(expected["loss"], abs=1e-5)
    assert out["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)


def test_fit_temperature_int_and_onehot_labels_and_round_trip(tmp_path):
    model, logits = _fixed_model(scale=4.0)  # over-confident
    x = _x(200)
    y = _noisy_argmax(logits(x), scale=4.0, seed=3)
    p = model.predict(x, verbose=0)
    expected = _scipy_temperature(y, np.log(p.astype(np.float64)))
    scaled = fit_temperature(model, x, y)
    assert isinstance(scaled, TemperatureScaling)
    np.testing.assert_allclose(scaled.temperature, expected, rtol=1e-4)
    assert scaled.temperature > 1
    onehot = fit_temperature(model, x, np.eye(4)[y])
    np.testing.assert_allclose(onehot.temperature, scaled.temperature, rtol=1e-9)
    scaled_p = scaled.predict(x, verbose=0)
    assert kerasreg.metrics.nll(y, scaled_p) < kerasreg.metrics.nll(y, p)
    np.testing.assert_array_equal(scaled_p.argmax(1), p.argmax(1))

    path = tmp_path / "scaled.keras"
    scaled.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, TemperatureScaling)
    np.testing.assert_allclose(loaded.temperature, scaled.temperature, rtol=1e-6)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), scaled_p, atol=1e-6)
    assert [v.name for v in scaled.non_trainable_weights] == ["temperature"]


def test_fit_temperature_predicts_in_batches_of_batch_size():
    model, logits = batch_normalized_member(features=5, classes=4, scale=3.0)
    x = _x(40)
    y = _noisy_argmax(logits(x, 40), seed=4)
    found = {}
    for batch_size in (8, None):  # None: predict's 32
        scaled = fit_temperature(model, x, y, batch_size=batch_size)
        found[batch_size] = scaled.temperature
        expected = _scipy_temperature(y, logits(x, batch_size or 32))
        np.testing.assert_allclose(found[batch_size], expected, rtol=1e-4)
    assert found[8] != pytest.approx(found[None], rel=1e-3)


def test_apply_temperature_from_logits():
    y, z = _data(n=20)
    np.testing.assert_allclose(
        apply_temperature(z, 2.5, from_logits=True),
        _softmax(z / 2.5),
        rtol=1e-12,
    )
    # One column of logits: the probability of class 1, sigmoid(z / T);
    # a 1-D vector gives a 1-D result.
    logit = z[:, :1]
    expected = 1 / (1 + np.exp(-logit / 2.5))
    np.testing.assert_allclose(
        apply_temperature(logit, 2.5, from_logits=True), expected, rtol=1e-12
    )
    np.testing.assert_allclose(
        apply_temperature(logit[:, 0], 2.5, from_logits=True),
        expected[:, 0],
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match="argument `from_logits`"):
        apply_temperature(z, 2.5, from_logits="yes")


def test_fit_temperature_logits_model():
    model, logits = _fixed_model(activation=None, scale=3.0)
    x = _x(150)
    y = _noisy_argmax(logits(x), seed=5)
    scaled = fit_temperature(model, x, y, from_logits=True)
    z = model.predict(x, verbose=0).astype(np.float64)
    np.testing.assert_allclose(
        scaled.temperature, _scipy_temperature(y, z), rtol=1e-4
    )


def test_tiny_probabilities_give_the_temperature_of_the_logits():
    # Over-confident: some float32 probabilities are far below 1e-12 (a
    # clip there moved T from 5.64 to 5.62), none is 0.
    probs_model, logits = _fixed_model(scale=6.0)
    logit_model, _ = _fixed_model(activation=None, scale=6.0)
    x = _x(200)
    z = logits(x).astype(np.float64)
    y = _noisy_argmax(z, scale=8.0, seed=3)
    p = probs_model.predict(x, verbose=0)
    assert p.dtype == np.float32 and 0 < p.min() < 1e-20
    from_probs = fit_temperature(probs_model, x, y)
    from_logits = fit_temperature(logit_model, x, y, from_logits=True)
    assert from_probs.temperature == pytest.approx(
        from_logits.temperature, abs=1e-4
    )
    assert from_probs.temperature == pytest.approx(
        _scipy_temperature(y, z), abs=1e-4
    )
    np.testing.assert_allclose(
        from_probs.predict(x, verbose=0),
        from_logits.predict(x, verbose=0),
        atol=1e-6,
    )


def test_underflowed_probabilities_scale_alike_in_numpy_and_keras():
    # Probabilities that underflowed to 0 in float32 are read as the
    # smallest positive normal float32 (2**-126) by both paths.
    model, logits = _fixed_model(scale=30.0)
    x = _x(50)
    p = model.predict(x, verbose=0)
    assert np.any(p == 0)
    log_p = np.log(np.maximum(p.astype(np.float64), 2.0**-126))
    expected = _softmax(log_p / 3.0)
    np.testing.assert_allclose(apply_temperature(p, 3.0), expected, atol=1e-12)
    np.testing.assert_allclose(
        TemperatureScaling(model, 3.0).predict(x, verbose=0), expected, atol=1e-6
    )


def test_fit_temperature_on_ensembles_and_mc_dropout(tmp_path):
    x = _x(60)
    pairs = [_fixed_model(seed=s) for s in range(3)]
    members = [m for m, _ in pairs]
    y = _noisy_argmax(sum(f(x) for _, f in pairs), seed=6)
    ens = Ensemble(members)
    scaled = fit_temperature(ens, x, y)
    p = ens.predict(x, verbose=0).astype(np.float64)
    np.testing.assert_allclose(
        scaled.temperature,
        _scipy_temperature(y, np.log(p)),
        rtol=1e-4,
    )
    scaled.save(tmp_path / "ens.keras")
    loaded = keras.saving.load_model(tmp_path / "ens.keras")
    assert isinstance(loaded.model, Ensemble)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), scaled.predict(x, verbose=0), atol=1e-6
    )

    dropout_model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    mc = kerasreg.MCDropout(dropout_model, n_samples=5)
    log_p = np.log(dropout_model.predict(x, verbose=0))
    y = _noisy_argmax(log_p, scale=0.5 * log_p.std(), seed=7)
    scaled_mc = fit_temperature(mc, x, y)
    assert scaled_mc.predict(x, verbose=0).shape == (60, 4)
    assert 0.01 <= scaled_mc.temperature <= 100


def _overconfident_ensemble():
    members = [_fixed_model(scale=6.0, seed=s)[0] for s in range(2)]
    return Ensemble(members)


def test_report_calibrated_columns():
    ens = _overconfident_ensemble()
    rng = np.random.default_rng(0)
    x_val, x_test = _x(120, seed=2), _x(120, seed=3)
    # Labels: the first member's argmax, corrupted for a third of the rows.
    def labels(x):
        y = ens.members[0].predict(x, verbose=0).argmax(1)
        flip = rng.random(len(y)) < 0.35
        return np.where(flip, rng.integers(0, 4, size=len(y)), y)

    y_val, y_test = labels(x_val), labels(x_test)
    plain = report(ens, x_test, y_test)
    assert "calibrated_nll" not in plain.rows[0]
    table = report(ens, x_test, y_test, calibration_data=(x_val, y_val))
    assert "calibrated_nll" in str(table)
    for row in table.rows:
        assert {"calibrated_nll", "calibrated_ece", "temperature"} <= set(row)
    mean = table.row("mean")
    assert mean["temperature"] > 1
    assert mean["calibrated_nll"] <= mean["nll"]
    # Independent reference for the mean row: scipy's T on the validation
    # probabilities, applied to the test probabilities in numpy.
    p_val = np.mean(
        [m.predict(x_val, verbose=0) for m in ens.members], axis=0
    ).astype(np.float64)
    p_test = np.mean(
        [m.predict(x_test, verbose=0) for m in ens.members], axis=0
    ).astype(np.float64)
    t = _scipy_temperature(y_val, np.log(p_val))
    np.testing.assert_allclose(mean["temperature"], t, rtol=1e-4)
    scaled = _softmax(np.log(p_test) / t)
    np.testing.assert_allclose(
        mean["calibrated_nll"],
        -np.mean(np.log(scaled[np.arange(120), y_test])),
        rtol=1e-4,
    )
    # The raw columns are unchanged by the calibration argument.
    for a, b in zip(plain.rows, table.rows):
        assert a["nll"] == pytest.approx(b["nll"])
    with pytest.raises(ValueError, match="calibration_data"):
        report(ens, x_test, y_test, calibration_data=x_val)


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_plot_reliability(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    y, z = _data()
    p = _softmax(z)
    one = plot_reliability(y, p, tmp_path / "one.png", n_bins=10)
    assert one == str(tmp_path / "one.png")
    assert _png_size(one) == (600, 700)
    many = plot_reliability(
        y,
        {"raw": p, "scaled": apply_temperature(p, optimal_temperature(y, p))},
        tmp_path / "many.png",
    )
    assert _png_size(many) == (600, 700)
    assert matplotlib.get_backend() == backend
    with pytest.raises(ValueError, match="argument `n_bins`"):
        plot_reliability(y, p, tmp_path / "x.png", n_bins=0)


def test_plot_reliability_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    y, z = _data(n=20)
    with pytest.raises(ImportError, match=r"kerasreg\[plot\]"):
        plot_reliability(y, _softmax(z), tmp_path / "x.png")


def test_bad_inputs():
    y, z = _data(n=50)
    p = _softmax(z)
    with pytest.raises(ValueError, match="only class 2"):
        optimal_temperature(np.full(50, 2), p)
    with pytest.raises(ValueError, match="argument `y_true`.*labels in \\[0, 3\\]"):
        optimal_temperature(np.arange(50) % 5, p)
    with pytest.raises(ValueError, match="Received: from_logits=True"):
        optimal_temperature(y, p, from_logits=True)
    with pytest.raises(ValueError, match="Received: from_logits=False"):
        optimal_temperature(y, z)
    with pytest.raises(ValueError, match="non-empty"):
        optimal_temperature(y[:0], p[:0])
    with pytest.raises(ValueError, match="argument `temperature`"):
        apply_temperature(p, 0.0)

    model, _ = _fixed_model()
    logit_model, _ = _fixed_model(activation=None)
    x = _x(50)
    with pytest.raises(ValueError, match="argument `x_val`.*0 rows"):
        fit_temperature(model, x[:0], y[:0])
    with pytest.raises(ValueError, match="argument `y_val`.*only class 1"):
        fit_temperature(model, x, np.ones(50, dtype=int))
    with pytest.raises(ValueError, match="argument `y_val`.*from 0 to 6"):
        fit_temperature(model, x, np.arange(50) % 7)
    with pytest.raises(ValueError, match="argument `y_val`.*one label"):
        fit_temperature(model, x, y[:10])
    with pytest.raises(ValueError, match="Received: from_logits=True"):
        fit_temperature(model, x, y, from_logits=True)
    with pytest.raises(ValueError, match="Received: from_logits=False"):
        fit_temperature(logit_model, x, y)
    with pytest.raises(ValueError, match="argument `temperature`"):
        TemperatureScaling(model, temperature=-1.0)
    with pytest.raises(ValueError, match="argument `model`"):
        TemperatureScaling("not a model")
