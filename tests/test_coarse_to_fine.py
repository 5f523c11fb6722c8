import math

import keras
import keras_tuner
import numpy as np
import pytest

import kerasreg
from kerasreg.callbacks import StopOnDivergence
from kerasreg.tuning import CoarseToFine
from kerasreg.tuning import CoarseToFineOracle
from kerasreg.tuning import beta
from kerasreg.tuning import log_uniform

LR_OPT, WD_OPT = -2.0, -5.0  # known optimum, in log10


def declare(hp):
    log_uniform(hp, "learning_rate", 1e-6, 10.0)
    log_uniform(hp, "weight_decay", 1e-8, 1e-2)
    hp.Int("units", 8, 64, step=8)
    hp.Choice("activation", ["relu", "tanh", "sigmoid"])
    beta(hp, "beta_1")


def toy_score(values, epochs):
    """Known optimum at lr=1e-2, wd=1e-5, relu; longer training helps."""
    s = (math.log10(values["learning_rate"]) - LR_OPT) ** 2
    s += 0.3 * (math.log10(values["weight_decay"]) - WD_OPT) ** 2
    s += {"relu": 0.0, "tanh": 0.5, "sigmoid": 2.0}[values["activation"]]
    return -s - 1.0 / epochs


class ToyCoarseToFine(CoarseToFine):
    """CoarseToFine with a closed-form objective in place of `fit`."""

    def __init__(self, *args, fail_at=None, **kwargs):
        self.calls = []  # (trial_id, epochs) per run
        self.fail_at = fail_at
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise keras_tuner.errors.FatalError("simulated interruption")
        self.calls.append((trial.trial_id, values["tuner/epochs"]))
        return {"score": toy_score(values, values["tuner/epochs"])}


def make_tuner(tmp_path, stages=((20, 1), (10, 2), (6, 4)), **kwargs):
    kwargs.setdefault("overwrite", True)
    return ToyCoarseToFine(
        lambda hp: declare(hp),
        keras_tuner.Objective("score", "max"),
        stages=stages,
        top_k=4,
        margin=0.25,
        seed=7,
        directory=str(tmp_path),
        project_name="toy",
        **kwargs,
    )


def trials_of(tuner, stage):
    return [
        t
        for t in tuner.oracle.trials.values()
        if t.hyperparameters.values["tuner/stage"] == stage
    ]


def expected_range(top_values, margin, lo0, hi0, log):
    """Hand computation of the narrowed range (lecture: narrow, widen, clip)."""
    f = np.log10 if log else np.asarray
    v = f(np.asarray(top_values, dtype=float))
    lo, hi = v.min(), v.max()
    span = hi - lo
    lo, hi = max(lo - margin * span, f(lo0)), min(hi + margin * span, f(hi0))
    return (10**lo, 10**hi) if log else (lo, hi)


def test_stages_shrink_around_the_top_k(tmp_path):
    tuner = make_tuner(tmp_path)
    tuner.search(verbose=0)
    stages = tuner.stages
    # Every trial ran once, with its stage's epochs.
    assert len(tuner.calls) == sum(n for n, _ in stages)
    assert [e for _, e in tuner.calls] == [1] * 20 + [2] * 10 + [4] * 6
    ranges = tuner.stage_ranges
    assert len(ranges) == 3
    original = ranges[0]
    assert original["learning_rate"] == {"min_value": 1e-6, "max_value": 10.0}
    for stage in range(2):
        done = sorted(trials_of(tuner, stage), key=lambda t: -t.score)[:4]
        nxt = ranges[stage + 1]
        for name, log in [
            ("learning_rate", True),
            ("weight_decay", True),
            ("one_minus_beta_1", True),
            ("units", False),
        ]:
            top = [t.hyperparameters.values[name] for t in done]
            lo, hi = nxt[name]["min_value"], nxt[name]["max_value"]
            # Inside the original range, contains the top-k, shrinks.
            assert original[name]["min_value"] <= lo <= min(top)
            assert max(top) <= hi <= original[name]["max_value"]
            prev = ranges[stage][name]
            width = (lambda a, b: math.log10(b / a)) if log else (lambda a, b: b - a)
            if name in ("learning_rate", "weight_decay"):
                # The hyperparameters that matter shrink; an irrelevant one
                # may widen a little (margin, clipped to the original only).
                assert width(lo, hi) < width(prev["min_value"], prev["max_value"])
            if name != "units":
                want = expected_range(
                    top, 0.25, original[name]["min_value"], original[name]["max_value"], log
                )
                assert (lo, hi) == pytest.approx(want, rel=1e-9)
        seen = {t.hyperparameters.values["activation"] for t in done}
        assert set(nxt["activation"]["values"]) == seen
        # Next-stage trials were drawn inside the narrowed ranges.
        for t in trials_of(tuner, stage + 1):
            v = t.hyperparameters.values
            assert nxt["learning_rate"]["min_value"] <= v["learning_rate"]
            assert v["learning_rate"] <= nxt["learning_rate"]["max_value"]
            assert v["activation"] in nxt["activation"]["values"]
            assert v["units"] % 8 == 0
    lr_widths = [
        math.log10(r["learning_rate"]["max_value"] / r["learning_rate"]["min_value"])
        for r in ranges
    ]
    assert lr_widths[2] < lr_widths[0]
    # The tuner's best is the best trial of the final stage, and it beats
    # the median of the first (coarse) stage.
    best = tuner.oracle.get_best_trials(1)[0]
    final = trials_of(tuner, 2)
    assert best.score == max(t.score for t in final)
    assert best.score > np.median([t.score for t in trials_of(tuner, 0)])
    assert tuner.get_best_hyperparameters()[0].values == best.hyperparameters.values
    # Closer to the known optimum than the coarse stage's median distance.
    d = lambda t: abs(math.log10(t.hyperparameters.values["learning_rate"]) - LR_OPT)
    assert d(best) < np.median([d(t) for t in trials_of(tuner, 0)])


def test_resume_continues_in_the_right_stage(tmp_path):
    reference = make_tuner(tmp_path / "ref")
    reference.search(verbose=0)

    # Interrupted during stage 2 (after 24 completed trials).
    first = make_tuner(tmp_path / "run", fail_at=24)
    with pytest.raises(keras_tuner.errors.FatalError):
        first.search(verbose=0)
    assert first.oracle.stage == 1
    completed_before = {tid for tid, _ in first.calls}
    assert len(completed_before) == 24

    resumed = make_tuner(tmp_path / "run", overwrite=False)
    assert resumed.oracle.stage == 1
    assert resumed.stage_ranges == first.stage_ranges
    resumed.search(verbose=0)
    rerun = {tid for tid, _ in resumed.calls}
    # No completed trial ran again; the interrupted one (id 24) did.
    assert not rerun & completed_before
    assert len(rerun) + len(completed_before) == 36
    assert "24" in rerun
    statuses = [t.status for t in resumed.oracle.trials.values()]
    assert statuses == ["COMPLETED"] * 36
    # Same seed, same path: the resumed search equals an uninterrupted one.
    assert resumed.stage_ranges == reference.stage_ranges
    assert (
        resumed.oracle.get_best_trials(1)[0].score
        == reference.oracle.get_best_trials(1)[0].score
    )


def _hp_values(trial):
    return {
        k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")
    }


def test_best_of_each_stage_is_carried_into_the_next(tmp_path):
    tuner = make_tuner(tmp_path)
    tuner.search(verbose=0)
    for stage, epochs in [(1, 2), (2, 4)]:
        previous = trials_of(tuner, stage - 1)
        # Best of the previous stage by the closed-form score, found here
        # independently of the oracle's ranking.
        best = max(previous, key=lambda t: toy_score(t.hyperparameters.values, stage))
        first = min(trials_of(tuner, stage), key=lambda t: int(t.trial_id))
        assert _hp_values(first) == _hp_values(best)
        assert first.hyperparameters.values["tuner/epochs"] == epochs
        assert first.hyperparameters.values["tuner/carried_from"] == best.trial_id
        assert first.trial_id != best.trial_id  # a new trial, trained longer
        # The other trials of the stage are fresh random draws.
        others = [t for t in trials_of(tuner, stage) if t is not first]
        assert all("tuner/carried_from" not in t.hyperparameters.values for t in others)
        assert all(_hp_values(t) != _hp_values(best) for t in others)
    assert not any("tuner/carried_from" in t.hyperparameters.values for t in trials_of(tuner, 0))


def test_resume_when_interrupted_on_the_carried_trial(tmp_path):
    reference = make_tuner(tmp_path / "ref")
    reference.search(verbose=0)
    first = make_tuner(tmp_path / "run", fail_at=20)  # trial 20: the carried one
    with pytest.raises(keras_tuner.errors.FatalError):
        first.search(verbose=0)
    resumed = make_tuner(tmp_path / "run", overwrite=False)
    resumed.search(verbose=0)
    assert not {tid for tid, _ in resumed.calls} & {tid for tid, _ in first.calls}
    assert len(resumed.calls) + len(first.calls) == 36
    for tid, trial in reference.oracle.trials.items():
        again = resumed.oracle.trials[tid]
        assert again.hyperparameters.values == trial.hyperparameters.values
        assert again.status == "COMPLETED"
    # Carried once per later stage, no more.
    carried = [
        t for t in resumed.oracle.trials.values() if "tuner/carried_from" in t.hyperparameters.values
    ]
    assert sorted(int(t.trial_id) for t in carried) == [20, 30]


def test_resume_with_other_stages_is_refused(tmp_path):
    make_tuner(tmp_path, stages=((3, 1), (2, 2))).search(verbose=0)
    with pytest.raises(ValueError, match="argument `stages`"):
        make_tuner(tmp_path, stages=((4, 1), (2, 2)), overwrite=False)


def test_top_level_export_and_subclassing():
    assert kerasreg.CoarseToFine is CoarseToFine
    assert issubclass(CoarseToFine, keras_tuner.Tuner)
    assert issubclass(CoarseToFineOracle, keras_tuner.Oracle)
    assert "CoarseToFine" in kerasreg.__all__


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"stages": ()}, "stages"),
        ({"stages": ((0, 1),)}, "stages"),
        ({"stages": ((3, 0),)}, "stages"),
        ({"stages": ((3, 1.5),)}, "stages"),
        ({"stages": 5}, "stages"),
        ({"top_k": 0}, "top_k"),
        ({"margin": -0.1}, "margin"),
        ({"stop_on_divergence": "yes"}, "stop_on_divergence"),
        ({"seed": "abc"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input(tmp_path, kwargs, arg):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{arg}`"):
        CoarseToFine(declare, "val_loss", directory=str(tmp_path), **kwargs)


def test_seed_message_names_the_value(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"argument `seed`\. Expected an integer >= 0\. Received: seed='abc'",
    ):
        CoarseToFine(declare, "val_loss", seed="abc", directory=str(tmp_path))


def test_max_trials_refused_trials_come_from_stages(tmp_path):
    with pytest.raises(
        TypeError,
        match=r"unexpected keyword argument `max_trials`.*comes from `stages`.*"
        r"Received: max_trials=10",
    ):
        CoarseToFine(declare, "val_loss", max_trials=10, directory=str(tmp_path))


def _regression(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 1.5]) + 0.1 * rng.normal(size=n)).astype("float32")
    return x, y[:, None]


def build_regressor(hp):
    lr = log_uniform(hp, "learning_rate", 1e-3, 30.0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


@pytest.mark.slow
def test_real_search_diverging_trials_fail_and_search_finishes(tmp_path):
    x, y = _regression()
    tuner = CoarseToFine(
        build_regressor,
        "val_loss",
        stages=((7, 2), (2, 3)),
        top_k=2,
        seed=22,  # draws 3 diverging learning rates in a row, then 4 small ones
        directory=str(tmp_path),
        project_name="div",
    )
    tuner.search(x, y, validation_split=0.25, batch_size=8, verbose=0)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    assert len(trials) == 9  # every trial ran
    lrs = np.array([t.hyperparameters.values["learning_rate"] for t in trials])
    failed = np.array([t.status == "FAILED" for t in trials])
    # Plain SGD on mse diverges for lr > 2 / lambda_max(E[x x^T]) (~ 2 here):
    # every such trial was stopped, every small-lr trial completed.
    lam = np.linalg.eigvalsh(x.T @ x / len(x)).max()
    assert np.all(failed[lrs > 2.5 / lam])
    assert not np.any(failed[lrs < 0.5 / lam])
    # At least 3 consecutive divergences: Keras Tuner's default limit of 3
    # consecutive failures did not stop the search.
    runs = "".join("F" if f else "." for f in failed[:7])
    assert "FFF" in runs, runs
    for t in trials:
        if t.status == "FAILED":
            assert t.message.startswith("Diverged: ")
            assert "tuner/diverged" in t.hyperparameters.values
        else:
            assert t.hyperparameters.values["tuner/epochs"] in (2, 3)
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.status == "COMPLETED"
    assert best.hyperparameters.values["tuner/stage"] == 1
    # The best model reloads from its best epoch: its mse on the validation
    # split (Keras takes the last 25%) is the trial's score.
    model = tuner.get_best_models(1)[0]
    xv, yv = x[-24:], y[-24:]
    mse = float(np.mean((model.predict(xv, verbose=0) - yv) ** 2))
    assert mse == pytest.approx(best.score, rel=1e-4)


def test_crashes_still_count_as_failures(tmp_path):
    def broken(hp):
        log_uniform(hp, "learning_rate", 1e-3, 1.0)
        if "tuner/stage" in hp.values:  # inside a trial, not at declaration
            raise keras_tuner.errors.FailedTrialError("bug in the model builder")

    tuner = CoarseToFine(
        broken, "val_loss", stages=((10, 1),), directory=str(tmp_path),
        project_name="broken",
    )
    with pytest.raises(RuntimeError, match="consecutive failures"):
        tuner.search(np.zeros((4, 1)), np.zeros((4, 1)), verbose=0)


def test_seed_zero_is_a_real_seed(tmp_path):
    from kerasreg.tuning.coarse_to_fine import CoarseToFineOracle

    oracle = CoarseToFineOracle("val_loss", stages=((2, 1),), seed=0)
    assert oracle.seed == 0


# --- Keras Tuner's options, as CoarseToFine passes them on -----------------


class BuildingToy(CoarseToFine):
    """Builds the hypermodel on the trial's hyperparameters (as `Tuner`
    does: entries left out of the search get their defaults), then scores
    the values in closed form."""

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        self.hypermodel.build(hp)
        return {"score": toy_score(hp.values, hp.values["tuner/epochs"])}


def _building_toy(tmp_path, **kwargs):
    return BuildingToy(declare, keras_tuner.Objective("score", "max"),
                       stages=((6, 1), (3, 2)), top_k=2, seed=7,
                       directory=str(tmp_path), overwrite=True, **kwargs)


def _lr_space():
    hps = keras_tuner.HyperParameters()
    hps.Float("learning_rate", 1e-3, 1e-1, sampling="log")
    return hps


def test_hyperparameters_override_a_range_and_tune_new_entries(tmp_path):
    # `hyperparameters` replaces the model builder's range of an entry; the
    # other entries are tuned as declared (tune_new_entries=True).
    tuner = _building_toy(tmp_path / "all", hyperparameters=_lr_space())
    tuner.search(verbose=0)
    first = tuner.stage_ranges[0]
    assert first["learning_rate"] == {"min_value": 1e-3, "max_value": 1e-1}
    assert first["weight_decay"] == {"min_value": 1e-8, "max_value": 1e-2}
    assert set(first) == {"learning_rate", "weight_decay", "units",
                          "activation", "one_minus_beta_1"}
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 9
    assert all(1e-3 <= t.hyperparameters.values["learning_rate"] <= 1e-1
               for t in trials)
    assert len({t.hyperparameters.values["weight_decay"] for t in trials}) > 1

    # tune_new_entries=False: only `hyperparameters` is searched; the
    # builder's other entries keep their defaults (min_value for a Float or
    # an Int, the first choice; beta's default is its max_value).
    tuner = _building_toy(tmp_path / "lr", hyperparameters=_lr_space(),
                          tune_new_entries=False)
    tuner.search(verbose=0)
    assert [set(r) for r in tuner.stage_ranges] == [{"learning_rate"}] * 2
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 9
    for t in trials:
        values = t.hyperparameters.values
        assert 1e-3 <= values["learning_rate"] <= 1e-1
        assert values["weight_decay"] == 1e-8
        assert values["units"] == 8 and values["activation"] == "relu"
        assert values["beta_1"] == pytest.approx(0.999)
    assert len({t.hyperparameters.values["learning_rate"] for t in trials}) > 1


def test_allow_new_entries_false_refuses_entries_outside_the_space(tmp_path):
    with pytest.raises(RuntimeError, match="allow_new_entries.*weight_decay"):
        _building_toy(tmp_path / "lr", hyperparameters=_lr_space(),
                      allow_new_entries=False)
    # A space holding every entry the builder declares is accepted.
    complete = _lr_space()
    declare(complete)  # adds the other entries; learning_rate is kept
    tuner = _building_toy(tmp_path / "all", hyperparameters=complete,
                          allow_new_entries=False)
    tuner.search(verbose=0)
    assert tuner.stage_ranges[0]["learning_rate"] == {"min_value": 1e-3,
                                                      "max_value": 1e-1}
    assert len(tuner.oracle.trials) == 9


@pytest.mark.parametrize("argument", ["tune_new_entries", "allow_new_entries"])
def test_restricting_the_space_needs_hyperparameters(tmp_path, argument):
    with pytest.raises(
        ValueError,
        match=rf"Invalid value received for argument `{argument}`\..*"
        rf"`hyperparameters`.*Received: {argument}=False",
    ):
        CoarseToFine(declare, "val_loss", directory=str(tmp_path),
                     **{argument: False})


def test_hyperparameters_must_be_a_space(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `hyperparameters`\. "
        r"Expected a `keras_tuner.HyperParameters`.*Received: "
        r"hyperparameters=\{'learning_rate': 0.01\}",
    ):
        CoarseToFine(declare, "val_loss", directory=str(tmp_path),
                     hyperparameters={"learning_rate": 0.01})


class FlakyToy(ToyCoarseToFine):
    """Raises, for the trials in `failures`, the listed errors in turn."""

    def __init__(self, *args, failures=(), **kwargs):
        self.failures = {tid: list(errors) for tid, errors in dict(failures).items()}
        self.runs = []  # trial ids, once per run
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        self.runs.append(trial.trial_id)
        pending = self.failures.get(trial.trial_id)
        if pending:
            error = pending.pop(0)
            if isinstance(error, str):  # a divergence, as `StopOnDivergence` ends one
                trial.hyperparameters.values["tuner/diverged"] = error
                raise keras_tuner.errors.FailedTrialError("Diverged: " + error)
            raise error
        return super().run_trial(trial, *args, **kwargs)


def _flaky(tmp_path, name, failures, stages=((4, 1),), **kwargs):
    return FlakyToy(
        lambda hp: declare(hp), keras_tuner.Objective("score", "max"),
        stages=stages, seed=7, directory=str(tmp_path), project_name=name,
        overwrite=True, failures=failures, **kwargs)


def _statuses(tuner):
    return [tuner.oracle.trials[tid].status for tid in sorted(tuner.oracle.trials)]


def test_max_retries_per_trial_reruns_crashed_trials(tmp_path, capsys):
    # Trial 1 crashes once (an ordinary exception: Keras Tuner's INVALID,
    # retried); trial 2 raises FailedTrialError (FAILED: never retried).
    failures = {"1": [ValueError("flaky")],
                "2": [keras_tuner.errors.FailedTrialError("broken")]}
    once = _flaky(tmp_path, "once", failures)
    once.search(verbose=0)
    assert once.runs == ["0", "1", "2", "3"]
    assert _statuses(once) == ["COMPLETED", "FAILED", "FAILED", "COMPLETED"]
    assert "flaky" in once.oracle.trials["1"].message

    retried = _flaky(tmp_path, "retried", failures, max_retries_per_trial=1)
    retried.search(verbose=0)
    assert retried.runs == ["0", "1", "1", "2", "3"]
    assert _statuses(retried) == ["COMPLETED", "COMPLETED", "FAILED", "COMPLETED"]
    # The retry ran the trial's own values, in its stage.
    assert (retried.oracle.trials["1"].hyperparameters.values
            == once.oracle.trials["1"].hyperparameters.values)
    assert retried.oracle.trials["1"].score == toy_score(
        retried.oracle.trials["1"].hyperparameters.values, 1)
    assert "Trial 1 failed 1 times. 1 retries left." in capsys.readouterr().out


def test_max_consecutive_failed_trials_counts_crashes_not_divergences(tmp_path):
    crash = keras_tuner.errors.FailedTrialError
    two_crashes = {"0": [crash("bug")], "1": [crash("bug")]}
    default = _flaky(tmp_path, "default", two_crashes)
    default.search(verbose=0)  # 2 consecutive failures < 3
    assert _statuses(default) == ["FAILED", "FAILED", "COMPLETED", "COMPLETED"]

    limited = _flaky(tmp_path, "limited", two_crashes,
                     max_consecutive_failed_trials=2)
    with pytest.raises(RuntimeError, match="exceeded the limit of 2"):
        limited.search(verbose=0)
    assert limited.runs == ["0", "1"]

    # A diverged trial is a result: it resets the count between crashes.
    mixed = {"0": [crash("bug")], "1": ["loss is nan at step 3"],
             "2": [crash("bug")]}
    tuner = _flaky(tmp_path, "mixed", mixed, max_consecutive_failed_trials=2)
    tuner.search(verbose=0)
    assert tuner.runs == ["0", "1", "2", "3"]
    assert _statuses(tuner) == ["FAILED", "FAILED", "FAILED", "COMPLETED"]
    assert tuner.oracle.trials["1"].message == "Diverged: loss is nan at step 3"


def _linear_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [1.5]])).astype("float32")
    return (x[:24], y[:24]), (x[24:], y[24:])


def _sgd_linear(x, y, lr, batch_size):
    """Plain SGD on mse from zero weights (Dense(1), in numpy), in order.

    Returns the weights (kernel and bias stacked) and the batch losses
    before each step.
    """
    xb = np.hstack([x, np.ones((len(x), 1))]).astype("float64")
    w, losses = np.zeros((5, 1)), []
    for start in range(0, len(x), batch_size):
        a, b = xb[start:start + batch_size], y[start:start + batch_size]
        residual = a @ w - b
        losses.append(float(np.mean(residual**2)))
        w = w - lr * 2.0 / len(a) * a.T @ residual
    return w, losses


def test_stop_on_divergence_off_or_configured(tmp_path):
    (x, y), (xv, yv) = _linear_regression()
    lr = 1.0  # too large: SGD's loss grows about fourfold per step

    def build(hp):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
            1, kernel_initializer="zeros")])
        model.compile(keras.optimizers.SGD(hp.Fixed("lr", lr)), "mse")
        return model

    def search(name, stop_on_divergence):
        tuner = CoarseToFine(build, "val_loss", stages=((1, 1),), seed=1,
                             stop_on_divergence=stop_on_divergence,
                             directory=str(tmp_path), project_name=name)
        tuner.search(x, y, validation_data=(xv, yv), batch_size=4,
                     shuffle=False, verbose=0)
        (trial,) = tuner.oracle.trials.values()
        return trial

    w, losses = _sgd_linear(x, y, lr, 4)
    running = np.cumsum(losses) / np.arange(1, len(losses) + 1)  # logs["loss"]
    # Off: the trial trains its 6 steps and completes; its score is the
    # validation mse of the weights after them.
    trial = search("off", False)
    assert trial.status == "COMPLETED"
    xvb = np.hstack([xv, np.ones((len(xv), 1))])
    assert trial.score == pytest.approx(float(np.mean((xvb @ w - yv) ** 2)),
                                        rel=1e-4)
    # Configured: a copy of this StopOnDivergence (reference: the loss after
    # step 1) stops the trial at the first step whose running mean loss
    # exceeds twice it. The default one (warm-up of 10 steps) would not
    # have judged these 6 steps.
    stop = StopOnDivergence(max_factor=2.0, warmup_steps=1)
    step = int(np.argmax(running[1:] > 2 * running[0])) + 2
    assert step == 4 and running[step - 1] > 2 * running[0]
    trial = search("configured", stop)
    assert trial.status == "FAILED"
    assert trial.message == (
        f"Diverged: loss {running[step - 1]:.4g} > 2 x reference loss "
        f"{running[0]:.4g} (step 1) at step {step}")
    assert stop.stopped_reason is None  # the instance itself was not used
