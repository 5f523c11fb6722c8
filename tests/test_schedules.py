"""kerasreg.schedules: values against numpy, jit, serialization, bad input, plot."""

import math
import sys

import keras
import numpy as np
import pytest
from keras import ops

import kerasreg
from kerasreg import schedules as S


# numpy references, written from the lecture notes' formulas (float64)
def np_step(t, lr0, f, every):
    return lr0 * f ** np.floor(np.asarray(t) / every)


def np_exp(t, lr0, k):
    return lr0 * np.exp(-k * np.asarray(t, dtype="float64"))


def np_inv(t, lr0, k):
    return lr0 / (1 + k * np.asarray(t, dtype="float64"))


def np_cos(t, lr0, total, n, lo=0.0):
    c = math.ceil(total / n)
    t = np.asarray(t, dtype="float64")
    return lo + (lr0 - lo) / 2 * (np.cos(np.pi * (t % c) / c) + 1)


def np_warmup(t, inner, w, start=0.0):
    t = np.asarray(t, dtype="float64")
    target = inner(0.0)
    ramp = start + (target - start) * t / max(w, 1)
    return np.where(t < w, ramp, inner(np.maximum(t - w, 0)))


CASES = [
    ("step", lambda: S.StepDecay(0.1, 0.5, 5), lambda t: np_step(t, 0.1, 0.5, 5)),
    ("step01", lambda: S.StepDecay(0.3, 0.1, 20), lambda t: np_step(t, 0.3, 0.1, 20)),
    ("exp", lambda: S.ExponentialDecay(0.1, 0.05), lambda t: np_exp(t, 0.1, 0.05)),
    ("inv", lambda: S.InverseTimeDecay(0.2, 0.3), lambda t: np_inv(t, 0.2, 0.3)),
    (
        "cos",
        lambda: S.CyclicCosine(0.1, 10, 3, min_learning_rate=0.01),
        lambda t: np_cos(t, 0.1, 10, 3, 0.01),
    ),
    ("cos100", lambda: S.CyclicCosine(0.05, 100, 4), lambda t: np_cos(t, 0.05, 100, 4)),
    (
        "warmup",
        lambda: S.Warmup(S.InverseTimeDecay(0.2, 0.3), 7, start_learning_rate=0.01),
        lambda t: np_warmup(t, lambda s: np_inv(s, 0.2, 0.3), 7, 0.01),
    ),
    ("warmup_const", lambda: S.Warmup(0.1, 4), lambda t: np_warmup(t, lambda s: 0.1 + 0 * np.asarray(s), 4)),
    ("warmup0", lambda: S.Warmup(S.ExponentialDecay(0.1, 0.05), 0), lambda t: np_exp(t, 0.1, 0.05)),
]
IDS = [c[0] for c in CASES]
T = np.arange(0, 61)


@pytest.mark.parametrize("name,make,ref", CASES, ids=IDS)
def test_values_python_int_numpy_and_tensor(name, make, ref):
    schedule = make()
    expected = ref(T)
    from_ints = np.array([float(ops.convert_to_numpy(schedule(int(t)))) for t in T])
    from_numpy = ops.convert_to_numpy(schedule(T))
    from_tensor = ops.convert_to_numpy(schedule(ops.convert_to_tensor(T, "int32")))
    from_numpy_int = float(ops.convert_to_numpy(schedule(np.int64(13))))
    np.testing.assert_allclose(from_ints, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(from_numpy, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(from_tensor, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(from_numpy_int, ref(13), rtol=1e-6)


def test_hand_made_values():
    # the notes' recipes: halve every 5 epochs; 0.1 every 20
    assert [round(float(S.StepDecay(0.1, 0.5, 5)(t)), 6) for t in (0, 4, 5, 9, 10)] == [
        0.1, 0.1, 0.05, 0.05, 0.025
    ]
    assert float(S.StepDecay(1.0, 0.1, 20)(40)) == pytest.approx(0.01)
    assert float(S.InverseTimeDecay(0.1, 1.0)(3)) == pytest.approx(0.025)
    # cyclic cosine: total 10, 3 cycles -> c = 4; restarts at 0, 4, 8
    c = S.CyclicCosine(1.0, 10, 3)
    values = [float(c(t)) for t in range(10)]
    assert values[0] == values[4] == values[8] == pytest.approx(1.0)
    assert values[2] == pytest.approx(0.5)  # cos(pi/2) = 0
    assert values[3] == pytest.approx((math.cos(3 * math.pi / 4) + 1) / 2)
    # warmup: linear from start to schedule(0), reached at t = warmup_steps
    w = S.Warmup(S.StepDecay(0.1, 0.5, 5), 10)
    assert [round(float(w(t)), 6) for t in (0, 5, 10, 15)] == [0.0, 0.05, 0.1, 0.05]


def test_cycle_length_and_is_cycle_end():
    c = S.CyclicCosine(0.1, 10, 3)
    assert c.cycle_length == 4
    ends = [t for t in range(10) if c.is_cycle_end(t)]
    assert ends == [3, 7, 9]  # 9: the last, partial cycle (t + 1 == total_steps)
    assert c.cycle_end_steps == (3, 7, 9)
    assert isinstance(c.is_cycle_end(3), bool)
    assert c.is_cycle_end(np.int64(7)) is True
    np.testing.assert_array_equal(
        c.is_cycle_end(np.arange(10)), [t in (3, 7, 9) for t in range(10)]
    )
    tensor = ops.convert_to_numpy(c.is_cycle_end(ops.convert_to_tensor(np.arange(10))))
    np.testing.assert_array_equal(tensor, [t in (3, 7, 9) for t in range(10)])
    # exact multiple: no extra end; the rate is lowest at each cycle end
    c = S.CyclicCosine(0.1, 100, 4)
    assert c.cycle_length == 25 and c.cycle_end_steps == (24, 49, 74, 99)
    rates = ops.convert_to_numpy(c(np.arange(100)))
    for end in c.cycle_end_steps:
        start = end - 24
        assert rates[end] == rates[start : end + 1].min()
        assert rates[start] == pytest.approx(0.1)
    # ceil rounding can give fewer cycles than asked (documented)
    c = S.CyclicCosine(0.1, 10, 6)
    assert c.cycle_length == 2 and c.cycle_end_steps == (1, 3, 5, 7, 9)
    # one cycle per step
    c = S.CyclicCosine(0.1, 5, 5)
    assert c.cycle_end_steps == (0, 1, 2, 3, 4)
    assert float(c(3)) == pytest.approx(0.1)


def test_cyclic_cosine_numpy_steps_equal_the_tensor_path():
    # Integer numpy steps read one cached cycle of rates: bit-equal to the
    # formula on tensors, past the first cycle, for negative steps, and
    # recomputed when a hyperparameter changes.
    c = S.CyclicCosine(0.1, 1000, 3, min_learning_rate=0.002)
    t = np.array([-5, -1, 0, 1, 333, 334, 999, 1000, 123457], dtype="int64")
    tensor = ops.convert_to_numpy(c(ops.convert_to_tensor(t, "int32")))
    np.testing.assert_array_equal(c(t), tensor)
    assert float(c(np.int32(7))) == float(c(np.array([7]))[0])
    c.initial_learning_rate = 0.2
    np.testing.assert_array_equal(
        c(t), ops.convert_to_numpy(c(ops.convert_to_tensor(t, "int32")))
    )
    # A cycle too long to cache (10**9 steps) is computed, not tabulated.
    c = S.CyclicCosine(0.1, 10**9, 1)
    t = np.array([0, 12345, 10**8], dtype="int64")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(c(t)),
        ops.convert_to_numpy(c(ops.convert_to_tensor(t, "int32"))),
    )
    assert c._cycle_rates is None


def _per_step_rates_from_weights(schedule, steps):
    """Trains w <- w - lr(t) * 1 with the schedule inside the compiled step.

    The kernel is reset to 0 before each step, so after step t it is -lr(t).
    """
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(
        keras.optimizers.SGD(learning_rate=schedule),
        loss=lambda y_true, y_pred: ops.mean(y_pred),  # d loss / d w = x = 1
    )
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.model.layers[0].kernel.assign(np.zeros((1, 1)))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(-float(ops.convert_to_numpy(self.model.layers[0].kernel)[0, 0]))

    x = np.ones((steps, 1), "float32")
    model.fit(x, x, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[Probe()])
    return np.array(seen)


@pytest.mark.parametrize("name,make,ref", [CASES[0], CASES[2], CASES[4], CASES[6]], ids=["step", "exp", "cos", "warmup"])
def test_values_inside_compiled_optimizer_step(name, make, ref):
    rates = _per_step_rates_from_weights(make(), 12)
    np.testing.assert_allclose(rates, ref(np.arange(12)), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name,make,ref", CASES, ids=IDS)
def test_config_round_trip(name, make, ref):
    schedule = make()
    config = schedule.get_config()
    clone = type(schedule).from_config(config)
    assert clone.get_config() == config
    np.testing.assert_allclose(ops.convert_to_numpy(clone(T)), ref(T), rtol=1e-6, atol=1e-9)
    generic = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(generic) is type(schedule)


@pytest.mark.parametrize("name,make,ref", CASES[::2] + [CASES[7]], ids=IDS[::2] + [IDS[7]])
def test_keras_file_round_trip(name, make, ref, tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(learning_rate=make()), loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    schedule = loaded.optimizer._learning_rate
    assert type(schedule) is type(make())
    np.testing.assert_allclose(ops.convert_to_numpy(schedule(T)), ref(T), rtol=1e-6, atol=1e-9)
    assert int(loaded.optimizer.iterations) == 1


# Keras' parameterization, from Keras' documented formulas (float64)
def np_keras_exp(t, lr0, steps, rate, staircase=False):
    p = np.asarray(t, dtype="float64") / steps
    return lr0 * rate ** (np.floor(p) if staircase else p)


def np_keras_inv(t, lr0, steps, rate, staircase=False):
    p = np.asarray(t, dtype="float64") / steps
    return lr0 / (1 + rate * (np.floor(p) if staircase else p))


KERAS_FORM = [
    ("exp", S.ExponentialDecay, keras.optimizers.schedules.ExponentialDecay, np_keras_exp),
    ("inv", S.InverseTimeDecay, keras.optimizers.schedules.InverseTimeDecay, np_keras_inv),
]
KERAS_ARGS = [  # (initial_learning_rate, decay_steps, decay_rate, staircase)
    (0.1, 10, 0.5, False),
    (0.1, 10, 0.5, True),
    (0.05, 7, 0.96, True),
    (0.3, 2.5, 1.7, False),  # float decay_steps, a growing rate
    (1e-3, 1000, 0.1, False),
]
T_LONG = np.arange(0, 301)


@pytest.mark.parametrize("kind,ours,theirs,ref", KERAS_FORM, ids=[c[0] for c in KERAS_FORM])
@pytest.mark.parametrize("args", KERAS_ARGS, ids=lambda a: "-".join(map(str, a)))
def test_keras_form_equals_keras_schedule(kind, ours, theirs, ref, args):
    lr0, steps, rate, staircase = args
    keras_schedule = theirs(lr0, steps, rate, staircase=staircase)
    expected = ops.convert_to_numpy(keras_schedule(ops.convert_to_tensor(T_LONG)))
    np.testing.assert_allclose(expected, ref(T_LONG, *args), rtol=1e-5)  # Keras' formula
    by_keyword = ours(lr0, decay_steps=steps, decay_rate=rate, staircase=staircase)
    positional = ours(lr0, steps, rate, staircase)  # Keras' positional order
    mixed = ours(lr0, steps, decay_rate=rate, staircase=staircase)
    for schedule in (by_keyword, positional, mixed):
        assert schedule.k is None and schedule.decay_steps == steps
        values = ops.convert_to_numpy(schedule(ops.convert_to_tensor(T_LONG)))
        np.testing.assert_allclose(values, expected, rtol=1e-6, atol=0)
        for t in (0, 1, 9, 10, 11, 150, 300):
            assert float(schedule(t)) == pytest.approx(float(keras_schedule(t)), rel=1e-6)


@pytest.mark.parametrize("kind,ours,theirs,ref", KERAS_FORM, ids=[c[0] for c in KERAS_FORM])
def test_keras_form_config_round_trips_both_ways(kind, ours, theirs, ref, tmp_path):
    schedule = ours(0.1, decay_steps=10, decay_rate=0.5, staircase=True, name="d")
    keras_schedule = theirs(0.1, decay_steps=10, decay_rate=0.5, staircase=True, name="d")
    config = schedule.get_config()
    assert config == keras_schedule.get_config()  # Keras' keys and values
    for clone in (
        ours.from_config(config),
        ours.from_config(keras_schedule.get_config()),
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule)),
    ):
        assert type(clone) is ours and clone.get_config() == config
        np.testing.assert_allclose(
            ops.convert_to_numpy(clone(T)), ref(T, 0.1, 10, 0.5, True), rtol=1e-6
        )
    back = theirs.from_config(config)  # and ours loads into Keras' class
    np.testing.assert_allclose(
        ops.convert_to_numpy(back(T)), ops.convert_to_numpy(schedule(T)), rtol=1e-6
    )
    # k form: its own keys, unchanged
    k_form = ours(0.1, k=0.05, name="k")
    assert k_form.get_config() == {"initial_learning_rate": 0.1, "k": 0.05, "name": "k"}
    assert ours.from_config(k_form.get_config()).get_config() == k_form.get_config()
    # inside an optimizer, through a .keras file
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras").optimizer._learning_rate
    assert type(loaded) is ours and loaded.get_config() == config


def test_keras_form_inside_compiled_optimizer_step():
    schedule = S.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5, staircase=True)
    rates = _per_step_rates_from_weights(schedule, 8)
    # the optimizer's step counter is t = 0, 1, ... for the update it makes
    np.testing.assert_allclose(rates, np_keras_exp(np.arange(8), 0.1, 3, 0.5, True), rtol=1e-6)


def test_notes_form_positional_and_agreement_with_keras_form():
    # The notes' positional form of earlier releases keeps its meaning.
    for schedule in (S.ExponentialDecay(0.1, 0.05), S.ExponentialDecay(0.1, 0.05, "e")):
        assert schedule.k == 0.05 and schedule.decay_steps is None
        np.testing.assert_allclose(ops.convert_to_numpy(schedule(T)), np_exp(T, 0.1, 0.05), rtol=1e-6)
    assert S.ExponentialDecay(0.1, 0.05, "e").name == "e"
    assert S.InverseTimeDecay(0.1, 0.5).k == 0.5
    # The two forms agree for k = -log(rate) / steps and k = rate / steps.
    exp_k = S.ExponentialDecay(0.1, k=-math.log(0.5) / 10)
    exp_keras = S.ExponentialDecay(0.1, 10, 0.5)
    np.testing.assert_allclose(ops.convert_to_numpy(exp_k(T)), ops.convert_to_numpy(exp_keras(T)), rtol=1e-5)
    inv_k = S.InverseTimeDecay(0.1, k=0.5 / 10)
    inv_keras = S.InverseTimeDecay(0.1, 10, 0.5)
    np.testing.assert_allclose(ops.convert_to_numpy(inv_k(T)), ops.convert_to_numpy(inv_keras(T)), rtol=1e-6)


@pytest.mark.parametrize("cls", [S.ExponentialDecay, S.InverseTimeDecay])
@pytest.mark.parametrize(
    "kwargs,received",
    [
        ({"k": 0.1, "decay_rate": 0.5}, "k=0.1, decay_rate=0.5"),
        ({"k": 0.1, "decay_steps": 10, "decay_rate": 0.5}, "k=0.1, decay_steps=10, decay_rate=0.5"),
        ({"k": 0.1, "staircase": True}, "k=0.1, staircase=True"),
    ],
)
def test_k_with_keras_arguments_is_a_value_error(cls, kwargs, received):
    with pytest.raises(ValueError, match=r"`k` .*cannot be combined with") as info:
        cls(0.1, **kwargs)
    assert str(info.value).endswith(f"Received: {received}")


@pytest.mark.parametrize("cls", [S.ExponentialDecay, S.InverseTimeDecay])
def test_missing_or_surplus_decay_arguments_are_type_errors(cls):
    with pytest.raises(TypeError, match=r"either `k` .* or `decay_steps` and `decay_rate`"):
        cls(0.1)
    with pytest.raises(TypeError, match=r"missing argument `decay_rate`"):
        cls(0.1, decay_steps=10)
    with pytest.raises(TypeError, match=r"missing argument `decay_steps`"):
        cls(0.1, decay_rate=0.5)
    with pytest.raises(TypeError, match=r"multiple values for argument `decay_steps`"):
        cls(0.1, 10, 0.5, decay_steps=10)
    with pytest.raises(TypeError, match=r"at most 5 positional arguments"):
        cls(0.1, 10, 0.5, False, "n", "extra")


def test_top_level_exports():
    assert kerasreg.StepDecay is S.StepDecay
    assert kerasreg.CyclicCosine is S.CyclicCosine
    assert kerasreg.Warmup is S.Warmup
    assert kerasreg.ScheduleCallback is kerasreg.callbacks.ScheduleCallback
    for name in ("StepDecay", "ExponentialDecay", "InverseTimeDecay", "CyclicCosine", "Warmup"):
        assert name in kerasreg.__all__ and name in S.__all__


BAD = [
    (lambda: S.StepDecay(0.0), "initial_learning_rate", "initial_learning_rate=0.0"),
    (lambda: S.StepDecay(-1.0), "initial_learning_rate", "initial_learning_rate=-1.0"),
    (lambda: S.StepDecay(0.1, drop_factor=0.0), "drop_factor", "drop_factor=0.0"),
    (lambda: S.StepDecay(0.1, drop_factor=1.5), "drop_factor", "drop_factor=1.5"),
    (lambda: S.StepDecay(0.1, drop_every=0), "drop_every", "drop_every=0"),
    (lambda: S.StepDecay(0.1, drop_every=2.5), "drop_every", "drop_every=2.5"),
    (lambda: S.ExponentialDecay(0.1, k=-0.1), "k", "k=-0.1"),
    (lambda: S.ExponentialDecay(-0.1, k=0.1), "initial_learning_rate", "initial_learning_rate=-0.1"),
    (lambda: S.InverseTimeDecay(0.1, k=-1), "k", "k=-1"),
    (lambda: S.ExponentialDecay(0.1, 10, -0.5), "decay_rate", "decay_rate=-0.5"),
    (lambda: S.InverseTimeDecay(0.1, 10, decay_rate="fast"), "decay_rate", "decay_rate='fast'"),
    (lambda: S.ExponentialDecay(0.1, 10, 0.5, "yes"), "staircase", "staircase='yes'"),
    (lambda: S.InverseTimeDecay(-1.0, 10, 0.5), "initial_learning_rate", "initial_learning_rate=-1.0"),
    (lambda: S.CyclicCosine(0.1, 10, 0), "n_cycles", "n_cycles=0"),
    (lambda: S.CyclicCosine(0.1, 10, 11), "n_cycles", "n_cycles=11"),
    (lambda: S.CyclicCosine(0.1, 0, 1), "total_steps", "total_steps=0"),
    (lambda: S.CyclicCosine(0.1, 10, 2, min_learning_rate=0.1), "min_learning_rate", "min_learning_rate=0.1"),
    (lambda: S.CyclicCosine(0.1, 10, 2, min_learning_rate=-0.01), "min_learning_rate", "min_learning_rate=-0.01"),
    (lambda: S.Warmup(S.StepDecay(0.1), -1), "warmup_steps", "warmup_steps=-1"),
    (lambda: S.Warmup("fast", 3), "schedule", "schedule='fast'"),
    (lambda: S.Warmup(0.1, 3, start_learning_rate=-1.0), "start_learning_rate", "start_learning_rate=-1.0"),
]


@pytest.mark.parametrize("cls", [S.ExponentialDecay, S.InverseTimeDecay])
@pytest.mark.parametrize("decay_steps", [0, -10, None, "10"])
def test_bad_decay_steps_uses_keras_wording(cls, decay_steps):
    with pytest.raises((ValueError, TypeError)) as info:
        cls(0.1, decay_steps=decay_steps, decay_rate=0.5)
    if decay_steps is not None:  # None: missing (TypeError, tested above)
        assert info.type is ValueError
        assert str(info.value) == (
            f"Argument `decay_steps` must be > 0. Received: decay_steps={decay_steps!r}"
        )


@pytest.mark.parametrize("make,arg,received", BAD)
def test_bad_arguments(make, arg, received):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert f"Invalid value received for argument `{arg}`" in message
    assert f"Received: {received}" in message


def test_plot_overlays_and_saves_png(tmp_path):
    path = tmp_path / "schedules.png"
    fig = S.plot(
        [S.StepDecay(0.1, 0.5, 10, name="step"), S.CyclicCosine(0.1, 60, 3), lambda t: 0.1 / (1 + t)],
        steps=60,
        path=path,
        log_y=True,
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["step", "CyclicCosine", "<lambda>"]
    np.testing.assert_allclose(lines[0].get_ydata(), np_step(np.arange(60), 0.1, 0.5, 10), rtol=1e-6)
    np.testing.assert_allclose(lines[2].get_ydata(), 0.1 / (1 + np.arange(60)), rtol=1e-6)
    assert ax.get_yscale() == "log"
    assert len(ax.get_legend().get_texts()) == 3
    single = S.plot(S.ExponentialDecay(0.1, 0.1), steps=5)
    np.testing.assert_allclose(single.axes[0].get_lines()[0].get_ydata(), np_exp(np.arange(5), 0.1, 0.1), rtol=1e-6)


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"kerasreg\[plot\]"):
        S.plot(S.StepDecay(0.1), steps=5)
