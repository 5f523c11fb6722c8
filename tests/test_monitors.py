import glob
import math
import os

import keras
import numpy as np
import pytest

from kerasreg.callbacks import ActivationHistograms, UpdateRatioMonitor


def _linear(lr, w0):
    model = keras.Sequential(
        [keras.Input((3,)),
         keras.layers.Dense(1, use_bias=False, name="lin",
                            kernel_initializer=keras.initializers.Constant(w0))])
    model.compile(keras.optimizers.SGD(lr), "mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    return x, y


def _read_tags(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator)
    acc = EventAccumulator(log_dir, size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_update_ratio_equals_lr_grad_over_weight(tmp_path):
    x, y = _data()
    lr, w0 = 0.05, 0.5
    model = _linear(lr, w0)
    monitor = UpdateRatioMonitor(every=1, log_dir=str(tmp_path))
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                        callbacks=[monitor])
    w = np.full((3, 1), w0)
    g = 2.0 / len(x) * x.T.astype("float64") @ (x @ w - y)  # d mse / d w
    expected = lr * np.linalg.norm(g) / np.linalg.norm(w)
    assert history.history["update_ratio"][0] == pytest.approx(expected, rel=1e-4)
    key = "update_ratio/" + model.trainable_weights[0].path  # sequential/lin/kernel
    assert history.history[key][0] == pytest.approx(
        expected, rel=1e-4)
    assert monitor.records[0]["step"] == 0
    scalars = _read_tags(str(tmp_path)).Scalars("update_ratio")
    assert scalars[0].value == pytest.approx(expected, rel=1e-4)


def test_measures_every_n_steps_from_optimizer_iterations():
    x, y = _data()
    model = _linear(0.01, 0.5)
    monitor = UpdateRatioMonitor(every=3)
    model.fit(x, y, batch_size=1, epochs=1, verbose=0, callbacks=[monitor])
    assert [r["step"] for r in monitor.records] == [0, 3, 6]
    # A second fit resumes from optimizer.iterations (8): steps 9, 12, 15.
    model.fit(x, y, batch_size=1, epochs=1, verbose=0, callbacks=[monitor])
    assert [r["step"] for r in monitor.records][3:] == [9, 12, 15]


@pytest.mark.parametrize("lr,word", [(1e-7, "too low"), (10.0, "too high")])
def test_warns_for_bad_learning_rates(lr, word):
    x, y = _data()
    model = _linear(lr, 0.5)
    with pytest.warns(UserWarning, match=word):
        model.fit(x, y, batch_size=2, epochs=1, verbose=0,
                  callbacks=[UpdateRatioMonitor(every=1, patience=3)])


def test_update_ratio_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        UpdateRatioMonitor(every=0)
    with pytest.raises(ValueError, match="high"):
        UpdateRatioMonitor(low=1e-2, high=1e-3)
    with pytest.raises(ValueError, match="high"):
        UpdateRatioMonitor(low=1e-3, high=1e-3)
    with pytest.raises(ValueError, match="low"):
        UpdateRatioMonitor(low=0)


def _fish_net(stddev, activation="tanh"):
    init = keras.initializers.RandomNormal(stddev=stddev, seed=0)
    layers = [keras.layers.Dense(100, activation=activation, kernel_initializer=init,
                                 name=f"h{i}") for i in range(5)]
    model = keras.Sequential([keras.Input((100,))] + layers
                             + [keras.layers.Dense(10, activation="softmax", name="out")])
    model.compile(keras.optimizers.SGD(1e-3), "sparse_categorical_crossentropy")
    return model


def _fish_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 100)).astype("float32")
    y = rng.integers(0, 10, size=(64,))
    return x, y


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_flags_saturated_std1_network_but_not_xavier(activation):
    x, y = _fish_data()
    hist = ActivationHistograms((x, y))
    with pytest.warns(UserWarning, match="layer 'h1'.*saturated"):
        _fish_net(1.0, activation).fit(x, y, epochs=1, batch_size=64, verbose=0,
                                       callbacks=[hist])
    assert {f[1] for f in hist.flags if f[0] == 0} >= {"h1", "h2", "h3", "h4"}

    keras.utils.set_random_seed(1)
    xavier = ActivationHistograms((x, y))
    model = _fish_net(1 / math.sqrt(100), activation)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[xavier])
    assert xavier.flags == []


def test_flags_dead_relu_layer():
    x, y = _fish_data()
    model = keras.Sequential([
        keras.Input((100,)),
        keras.layers.Dense(50, activation="relu", name="dead",
                           bias_initializer=keras.initializers.Constant(-100.0)),
        keras.layers.Dense(10, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    hist = ActivationHistograms((x, y))
    hist.set_model(model)
    with pytest.warns(UserWarning, match="layer 'dead'.*dead"):
        flags = hist.capture()
    assert flags == [("dead", "dead", 1.0)]


def test_activations_and_gradients_match_numpy():
    # One linear layer + MSE: d mean((a - y)^2) / d a = 2 (a - y) / (n * d).
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4)).astype("float32")
    y = rng.normal(size=(6, 2)).astype("float32")
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(3, activation="tanh", name="t"),
                              keras.layers.Dense(2, name="lin")])
    model.compile("sgd", "mse")
    hist = ActivationHistograms((x, y))
    hist.set_model(model)
    hist.capture()
    w1, b1, w2, b2 = [w.astype("float64") for w in model.get_weights()]
    t = np.tanh(x @ w1 + b1)
    a = t @ w2 + b2
    np.testing.assert_allclose(hist.activations["t"], t, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(hist.activations["lin"], a, rtol=1e-4, atol=1e-5)
    g = 2 * (a - y) / a.size
    np.testing.assert_allclose(hist.gradients["lin"], g, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(hist.gradients["t"], g @ w2.T, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_writes_png_and_tensorboard_files(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = _fish_data()
    png_dir, log_dir = str(tmp_path / "png"), str(tmp_path / "tb")
    hist = ActivationHistograms((x[:16], y[:16]), log_dir=log_dir, png_dir=png_dir)
    model = _fish_net(1 / math.sqrt(100))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[hist])
    pngs = sorted(os.path.basename(p) for p in glob.glob(png_dir + "/*.png"))
    assert pngs == ["activations_epoch_000.png", "activations_epoch_001.png"]
    tags = _read_tags(log_dir).Tags()["histograms"]
    assert "activations/h0" in tags and "gradients/out" in tags
    hist0 = _read_tags(log_dir).Histograms("activations/h0")[0].histogram_value
    assert hist0.num == 16 * 100


def test_activation_histograms_bad_arguments():
    x = np.zeros((4, 3), "float32")
    with pytest.raises(ValueError, match="every_epochs"):
        ActivationHistograms(x, every_epochs=0)
    with pytest.raises(ValueError, match="x_sample"):
        ActivationHistograms((x, x, x))
    with pytest.raises(ValueError, match="dead_threshold"):
        ActivationHistograms(x, dead_threshold=1.5)


@pytest.mark.parametrize(
    "x_sample, shown",
    [
        (5, "5"),
        ("abc", "'abc'"),
        (None, "None"),
        ((3, np.zeros(3)), r"\(3, array"),
        (np.zeros((0, 3), "float32"), "array"),
    ],
)
def test_activation_histograms_x_sample_not_an_array(x_sample, shown):
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `x_sample`\. Expected an "
        rf"array of at least one example.*Received: x_sample={shown}",
    ):
        ActivationHistograms(x_sample)


def test_without_labels_records_activations_only():
    x, _ = _fish_data()
    model = _fish_net(1 / math.sqrt(100))
    hist = ActivationHistograms(x[:8])
    hist.set_model(model)
    with pytest.warns(UserWarning, match="labels"):
        hist.capture()
    assert set(hist.activations) == {"h0", "h1", "h2", "h3", "h4", "out"}
    assert hist.gradients == {}
