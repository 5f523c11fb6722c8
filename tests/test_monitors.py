import glob
import math
import os
import warnings

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


class _WeightRecorder(keras.callbacks.Callback):
    """The trainable weights after every step: a reference for the monitor."""

    def __init__(self):
        super().__init__()
        self.initial = None  # before the first step (None: model unbuilt)
        self.after = {}  # iterations before the step -> weights after it

    def _trainable(self):
        model = self.model  # on jax, reading `self.model` syncs the state
        return [keras.ops.convert_to_numpy(v).astype("float64")
                for v in model.trainable_weights]

    def on_train_begin(self, logs=None):
        if self.model.built:
            self.initial = self._trainable()

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.after[step - 1] = self._trainable()


def _mlp(built=True):
    layers = [keras.layers.Dense(5, activation="tanh", name="h"),
              keras.layers.Dense(3, name="out")]
    if built:
        layers = [keras.Input((4,))] + layers
    model = keras.Sequential(layers, name="net")
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    return model


def _mlp_data(n=40):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = rng.normal(size=(n, 3)).astype("float32")
    return x, y


def _check_against_reference(monitor, recorder, initial, paths):
    for record in monitor.records:
        step = record["step"]
        old = initial if step == 0 else recorder.after[step - 1]
        new = recorder.after[step]
        # Tensors with a zero norm (the biases before the first step) are
        # left out.
        expected = {
            path: np.linalg.norm(b - a) / np.linalg.norm(a)
            for path, a, b in zip(paths, old, new, strict=True)
            if np.linalg.norm(a) > 0
        }
        assert sorted(record["ratios"]) == sorted(expected)
        for path, value in expected.items():
            assert record["ratios"][path] == pytest.approx(value, rel=1e-4)
        assert record["median"] == pytest.approx(
            np.median(list(expected.values())), rel=1e-4)


def _fit_recorded(built, every=3, extra=()):
    keras.utils.set_random_seed(0)
    x, y = _mlp_data()
    model = _mlp(built)
    monitor = UpdateRatioMonitor(every=every, low=1e-12, high=1e12)
    recorder = _WeightRecorder()
    # 40 rows, batch 4: 10 steps per epoch (validation runs inside `fit`).
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                        validation_data=(x[:8], y[:8]),
                        callbacks=[monitor, recorder, *extra])
    return model, monitor, recorder, history


def test_ratios_match_weights_recorded_around_the_step():
    model, monitor, recorder, history = _fit_recorded(built=True)
    # Measured at iterations 0, 3, 6, 9 | 12, 15, 18.
    assert [r["step"] for r in monitor.records] == [0, 3, 6, 9, 12, 15, 18]
    paths = [v.path for v in model.trainable_weights]
    assert paths == ["net/h/kernel", "net/h/bias", "net/out/kernel",
                     "net/out/bias"]
    _check_against_reference(monitor, recorder, recorder.initial, paths)
    assert len(monitor.records[0]["ratios"]) == 2  # kernels only at step 0
    assert len(monitor.records[1]["ratios"]) == 4
    # Epoch logs: the epoch's last measurement (steps 9 and 18).
    for epoch, record in ((0, monitor.records[3]), (1, monitor.records[6])):
        assert history.history["update_ratio"][epoch] == record["median"]
        for path, value in record["ratios"].items():
            assert history.history[f"update_ratio/{path}"][epoch] == value


def test_unbuilt_sequential_measures_from_its_first_step():
    # No keras.Input: on tensorflow the first train step builds the model
    # (and the monitor's state). Same seed as a built twin: same weights.
    twin, _, twin_recorder, _ = _fit_recorded(built=True)
    model, monitor, recorder, _ = _fit_recorded(built=False)
    for a, b in zip(recorder.after[0], twin_recorder.after[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["step"] for r in monitor.records] == [0, 3, 6, 9, 12, 15, 18]
    paths = [v.path for v in model.trainable_weights]
    _check_against_reference(monitor, recorder, twin_recorder.initial, paths)


def test_shares_the_train_step_with_weight_ema():
    # Both callbacks wrap the same compiled step through the in-step seam.
    from kerasreg import WeightEMA

    ema = WeightEMA(decay=0.5, swap_on_evaluate=False)
    model, monitor, recorder, _ = _fit_recorded(built=True, extra=[ema])
    assert [r["step"] for r in monitor.records] == [0, 3, 6, 9, 12, 15, 18]
    paths = [v.path for v in model.trainable_weights]
    _check_against_reference(monitor, recorder, recorder.initial, paths)
    shadow = recorder.initial
    for step in range(20):
        shadow = [0.5 * s + 0.5 * w
                  for s, w in zip(shadow, recorder.after[step], strict=True)]
    for got, want in zip(ema.shadow_weights(), shadow, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_steps_per_execution_measures_single_steps():
    # Two steps per execution: the measured steps and their values are
    # those of one step each, as with one step per execution.
    x, y = _mlp_data()

    def records(steps_per_execution):
        keras.utils.set_random_seed(0)
        model = _mlp()
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse",
                      steps_per_execution=steps_per_execution)
        monitor = UpdateRatioMonitor(every=3, low=1e-12, high=1e12)
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
                  callbacks=[monitor])
        return monitor.records

    single, double = records(1), records(2)
    assert [r["step"] for r in double] == [0, 3, 6, 9]
    for a, b in zip(double, single, strict=True):
        assert a["ratios"].keys() == b["ratios"].keys()
        for path in a["ratios"]:
            assert a["ratios"][path] == pytest.approx(b["ratios"][path],
                                                      rel=1e-5)


def test_no_batch_hooks_and_no_weight_reads_between_steps():
    # The monitor leaves every batch hook to the base class, so Keras keeps
    # its asynchronous batch dispatch and nothing reads weights per step.
    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_batch_end",
                 "on_batch_begin"):
        assert (getattr(UpdateRatioMonitor, hook)
                is getattr(keras.callbacks.Callback, hook))


def test_schedule_follows_iterations_when_every_exceeds_an_epoch():
    x, y = _data()  # 8 rows, batch 4: 2 steps per epoch
    model = _linear(0.01, 0.5)
    monitor = UpdateRatioMonitor(every=5, low=1e-12, high=1e12)
    history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False,
                        verbose=0, callbacks=[monitor])
    # iterations 0..5 over 3 epochs: measured at 0 (epoch 0), 5 (epoch 2).
    assert [r["step"] for r in monitor.records] == [0, 5]
    # An epoch without a measurement repeats the last one in the logs.
    ratios = history.history["update_ratio"]
    assert ratios[0] == ratios[1] == monitor.records[0]["median"]
    assert ratios[2] == monitor.records[1]["median"]
    # A second fit resumes the schedule from optimizer.iterations (6).
    model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
              callbacks=[monitor])
    assert [r["step"] for r in monitor.records] == [0, 5, 10]


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def test_resume_with_backup_and_restore_equals_uninterrupted(tmp_path):
    x, y = _mlp_data(24)  # batch 4: 6 steps per epoch

    keras.utils.set_random_seed(0)
    model = _mlp()
    straight = UpdateRatioMonitor(every=4, low=1e-12, high=1e12)
    model.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0,
              callbacks=[straight])

    keras.utils.set_random_seed(0)
    model = _mlp()
    monitor = UpdateRatioMonitor(every=4, low=1e-12, high=1e12)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path))
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0,
                  callbacks=[monitor, backup, _Interrupt(1)])
    model.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0,
              callbacks=[monitor, backup])
    # Steps 0, 4, 8 | 12, 16, 20: the resumed run measures the same steps
    # (the schedule is on the restored iterations) with the same values.
    assert [r["step"] for r in monitor.records] == [0, 4, 8, 12, 16, 20]
    assert [r["step"] for r in straight.records] == [0, 4, 8, 12, 16, 20]
    for a, b in zip(monitor.records, straight.records, strict=True):
        assert a["ratios"].keys() == b["ratios"].keys()
        for path in a["ratios"]:
            assert a["ratios"][path] == pytest.approx(b["ratios"][path],
                                                      rel=1e-5)


def test_keeps_the_last_measurements_when_an_epoch_overflows(monkeypatch):
    monkeypatch.setattr(UpdateRatioMonitor, "_CAPACITY", 4)
    x, y = _data()
    model = _linear(0.01, 0.5)
    monitor = UpdateRatioMonitor(every=1, low=1e-12, high=1e12)
    history = model.fit(x, y, batch_size=1, epochs=2, shuffle=False,
                        verbose=0, callbacks=[monitor])
    # 8 measurements per epoch, 4 kept: the last 4 of each epoch.
    assert [r["step"] for r in monitor.records] == [4, 5, 6, 7, 12, 13, 14, 15]
    assert history.history["update_ratio"][1] == monitor.records[-1]["median"]


def test_model_without_optimizer_raises_in_train_begin():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    monitor = UpdateRatioMonitor()
    monitor.set_model(model)
    with pytest.raises(ValueError, match="compiled model"):
        monitor.on_train_begin()


def test_evaluate_with_the_monitor_leaves_the_optimizer_as_it_was():
    x, y = _data()
    model = _linear(0.01, 0.5)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    n = len(model.optimizer.variables)
    model.evaluate(x, y, verbose=0, callbacks=[UpdateRatioMonitor()])
    assert len(model.optimizer.variables) == n
    monitor = UpdateRatioMonitor(every=1)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[monitor])
    assert len(model.optimizer.variables) == n
    assert [r["step"] for r in monitor.records] == [2, 3]


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


def test_dispatch_runs_the_busy_step_only_on_due_calls():
    # On jax the seam runs a second compiled step, without the monitor's
    # work, on the calls where no step is due: a step that compares old and
    # new weights makes XLA copy every weight at every step (donated state).
    from kerasreg.callbacks._in_step import _Dispatch

    ran = []

    def step(name):
        def run(state, iterator):
            ran.append((name, int(state[0][0])))
            return {}, ([state[0][0] + 3],)  # 3 steps per call
        return run

    class Model:
        steps_per_execution = 3

    model = Model()
    monitor = UpdateRatioMonitor(every=5)
    dispatch = _Dispatch(step("busy"), step("idle"), (0, 0),
                         [monitor._in_step_busy], lambda: model)
    state = ([np.int32(4)],)
    for _ in range(4):
        _, state = dispatch(state, None)
    # Calls cover steps 4-6 (5 due), 7-9, 10-12 (10 due), 13-15 (15 due).
    assert ran == [("busy", 4), ("idle", 7), ("busy", 10), ("busy", 13)]
    # A state the last call did not return (a callback synced it, a new
    # epoch) is read again: the count follows it.
    ran.clear()
    dispatch(([np.int32(1)],), None)
    dispatch(([np.int32(16)],), None)
    assert ran == [("idle", 1), ("idle", 16)]


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="the dispatch is jax-only")
def test_jax_fit_runs_the_monitor_step_on_due_steps_only():
    from kerasreg.callbacks import _in_step

    x, y = _data()
    model = _linear(0.01, 0.5)
    monitor = UpdateRatioMonitor(every=3, low=1e-12, high=1e12)
    busy = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            dispatch = _in_step._SEAMS[model].cache[1]
            run = dispatch._busy

            def counted(state, iterator):
                busy.append(1)
                return run(state, iterator)

            dispatch._busy = counted

    model.fit(x, y, batch_size=1, epochs=2, verbose=0,
              callbacks=[monitor, Spy()])
    # 16 steps, due at 0, 3, ..., 15: 6 busy calls out of 16.
    assert [r["step"] for r in monitor.records] == [0, 3, 6, 9, 12, 15]
    assert len(busy) == 6


# --- UpdateRatioMonitor(patience=...): when it warns -------------------------


def _gd_ratios(x, y, lr, w0, steps):
    """Plain gradient descent on mse, in numpy: `||w_new - w_old|| / ||w_old||`."""
    x, y = x.astype("float64"), y.astype("float64")
    w, ratios = np.array(w0, dtype="float64"), []
    for _ in range(steps):
        new = w - lr * 2.0 / len(x) * x.T @ (x @ w - y)
        ratios.append(np.linalg.norm(new - w) / np.linalg.norm(w))
        w = new
    return ratios


class _WarningsPerEpoch(keras.callbacks.Callback):
    """After each epoch, how many UpdateRatioMonitor warnings were raised."""

    def __init__(self, caught):
        super().__init__()
        self.caught = caught
        self.counts = []

    def on_epoch_end(self, epoch, logs=None):
        self.counts.append(len(_monitor_warnings(self.caught)))


def _monitor_warnings(caught):
    return [str(w.message) for w in caught
            if str(w.message).startswith("UpdateRatioMonitor:")]


def _fit_with_monitors(lr, w0, monitors, epochs=5):
    # One full batch per epoch, every step measured: the monitor reads its
    # measurements at each epoch's end, one per epoch.
    x, y = _data()
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(keras.optimizers.SGD(lr), "mse")
    model.set_weights([np.asarray(w0, "float32")])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recorder = _WarningsPerEpoch(caught)
        model.fit(x, y, batch_size=len(x), epochs=epochs, shuffle=False,
                  verbose=0, callbacks=[*monitors, recorder])
    return _gd_ratios(x, y, lr, w0, epochs), recorder.counts, caught


def test_patience_warns_once_after_consecutive_too_high_ratios():
    x, y = _data()
    # Above 2 / lambda_max of the mse's Hessian, plain GD diverges: every
    # ratio is far above `high`.
    hessian = 2.0 / len(x) * x.T.astype("float64") @ x
    lr = 1.5 * 2.0 / np.linalg.eigvalsh(hessian).max()
    w0 = np.full((3, 1), 0.5)
    three = UpdateRatioMonitor(every=1, patience=3)
    six = UpdateRatioMonitor(every=1, patience=6)  # more than 5 measurements
    expected, counts, caught = _fit_with_monitors(lr, w0, [three, six])
    assert min(expected) > 1.0 > three.high
    for monitor in (three, six):
        assert [r["median"] for r in monitor.records] == pytest.approx(
            expected, rel=1e-4)
    # Nothing after 1 or 2 measurements, one warning at the third, none
    # after it although the ratio stays too high; patience=6 never warns.
    assert counts == [0, 0, 1, 1, 1]
    (message,) = _monitor_warnings(caught)
    assert "above high=0.01 for 3 measurements" in message
    assert "too high" in message


def test_patience_ignores_shorter_excursions_and_healthy_rates():
    x, y = _data()
    w_star = np.linalg.lstsq(x.astype("float64"), y.astype("float64"),
                             rcond=None)[0]
    # Converging GD from near the optimum: the ratio starts above
    # high=1e-2 and falls into [low, high] at the fourth measurement.
    w0 = np.round(w_star + 0.01, 3)
    three = UpdateRatioMonitor(every=1, patience=3)
    four = UpdateRatioMonitor(every=1, patience=4)
    expected, counts, caught = _fit_with_monitors(0.5, w0, [three, four])
    above = [r > 1e-2 for r in expected]
    assert above == [True, True, True, False, False]
    assert [r["median"] for r in four.records] == pytest.approx(expected,
                                                                rel=1e-3)
    assert counts == [0, 0, 1, 1, 1]  # patience 3 only; 3 < 4 for the other
    (message,) = _monitor_warnings(caught)
    assert "for 3 measurements" in message
    # A healthy rate: every ratio inside [1e-4, 1e-2], no warning.
    w0 = np.round(w_star + 0.005, 3)
    healthy = UpdateRatioMonitor(every=1, patience=1)
    expected, counts, caught = _fit_with_monitors(0.1, w0, [healthy])
    assert all(1e-4 < r < 1e-2 for r in expected)
    assert [r["median"] for r in healthy.records] == pytest.approx(expected,
                                                                   rel=1e-3)
    assert counts == [0] * 5 and not _monitor_warnings(caught)


# --- ActivationHistograms options ------------------------------------------


def test_every_epochs_no_gradients_and_bins(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(5, activation="tanh", name="t"),
                              keras.layers.Dense(2, name="lin")])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    hist = ActivationHistograms((x, y), every_epochs=2, gradients=False, bins=7,
                                log_dir=str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[hist])
    # Labels given, but gradients=False: no gradient, and no note about it.
    assert hist.gradients == {}
    assert not [w for w in caught if "ActivationHistograms" in str(w.message)]
    events = _read_tags(str(tmp_path))
    assert sorted(events.Tags()["histograms"]) == ["activations/lin",
                                                   "activations/t"]
    # At the start, then after every second epoch (2 and 4), not after 1, 3.
    for name in ("t", "lin"):
        records = events.Histograms(f"activations/{name}")
        assert [r.step for r in records] == [0, 2, 4]
        last = records[-1].histogram_value
        counts, edges = np.histogram(
            hist.activations[name].astype("float64").ravel(), bins=7)
        assert list(last.bucket) == counts.tolist()
        np.testing.assert_allclose(last.bucket_limit, edges[1:], rtol=1e-12)
        assert last.num == 16 * model.get_layer(name).units
    # The activations kept are the last capture's: the final weights.
    w1, b1, w2, b2 = [w.astype("float64") for w in model.get_weights()]
    np.testing.assert_allclose(hist.activations["t"], np.tanh(x @ w1 + b1),
                               rtol=1e-4, atol=1e-5)


def test_saturation_threshold_and_bound_margin_decide_the_flag():
    # tanh(x) for one unit with weight 1 and bias 0: the pre-activations are
    # the inputs, so the fractions near the bounds are known by hand.
    z = np.array([-3.0, -2.5, -1.0, -0.8, -0.3, 0.1, 0.7, 1.2, 2.2, 0.0])
    x = z[:, None].astype("float32")
    model = keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(1, activation="tanh", name="t",
                           kernel_initializer="ones")])

    def flags(**kwargs):
        hist = ActivationHistograms(x, gradients=False, **kwargs)
        hist.set_model(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = hist.capture()
        messages = [str(w.message) for w in caught
                    if str(w.message).startswith("ActivationHistograms:")]
        np.testing.assert_allclose(hist.activations["t"][:, 0], np.tanh(z),
                                   rtol=1e-5, atol=1e-6)
        return found, messages

    # |tanh| > 0.95 (margin 0.05) for |z| > atanh(0.95) = 1.83: 3 of 10.
    assert np.mean(np.abs(np.tanh(z)) > 0.95) == 0.3
    # |tanh| > 0.5 (margin 0.5) for |z| > atanh(0.5) = 0.55: 7 of 10.
    assert np.mean(np.abs(np.tanh(z)) > 0.5) == 0.7
    assert flags() == ([], [])  # 0.3 is not above the default 0.5
    found, messages = flags(saturation_threshold=0.2)
    assert found == [("t", "saturated", pytest.approx(0.3))]
    assert len(messages) == 1 and "layer 't' (tanh) is saturated" in messages[0]
    found, _ = flags(bound_margin=0.5)
    assert found == [("t", "saturated", pytest.approx(0.7))]
    found, _ = flags(bound_margin=0.5, saturation_threshold=0.75)
    assert found == []


def test_dead_threshold_decides_the_flag():
    # Four ReLU units, weight 1 and biases 0, 0, -10, -10: on inputs in
    # [-1, 1] the last two are zero on the whole sample, half the units.
    x = np.linspace(-1, 1, 6, dtype="float32")[:, None]
    model = keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(4, activation="relu", name="r",
                           kernel_initializer="ones",
                           bias_initializer=keras.initializers.Constant(
                               [0.0, 0.0, -10.0, -10.0]))])

    def flags(**kwargs):
        hist = ActivationHistograms(x, gradients=False, **kwargs)
        hist.set_model(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = hist.capture()
        dead = np.mean(np.all(hist.activations["r"] <= 0, axis=0))
        assert dead == 0.5
        return found

    assert flags() == []  # 0.5 is not above the default 0.5
    assert flags(dead_threshold=0.4) == [("r", "dead", 0.5)]
