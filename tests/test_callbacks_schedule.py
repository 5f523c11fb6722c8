"""kerasreg.callbacks.ScheduleCallback end to end with fit."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from kerasreg import schedules as S
from kerasreg.callbacks import ScheduleCallback


def f32(values):
    return np.asarray(values, dtype="float32").astype("float64")


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype("float32")
    return x, y


def linear_model(lr=0.1, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=lr), loss="mse")
    return model


def weights(model):
    return [ops.convert_to_numpy(w) for w in model.weights]


def test_history_equals_formula_per_epoch():
    x, y = data()
    model = linear_model()
    history = model.fit(
        x, y, epochs=6, batch_size=8, verbose=0,
        callbacks=[ScheduleCallback(S.StepDecay(0.1, 0.5, 2))],
    )
    assert history.history["learning_rate"] == list(f32([0.1, 0.1, 0.05, 0.05, 0.025, 0.025]))
    assert float(ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.025)


def test_step_unit_rates_take_effect_sgd_against_numpy():
    """Mid-epoch rates must reach the compiled step (jax keeps state outside variables)."""
    x, y = data(n=16)
    model = linear_model()
    w0, b0 = [w.astype("float64") for w in weights(model)]
    k = 0.3
    history = model.fit(
        x, y, epochs=3, batch_size=4, shuffle=False, verbose=0,
        callbacks=[ScheduleCallback(S.ExponentialDecay(0.1, k), unit="step")],
    )

    def sgd(rates):
        w, b = w0.copy(), b0.copy()
        for t, lr in enumerate(rates):
            xb, yb = x[(t % 4) * 4 : (t % 4) * 4 + 4].astype("float64"), y[(t % 4) * 4 : (t % 4) * 4 + 4]
            err = xb @ w + b - yb
            w -= lr * 2 * xb.T @ err / len(xb)
            b -= lr * 2 * err.mean(axis=0)
        return w, b

    rates = 0.1 * np.exp(-k * np.arange(12))
    w, b = sgd(rates)
    np.testing.assert_allclose(weights(model)[0], w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(weights(model)[1], b, rtol=1e-4, atol=1e-6)
    # the test can tell: the epoch's first rate held for the whole epoch differs
    w_wrong, _ = sgd(np.repeat(rates[::4], 4))
    assert not np.allclose(w, w_wrong, rtol=1e-3)
    np.testing.assert_allclose(history.history["learning_rate"], rates[[3, 7, 11]], rtol=1e-6)
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 12


def test_step_unit_every_rate_and_python_callable():
    x, y = data(n=12)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    schedule = S.CyclicCosine(0.1, total_steps=9, n_cycles=2, min_learning_rate=0.01)
    model = linear_model()
    model.fit(x, y, epochs=3, batch_size=4, verbose=0,
              callbacks=[ScheduleCallback(schedule, unit="step"), Probe()])
    c = 5
    expected = 0.01 + 0.09 / 2 * (np.cos(np.pi * (np.arange(9) % c) / c) + 1)
    np.testing.assert_allclose(seen, expected, rtol=1e-6)

    seen.clear()
    model = linear_model()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0,
              callbacks=[ScheduleCallback(lambda t: 0.1 if t < 4 else 0.01, unit="step"), Probe()])
    assert seen == list(f32([0.1] * 4 + [0.01] * 2))


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_resume_with_initial_epoch(unit):
    x, y = data()
    schedule = S.Warmup(S.ExponentialDecay(0.1, 0.2), warmup_steps=3, start_learning_rate=0.02)
    full = linear_model()
    h_full = full.fit(x, y, epochs=6, batch_size=8, shuffle=False, verbose=0,
                      callbacks=[ScheduleCallback(schedule, unit=unit)])
    part = linear_model()
    h1 = part.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[ScheduleCallback(schedule, unit=unit)])
    h2 = part.fit(x, y, epochs=6, initial_epoch=3, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[ScheduleCallback(schedule, unit=unit)])
    assert h1.history["learning_rate"] + h2.history["learning_rate"] == h_full.history["learning_rate"]
    t = np.arange(6) if unit == "epoch" else np.arange(1, 12, 2)
    np.testing.assert_allclose(h_full.history["learning_rate"], ops.convert_to_numpy(schedule(t)), rtol=1e-6)
    for a, b in zip(weights(part), weights(full)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


class Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_resume_with_backup_and_restore(unit, tmp_path):
    x, y = data()
    schedule = S.CyclicCosine(0.1, total_steps=10, n_cycles=3, min_learning_rate=0.005)
    full = linear_model()
    h_full = full.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                      callbacks=[ScheduleCallback(schedule, unit=unit)])
    model = linear_model()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[backup, ScheduleCallback(schedule, unit=unit), Interrupt(2, 1)])
    # a fresh process would build a new callback; the step count comes from the backup
    h2 = model.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                   callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
                              ScheduleCallback(schedule, unit=unit)])
    assert len(h2.history["learning_rate"]) == 3  # epochs 2, 3, 4
    assert h2.history["learning_rate"] == h_full.history["learning_rate"][2:]
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 10
    for a, b in zip(weights(model), weights(full)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


class ConstantMetric(keras.callbacks.Callback):
    """Puts a metric that never improves into the logs: a plateau every epoch."""

    def on_epoch_end(self, epoch, logs=None):
        logs["plateau"] = 1.0


def test_reduce_lr_on_plateau_multiplies_the_scheduled_rate():
    x, y = data()
    schedule = S.InverseTimeDecay(0.1, 0.5)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="plateau", factor=0.5, patience=1, min_delta=0.0, mode="min")
    model = linear_model()
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0,
                        callbacks=[ScheduleCallback(schedule), ConstantMetric(), plateau])
    # cut by 0.5 at the end of epochs 1, 2, 3: scale 1, 1, 0.5, 0.25, 0.125
    scale = np.array([1, 1, 0.5, 0.25, 0.125])
    expected = scale * 0.1 / (1 + 0.5 * np.arange(5))
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-6)
    # the last cut (end of epoch 4) is in the optimizer; a resumed run keeps it
    h2 = model.fit(x, y, epochs=7, initial_epoch=5, batch_size=8, verbose=0,
                   callbacks=[ScheduleCallback(schedule)])
    np.testing.assert_allclose(h2.history["learning_rate"], 0.0625 * 0.1 / (1 + 0.5 * np.arange(5, 7)), rtol=1e-6)


def test_reduce_lr_on_plateau_with_step_unit():
    x, y = data()
    schedule = S.ExponentialDecay(0.1, 0.1)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="plateau", factor=0.1, patience=1, min_delta=0.0, mode="min")
    model = linear_model()
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0,
                        callbacks=[ScheduleCallback(schedule, unit="step"), ConstantMetric(), plateau])
    scale = np.array([1, 1, 0.1])
    np.testing.assert_allclose(history.history["learning_rate"], scale * 0.1 * np.exp(-0.1 * np.array([1, 3, 5])), rtol=1e-6)


def test_error_when_optimizer_has_a_schedule():
    x, y = data(n=4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=S.StepDecay(0.1)), loss="mse")
    with pytest.raises(ValueError, match="created with a schedule object") as info:
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ScheduleCallback(S.StepDecay(0.1))])
    assert "float learning rate" in str(info.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"Invalid value received for argument `unit`.*Received: unit='batch'"):
        ScheduleCallback(S.StepDecay(0.1), unit="batch")
    with pytest.raises(ValueError, match=r"Invalid value received for argument `schedule`.*Received: schedule=0.1"):
        ScheduleCallback(0.1)


class _Negative(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        return -0.1 * ops.ones_like(ops.cast(step, "float32"))


@pytest.mark.parametrize(
    "schedule, unit, t, shown",
    [
        (lambda t: 0.1 if t < 2 else -1.0, "epoch", 2, "-1.0"),
        (lambda t: 0.1 if t < 5 else float("nan"), "step", 5, "nan"),
        (lambda t: "0.1", "epoch", 0, "'0.1'"),
        (lambda t: None, "step", 0, "None"),
        (_Negative(), "step", 0, "-0.1"),
    ],
)
def test_invalid_rate_refused_before_training_on_it(schedule, unit, t, shown):
    x, y = data(n=16)
    model = linear_model()
    steps = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(float(ops.convert_to_numpy(
                self.model.optimizer.learning_rate)))

    with pytest.raises(ValueError) as info:
        model.fit(x, y, epochs=4, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[ScheduleCallback(schedule, unit=unit), Count()])
    message = str(info.value)
    assert f"for {unit} {t}." in message
    assert f"Received: schedule({t})={shown}" in message
    # No step trained with it: the error came before (at the epoch start).
    assert all(np.isfinite(r) and r > 0 for r in steps)
    assert len(steps) == (4 * t if unit == "epoch" else 4 * (t // 4))


@pytest.mark.parametrize("verbose", ["loud", -1, 0.5, None])
def test_bad_verbose(verbose):
    with pytest.raises(ValueError, match="argument `verbose`"):
        ScheduleCallback(S.StepDecay(0.1), verbose=verbose)


# ------------------------------------------- issue 13: rates set in the step


class _Weights(keras.callbacks.Callback):
    """Weights before and after every batch."""

    def __init__(self):
        super().__init__()
        self.before, self.after = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.before.append(self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        self.after.append(self.model.get_weights())


def applied_rates(x, y, recorder, batch_size):
    """The rate each step trained with, from its update.

    Linear model, MSE, plain SGD: `w' - w = -lr * g` with
    `g = (2/B X^T e, 2 mean(e))`, `e = X w + b - y` on the step's batch
    (`shuffle=False`), so `lr = -(dw . g) / (g . g)`.
    """
    n = len(x) // batch_size
    rates = []
    for t, (before, after) in enumerate(zip(recorder.before, recorder.after)):
        if not before:  # an unbuilt model (tensorflow) before its first step
            rates.append(np.nan)
            continue
        i = t % n
        xb = x[i * batch_size : (i + 1) * batch_size].astype("float64")
        yb = y[i * batch_size : (i + 1) * batch_size].astype("float64")
        w, b = before[0].astype("float64"), before[1].astype("float64")
        err = xb @ w + b - yb
        g = np.concatenate([(2.0 / len(xb) * xb.T @ err).ravel(),
                            (2.0 * err.mean(axis=0)).ravel()])
        step = np.concatenate([(after[0] - before[0]).ravel(),
                               (after[1] - before[1]).ravel()])
        rates.append(-(step @ g) / (g @ g))
    return np.array(rates)


def _python_schedule(t):
    # Not traceable (python math, branches): evaluated in numpy per epoch.
    return 0.02 + 0.08 * math.cos(t / 3.0) ** 2 if t % 5 else 0.15


@pytest.mark.parametrize("kind", ["kerasreg", "python"])
def test_step_rates_applied_per_step_equal_the_schedule(kind):
    x, y = data(n=16)
    if kind == "kerasreg":
        schedule = S.ExponentialDecay(0.1, 0.15)
        reference = 0.1 * np.exp(-0.15 * np.arange(12))
    else:
        schedule = _python_schedule
        reference = np.array([_python_schedule(t) for t in range(12)])
    model = linear_model()
    lr_variable = model.optimizer.learning_rate
    n_variables = len(model.optimizer.variables)
    recorder = _Weights()
    model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0,
              callbacks=[ScheduleCallback(schedule, unit="step"), recorder])
    np.testing.assert_allclose(applied_rates(x, y, recorder, 4), reference,
                               rtol=1e-3)
    # The optimizer keeps its own rate variable, holding the last step's
    # rate, and nothing of the callback.
    assert model.optimizer.learning_rate is lr_variable
    assert float(ops.convert_to_numpy(lr_variable)) == pytest.approx(
        reference[-1], rel=1e-6)
    assert len(model.optimizer.variables) == n_variables


def test_step_rates_after_plateau_cuts_and_resume_with_initial_epoch():
    x, y = data(n=16)
    schedule = S.ExponentialDecay(0.1, 0.1)
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="plateau", factor=0.5, patience=1, min_delta=0.0, mode="min")
    model = linear_model()
    recorder = _Weights()
    model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0,
              callbacks=[ScheduleCallback(schedule, unit="step"),
                         ConstantMetric(), plateau, recorder])
    # Cuts at the ends of epochs 1 and 2: scale 1, 1, 0.5 during the fit;
    # the last cut (0.25) is in the optimizer.
    scale = np.repeat([1.0, 1.0, 0.5], 4)
    t = np.arange(12)
    np.testing.assert_allclose(applied_rates(x, y, recorder, 4),
                               scale * 0.1 * np.exp(-0.1 * t), rtol=1e-3)
    # A new callback resumes with the cut and the step count.
    recorder = _Weights()
    history = model.fit(x, y, epochs=5, initial_epoch=3, batch_size=4,
                        shuffle=False, verbose=0,
                        callbacks=[ScheduleCallback(schedule, unit="step"),
                                   recorder])
    t = np.arange(12, 20)
    expected = 0.25 * 0.1 * np.exp(-0.1 * t)
    np.testing.assert_allclose(applied_rates(x, y, recorder, 4), expected,
                               rtol=1e-3)
    np.testing.assert_allclose(history.history["learning_rate"],
                               expected[[3, 7]], rtol=1e-6)


def test_step_rates_on_unbuilt_sequential():
    x, y = data(n=16)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    assert not model.built
    recorder = _Weights()
    schedule = S.CyclicCosine(0.1, total_steps=8, n_cycles=2,
                              min_learning_rate=0.01)
    history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False,
                        verbose=0,
                        callbacks=[ScheduleCallback(schedule, unit="step"),
                                   recorder])
    reference = 0.01 + 0.09 / 2 * (np.cos(np.pi * (np.arange(8) % 4) / 4) + 1)
    rates = applied_rates(x, y, recorder, 4)
    known = ~np.isnan(rates)
    assert known[1:].all()
    np.testing.assert_allclose(rates[known], reference[known], rtol=1e-3)
    np.testing.assert_allclose(history.history["learning_rate"],
                               reference[[3, 7]], rtol=1e-6)
    assert len(model.optimizer.variables) == 2


def test_step_rates_with_steps_per_execution():
    # The batch hooks run once per execution of 2 steps; each step still
    # trains with its own rate.
    x, y = data(n=16)
    model = linear_model()
    model.compile(keras.optimizers.SGD(learning_rate=0.1), loss="mse",
                  steps_per_execution=2)
    w0, b0 = [w.astype("float64") for w in weights(model)]
    rates = 0.1 * np.exp(-0.3 * np.arange(8))
    model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
              callbacks=[ScheduleCallback(S.ExponentialDecay(0.1, 0.3),
                                          unit="step")])

    def sgd(rates):
        w, b = w0.copy(), b0.copy()
        for t, lr in enumerate(rates):
            i = t % 4
            xb = x[4 * i : 4 * i + 4].astype("float64")
            err = xb @ w + b - y[4 * i : 4 * i + 4]
            w = w - lr * 2 * xb.T @ err / 4
            b = b - lr * 2 * err.mean(axis=0)
        return w, b

    w, b = sgd(rates)
    np.testing.assert_allclose(weights(model)[0], w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(weights(model)[1], b, rtol=1e-4, atol=1e-6)
    w_wrong, _ = sgd(np.repeat(rates[::2], 2))  # one rate per execution
    assert not np.allclose(w, w_wrong, rtol=1e-3)


def test_step_rates_past_the_table_and_unknown_epoch_length(monkeypatch):
    # A table of 3 rates: an epoch of 4 steps refills it mid-epoch (on jax,
    # through a state sync); a generator of unknown length too.
    from kerasreg.callbacks import schedule as schedule_module

    monkeypatch.setattr(schedule_module, "_TABLE", 3)
    x, y = data(n=16)
    schedule = S.ExponentialDecay(0.1, 0.2)
    reference = 0.1 * np.exp(-0.2 * np.arange(8))

    model = linear_model()
    recorder = _Weights()
    history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False,
                        verbose=0,
                        callbacks=[ScheduleCallback(schedule, unit="step"),
                                   recorder])
    np.testing.assert_allclose(applied_rates(x, y, recorder, 4), reference,
                               rtol=1e-3)
    np.testing.assert_allclose(history.history["learning_rate"],
                               reference[[3, 7]], rtol=1e-6)

    def batches():
        for i in range(4):
            yield x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4]

    model = linear_model()
    recorder = _Weights()
    model.fit(batches(), epochs=1, verbose=0,
              callbacks=[ScheduleCallback(schedule, unit="step"), recorder])
    np.testing.assert_allclose(applied_rates(x, y, recorder, 4),
                               reference[:4], rtol=1e-3)


def test_interrupted_step_fit_leaves_a_clean_optimizer(tmp_path):
    x, y = data(n=16)
    model = linear_model()
    lr_variable = model.optimizer.learning_rate
    n_variables = len(model.optimizer.variables)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[ScheduleCallback(S.ExponentialDecay(0.1, 0.3),
                                              unit="step"),
                             Interrupt(1, 1)])
    model.save(str(tmp_path / "m.keras"))  # closes the interrupted fit
    assert len(model.optimizer.variables) == n_variables
    assert model.optimizer.learning_rate is lr_variable
    # The rate of the last step that ran (step 5).
    assert float(ops.convert_to_numpy(lr_variable)) == pytest.approx(
        0.1 * np.exp(-0.3 * 5), rel=1e-6)
    loaded = keras.saving.load_model(str(tmp_path / "m.keras"))
    assert len(loaded.optimizer.variables) == n_variables
    # A plain fit afterwards trains with the optimizer's rate, unchanged.
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert float(ops.convert_to_numpy(lr_variable)) == pytest.approx(
        0.1 * np.exp(-0.3 * 5), rel=1e-6)


def test_no_private_jax_state_access():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "kerasreg"
    pattern = re.compile(r"_jax_state\b|_jax_state_synced|\._value\b")
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


def test_step_rates_with_weight_ema_on_the_same_step():
    # Both wrap the one compiled train step (the in-step seam).
    from kerasreg import WeightEMA

    x, y = data(n=16)
    model = linear_model()
    initial = [w.astype("float64") for w in weights(model)]
    recorder = _Weights()
    ema = WeightEMA(decay=0.5)
    model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
              callbacks=[ScheduleCallback(S.ExponentialDecay(0.1, 0.2),
                                          unit="step"), ema, recorder])
    np.testing.assert_allclose(applied_rates(x, y, recorder, 4),
                               0.1 * np.exp(-0.2 * np.arange(8)), rtol=1e-3)
    shadows = initial
    for after in recorder.after:
        shadows = [0.5 * s + 0.5 * w for s, w in zip(shadows, after)]
    for got, want in zip(ema.shadow_weights(), shadows):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert len(model.optimizer.variables) == 2
