"""Coarse-to-fine random search on Keras Tuner: `CoarseToFineOracle`, `CoarseToFine`.

This module imports `keras_tuner` at its top: `kerasreg.tuning` loads it
lazily, on first use of `CoarseToFine`, so `import kerasreg` does not need it.
"""

import copy
import math
import time

import numpy as np

import keras_tuner
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine import trial as trial_module

from kerasreg import _checks
from kerasreg import _compat
from kerasreg._compat import local_oracle
from kerasreg._trials import BOOKKEEPING_PREFIX
from kerasreg._trials import CARRIED_KEY
from kerasreg._trials import DIVERGED_KEY
from kerasreg._trials import DIVERGED_PREFIX
from kerasreg._trials import EPOCHS_KEY
from kerasreg._trials import STAGE_KEY
from kerasreg._trials import is_completed
from kerasreg.callbacks.divergence import StopOnDivergence

TrialStatus = trial_module.TrialStatus

_NUMERIC = (hp_module.Float, hp_module.Int)
_DISCRETE = (hp_module.Choice, hp_module.Boolean)


def _validate_stages(stages):
    message = (
        "Invalid value received for argument `stages`. Expected a non-empty "
        "sequence of (trials, epochs) pairs of positive integers. "
        f"Received: stages={stages!r}"
    )
    try:
        stages = [tuple(stage) for stage in stages]
    except TypeError:
        raise ValueError(message) from None
    if not stages:
        raise ValueError(message)
    for stage in stages:
        if len(stage) != 2 or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1
            for n in stage
        ):
            raise ValueError(message)
    return [[int(trials), int(epochs)] for trials, epochs in stages]


def _validate_top_k(top_k):
    _checks.int_at_least("top_k", top_k, 1)


def _validate_margin(margin):
    _checks.non_negative_float("margin", margin)


def _validate_seed(seed):
    if seed is not None:
        _checks.int_at_least("seed", seed, 0)


def _validate_space(hyperparameters, allow_new_entries, tune_new_entries):
    if hyperparameters is not None and not isinstance(
        hyperparameters, hp_module.HyperParameters
    ):
        raise _checks.invalid(
            "hyperparameters",
            hyperparameters,
            "a `keras_tuner.HyperParameters` instance or None",
        )
    if hyperparameters:  # a non-empty space, as Keras Tuner's Oracle tests
        return
    for name, value in (
        ("tune_new_entries", tune_new_entries),
        ("allow_new_entries", allow_new_entries),
    ):
        if not value:
            raise _checks.invalid(
                name,
                value,
                "True when no search space is given: with "
                f"`{name}=False`, declare the space in `hyperparameters`",
            )


def is_diverged(trial):
    """Whether a trial ended because its training diverged."""
    return DIVERGED_KEY in trial.hyperparameters.values


def trial_stage(trial):
    """The coarse-to-fine stage of a trial (0 for trials of other tuners)."""
    return int(trial.hyperparameters.values.get(STAGE_KEY, 0))


class CoarseToFineOracle(keras_tuner.Oracle):
    """Oracle of a coarse-to-fine random search in stages.

    Stage `i` runs `stages[i][0]` trials, each to be trained for
    `stages[i][1]` epochs (sent to the tuner as the trial value
    `"tuner/epochs"`, as `Hyperband` does). When every trial of a stage has
    ended, each hyperparameter's range is narrowed to the span of the `top_k`
    best completed trials of that stage, widened by `margin` times the span
    (in log10 space for log-sampled ones) and clipped to the original range;
    choices keep the values seen in the top-k. The best of each stage is
    carried into the next and trained longer: the first trial of stage
    `i > 0` has exactly the hyperparameter values of the best completed
    trial of stage `i - 1` (its trial id recorded as the trial value
    `"tuner/carried_from"`) with stage `i`'s epochs, as successive halving
    and Hyperband promote their best; it is a new trial, trained from
    scratch. The stage's other trials are random draws in the narrowed
    ranges (a stage whose predecessor completed no trial has only those).
    Stage index, ranges and the trials of each stage are
    part of the oracle state, so a resumed search (`overwrite=False`) goes on
    in the right stage, and in distributed mode only the chief's oracle
    decides when a stage ends (workers asking meanwhile get `IDLE`).

    When a stage starts, one line gives its narrowed ranges, unless the
    search runs with `verbose=0` (Keras Tuner's `search(verbose=...)`, which
    sets `oracle.verbose`).

    Trials stopped by `StopOnDivergence` end as `FAILED` with the reason in
    `trial.message` and the trial value `"tuner/diverged"`; they do not count
    towards `max_consecutive_failed_trials`, which is kept for real crashes.

    Args:
        objective: The objective, as for `keras_tuner.Oracle`.
        stages: Sequence of `(trials, epochs)` pairs of positive integers.
            Defaults to `((30, 1), (10, 5), (5, 20))`.
        top_k: Integer >= 1. Number of best trials of a stage that set the
            next stage's ranges. Defaults to `5`.
        margin: Float >= 0. Fraction of the top-k span added on each side.
            Defaults to `0.25`.
        seed: Optional integer >= 0, the random seed.
        hyperparameters: As for `keras_tuner.Oracle`.
        allow_new_entries: As for `keras_tuner.Oracle`.
        tune_new_entries: As for `keras_tuner.Oracle`.
        max_retries_per_trial: As for `keras_tuner.Oracle`.
        max_consecutive_failed_trials: As for `keras_tuner.Oracle`.

    Example:

    ```python
    from kerasreg.tuning.coarse_to_fine import CoarseToFineOracle

    oracle = CoarseToFineOracle("val_loss", stages=((8, 1), (4, 3)), top_k=3)
    assert oracle.max_trials == 12
    ```
    """

    def __init__(
        self,
        objective=None,
        stages=((30, 1), (10, 5), (5, 20)),
        top_k=5,
        margin=0.25,
        seed=None,
        hyperparameters=None,
        allow_new_entries=True,
        tune_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
    ):
        stages = _validate_stages(stages)
        _validate_top_k(top_k)
        _validate_margin(margin)
        _validate_seed(seed)
        _validate_space(hyperparameters, allow_new_entries, tune_new_entries)
        super().__init__(
            objective=objective,
            max_trials=sum(trials for trials, _ in stages),
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        if seed is not None:
            # Keras Tuner's Oracle takes `seed or random.randint(...)`, so
            # seed=0 would give an unseeded search.
            self.seed = int(seed)
            _compat.set_oracle_seed_state(self, self.seed)
        self.stages = stages
        self.top_k = top_k
        self.margin = float(margin)
        self.stage = 0
        # stage index -> trial ids started in that stage.
        self.stage_trials = [[] for _ in stages]
        # stage index -> {name: {"min_value", "max_value"} or {"values"}};
        # filled for stage 0 at the first trial, then at each advance.
        self._ranges = []

    # ------------------------------------------------------------------ ranges
    def _original_ranges(self):
        ranges = {}
        for hp in self.hyperparameters.space:
            if isinstance(hp, _NUMERIC):
                ranges[hp.name] = {
                    "min_value": hp.min_value,
                    "max_value": hp.max_value,
                }
            elif isinstance(hp, hp_module.Choice):
                ranges[hp.name] = {"values": list(hp.values)}
            elif isinstance(hp, hp_module.Boolean):
                ranges[hp.name] = {"values": [False, True]}
        return ranges

    @property
    def stage_ranges(self):
        """List, per started stage, of `{name: range}` dicts.

        A numeric range is `{"min_value": lo, "max_value": hi}`, a choice
        `{"values": [...]}`. Stage 0 holds the original ranges.
        """
        if not self._ranges:
            return [self._original_ranges()]
        return copy.deepcopy(self._ranges)

    def _ranked(self, stage):
        """Completed trials of `stage` with a finite score, best first."""
        completed = [
            self.trials[tid]
            for tid in self.stage_trials[stage]
            if is_completed(self.trials[tid])
        ]
        reverse = self.objective.direction == "max"
        # Stable sort: among equal scores the earliest trial wins.
        completed.sort(key=lambda t: t.score, reverse=reverse)
        return completed

    def _carried_values(self, stage):
        """Values of the best completed trial of `stage`, or None."""
        ranked = self._ranked(stage)
        if not ranked:
            return None
        best = ranked[0]
        values = {
            name: value
            for name, value in best.hyperparameters.values.items()
            if not name.startswith(BOOKKEEPING_PREFIX)
        }
        values[CARRIED_KEY] = best.trial_id
        return values

    def _narrow(self, stage):
        """Ranges for stage `stage + 1` from the top-k of `stage`."""
        previous = self._ranges[stage]
        original = self._original_ranges()
        top = self._ranked(stage)[: self.top_k]
        ranges = {}
        for hp in self.hyperparameters.space:
            name = hp.name
            if name not in original:
                continue
            current = previous.get(name, original[name])
            seen = [
                t.hyperparameters.values[name]
                for t in top
                if name in t.hyperparameters.values
            ]
            if not seen:
                ranges[name] = copy.deepcopy(current)
            elif isinstance(hp, _NUMERIC):
                ranges[name] = self._narrow_numeric(
                    hp, seen, current, original[name]
                )
            else:
                ranges[name] = {
                    "values": [
                        v for v in original[name]["values"] if v in seen
                    ]
                }
        return ranges

    def _narrow_numeric(self, hp, seen, current, original):
        log = hp.sampling == "log"

        def fwd(v):
            return math.log10(v) if log else float(v)

        def inv(v):
            return 10.0**v if log else v

        lo_orig, hi_orig = fwd(original["min_value"]), fwd(original["max_value"])
        lo, hi = min(fwd(v) for v in seen), max(fwd(v) for v in seen)
        span = hi - lo
        if span == 0:
            # A single point: keep a window of `margin` of the current span.
            span = fwd(current["max_value"]) - fwd(current["min_value"])
            lo, hi = lo - 0.5 * self.margin * span, hi + 0.5 * self.margin * span
        else:
            lo, hi = lo - self.margin * span, hi + self.margin * span
        lo, hi = max(lo, lo_orig), min(hi, hi_orig)
        lo_v, hi_v = inv(lo), inv(hi)
        # Exact original bounds where clipped (no float round trip error).
        if lo <= lo_orig:
            lo_v = original["min_value"]
        if hi >= hi_orig:
            hi_v = original["max_value"]
        lo_v = max(lo_v, original["min_value"])
        hi_v = min(hi_v, original["max_value"])
        if isinstance(hp, hp_module.Int):
            lo_v, hi_v = self._align_int(hp, lo_v, hi_v, seen)
        return {"min_value": lo_v, "max_value": hi_v}

    @staticmethod
    def _align_int(hp, lo, hi, seen):
        step = hp.step or 1
        if hp.sampling == "log" and hp.step is not None and step > 1:
            # Multiplicative grid min * step**k.
            k_lo = math.floor(math.log(lo / hp.min_value, step) + 1e-9)
            k_hi = math.ceil(math.log(hi / hp.min_value, step) - 1e-9)
            lo_i = int(round(hp.min_value * step**k_lo))
            hi_i = int(round(hp.min_value * step**k_hi))
        else:
            lo_i = hp.min_value + step * math.floor((lo - hp.min_value) / step)
            hi_i = hp.min_value + step * math.ceil((hi - hp.min_value) / step)
        # Floor / ceil keep every seen value inside; clip to the original.
        lo_i = max(min(int(lo_i), min(seen)), hp.min_value)
        hi_i = min(max(int(hi_i), max(seen)), hp.max_value)
        return int(lo_i), int(hi_i)

    def _sampler(self, hp, rng):
        """A copy of `hp` restricted to `rng`, or None for discrete ranges."""
        if rng is None or not isinstance(hp, _NUMERIC):
            return hp
        config = hp.get_config()
        config["min_value"] = rng["min_value"]
        config["max_value"] = rng["max_value"]
        default = config.get("default")
        if default is not None:
            config["default"] = min(max(default, rng["min_value"]), rng["max_value"])
        if isinstance(hp, hp_module.Float) and hp.step is not None:
            # Keep the stepped grid of the original range.
            config["step"] = None
        return hp.__class__.from_config(config)

    def _uniform(self):
        # Keras Tuner's `hp.random_sample(seed)` draws the first number of a
        # `random.Random(seed)` for consecutive seeds, which fails a
        # Kolmogorov-Smirnov test over 2000 draws; one numpy stream per draw,
        # keyed on (seed, counter), does not and stays resumable.
        state = _compat.oracle_seed_state(self)
        draw = np.random.default_rng([self.seed, state]).random()
        _compat.set_oracle_seed_state(self, state + 1)
        return float(draw)

    def _sample_values(self, ranges):
        hps = None
        for _ in range(_compat.oracle_max_collisions(self) + 1):
            hps = hp_module.HyperParameters()
            for hp in self.hyperparameters.space:
                hps.merge([hp])
                if not hps.is_active(hp):
                    continue
                rng = ranges.get(hp.name)
                prob = self._uniform()
                if rng is not None and rng.get("values"):
                    choices = rng["values"]
                    value = choices[min(int(prob * len(choices)), len(choices) - 1)]
                else:
                    value = self._sampler(hp, rng).prob_to_value(prob)
                    if isinstance(hp, hp_module.Float) and hp.step is not None:
                        value = self._snap_float(hp, value)
                hps.values[hp.name] = value
            if not _compat.oracle_has_tried(self, hps.values):
                break
        return hps.values

    @staticmethod
    def _snap_float(hp, value):
        if hp.sampling == "log":
            k = round(math.log(value / hp.min_value, hp.step))
            snapped = hp.min_value * hp.step**k
        else:
            snapped = hp.min_value + hp.step * round((value - hp.min_value) / hp.step)
        return float(min(max(snapped, hp.min_value), hp.max_value))

    def _format_ranges(self, ranges):
        parts = []
        for name, rng in ranges.items():
            if "values" in rng:
                parts.append(f"{name}: {rng['values']}")
            else:
                parts.append(
                    f"{name}: [{rng['min_value']:.3g}, {rng['max_value']:.3g}]"
                )
        return ", ".join(parts)

    # ---------------------------------------------------------------- oracle
    def _stage_done(self, stage):
        ended = set(self.end_order)
        return all(tid in ended for tid in self.stage_trials[stage])

    def populate_space(self, trial_id):
        if not self._ranges:
            self._ranges.append(self._original_ranges())
        while True:
            if self.stage >= len(self.stages):
                return {"status": TrialStatus.STOPPED, "values": None}
            n_trials, epochs = self.stages[self.stage]
            if len(self.stage_trials[self.stage]) < n_trials:
                break
            if self.stage + 1 >= len(self.stages):
                return {"status": TrialStatus.STOPPED, "values": None}
            if not self._stage_done(self.stage):
                # Wait for the other workers' trials of this stage.
                return {"status": TrialStatus.IDLE, "values": None}
            ranges = self._narrow(self.stage)
            self._ranges.append(ranges)
            self.stage += 1
            # Keras Tuner's own verbosity: `search(verbose=0)` sets it to 0.
            if self.verbose:
                print(
                    f"CoarseToFine: stage {self.stage + 1}/{len(self.stages)} "
                    f"({self.stages[self.stage][0]} trials x "
                    f"{self.stages[self.stage][1]} epochs), ranges: "
                    + self._format_ranges(ranges)
                )
        values = None
        if self.stage > 0 and not self.stage_trials[self.stage]:
            # Promote the previous stage's best (as successive halving does):
            # the first trial of a later stage re-trains it for longer.
            values = self._carried_values(self.stage - 1)
        if values is None:
            values = self._sample_values(self._ranges[self.stage])
        values[STAGE_KEY] = self.stage
        values[EPOCHS_KEY] = epochs
        self.stage_trials[self.stage].append(trial_id)
        return {"status": TrialStatus.RUNNING, "values": values}

    def end_trial(self, trial):
        if DIVERGED_KEY in trial.hyperparameters.values:
            # The message does not travel over gRPC; the value does.
            trial.message = (
                DIVERGED_PREFIX + trial.hyperparameters.values[DIVERGED_KEY]
            )
        return super().end_trial(trial)

    def _check_consecutive_failures(self):
        # A diverged trial is a result of the search, not a crash: it resets
        # the count of consecutive failures instead of adding to it.
        consecutive_failures = 0
        for trial_id in self.end_order:
            trial = self.trials[trial_id]
            if trial.status == TrialStatus.FAILED and not is_diverged(trial):
                consecutive_failures += 1
            else:
                consecutive_failures = 0
            if consecutive_failures == self.max_consecutive_failed_trials:
                raise RuntimeError(
                    "Number of consecutive failures exceeded the limit "
                    f"of {self.max_consecutive_failed_trials}.\n"
                    + (trial.message or "")
                )

    def get_best_trials(self, num_trials=1):
        """Best trials, the final stage's first (they trained longest)."""
        completed = [t for t in self.trials.values() if is_completed(t)]
        sign = -1.0 if self.objective.direction == "max" else 1.0
        completed.sort(key=lambda t: (-trial_stage(t), sign * t.score))
        if len(completed) < num_trials:
            # As Keras Tuner's Oracle: padded with the other trials.
            completed += [
                t for t in self.trials.values() if not is_completed(t)
            ]
        return completed[:num_trials]

    def get_state(self):
        state = super().get_state()
        state["coarse_to_fine"] = {
            "stages": self.stages,
            "top_k": self.top_k,
            "margin": self.margin,
            "stage": self.stage,
            "stage_trials": self.stage_trials,
            "ranges": self._ranges,
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        own = state["coarse_to_fine"]
        if [list(s) for s in own["stages"]] != self.stages:
            raise ValueError(
                "Invalid value received for argument `stages`. Expected the "
                f"stages of the project being resumed, {own['stages']}. "
                f"Received: stages={self.stages}"
            )
        self.stage = own["stage"]
        self.stage_trials = own["stage_trials"]
        self._ranges = own["ranges"]


class CoarseToFine(keras_tuner.Tuner):
    """Coarse-to-fine random search: wide and short first, then narrow and long.

    The tuning lectures (cs231n, deeplearning.ai): search in stages, first a
    wide range with very short training (many settings do not learn or blow
    up at once), then narrow the ranges around the best results and train
    longer, then again. Stage `i` runs `stages[i][0]` trials, each
    trained for `stages[i][1]` epochs. After each stage every numeric range
    is narrowed to the span of the stage's `top_k` best trials, widened by
    `margin` of that span (in log space for log-sampled ones) and clipped to
    the original range; choices keep the values seen in the top-k. The ranges
    are printed, and listed per stage in `tuner.stage_ranges`. The best of
    each stage is carried into the next and trained longer: the first trial
    of every later stage re-runs the previous stage's best configuration
    with the new stage's epochs (as successive halving and Hyperband promote
    their best), the rest of the stage samples the narrowed ranges.

    A real Keras Tuner tuner (`CoarseToFineOracle` decides, this class runs
    the trials), so it inherits resume (`overwrite=False` continues in the
    right stage; no completed trial runs again), failure handling and the
    chief/worker distributed mode (`KERASTUNER_TUNER_ID`,
    `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`; the stages advance on
    the chief's oracle).

    `StopOnDivergence` is added to every trial by default: a trial whose loss
    goes NaN/Inf or above `max_factor` times its loss at the end of the
    warm-up ends as `FAILED` with the reason in `trial.message`, and the
    search goes on. Diverged
    trials do not count towards `max_consecutive_failed_trials` (default 3,
    kept for real crashes such as a bug in the model-building function), so a
    coarse stage in which many learning rates blow up still runs all its
    trials.

    The best trial of the final stage is the tuner's best
    (`get_best_hyperparameters`, `get_best_models`).

    Args:
        hypermodel: A `keras_tuner.HyperModel` or a function `hp -> model`
            returning a compiled model.
        objective: The objective, e.g. `"val_accuracy"`.
        stages: Sequence of `(trials, epochs)` pairs of positive integers.
            Defaults to `((30, 1), (10, 5), (5, 20))`.
        top_k: Integer >= 1. Best trials of a stage that set the next
            stage's ranges. Defaults to `5`.
        margin: Float >= 0. Fraction of the top-k span added on each side of
            the narrowed range. Defaults to `0.25`.
        seed: Optional integer >= 0, the random seed of the search.
        stop_on_divergence: `True` (a default `StopOnDivergence()`), `False`,
            or a configured `StopOnDivergence` (copied for every trial).
            Defaults to `True`.
        hyperparameters: As for `keras_tuner.RandomSearch`.
        tune_new_entries: As for `keras_tuner.RandomSearch`.
        allow_new_entries: As for `keras_tuner.RandomSearch`.
        max_retries_per_trial: As for `keras_tuner.RandomSearch`.
        max_consecutive_failed_trials: As for `keras_tuner.RandomSearch`.
        **kwargs: Passed to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, `executions_per_trial`, ...).
            There is no `max_trials`: the number of trials is the sum of
            the trials of `stages`.

    Example:

    ```python
    import keras
    import numpy as np
    import kerasreg
    from kerasreg.tuning import log_uniform

    x = np.random.rand(256, 8).astype("float32")
    y = (x.sum(axis=1) > 4).astype("int32")

    def build(hp):
        model = keras.Sequential([
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ])
        lr = log_uniform(hp, "learning_rate", 1e-4, 1.0)
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    tuner = kerasreg.CoarseToFine(
        build, "val_accuracy", stages=((4, 1), (2, 2)), top_k=2, seed=1,
        directory="/tmp/kerasreg_doc", project_name="c2f", overwrite=True)
    tuner.search(x, y, validation_split=0.25, verbose=0)
    print(tuner.stage_ranges)
    ```
    """

    def __init__(
        self,
        hypermodel=None,
        objective=None,
        stages=((30, 1), (10, 5), (5, 20)),
        top_k=5,
        margin=0.25,
        seed=None,
        stop_on_divergence=True,
        hyperparameters=None,
        tune_new_entries=True,
        allow_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        **kwargs,
    ):
        if "max_trials" in kwargs:
            raise TypeError(
                "CoarseToFine got an unexpected keyword argument "
                "`max_trials`: its number of trials comes from `stages` (the "
                "sum of the trials of its `(trials, epochs)` pairs); pass "
                f"`stages` instead. Received: max_trials={kwargs['max_trials']!r}"
            )
        if stop_on_divergence is True:
            stop_on_divergence = StopOnDivergence()
        elif stop_on_divergence is False or stop_on_divergence is None:
            stop_on_divergence = None
        elif not isinstance(stop_on_divergence, StopOnDivergence):
            raise ValueError(
                "Invalid value received for argument `stop_on_divergence`. "
                "Expected a boolean or a `StopOnDivergence` instance. "
                f"Received: stop_on_divergence={stop_on_divergence!r}"
            )
        self._divergence_config = (
            None if stop_on_divergence is None else stop_on_divergence.get_config()
        )
        oracle = CoarseToFineOracle(
            objective=objective,
            stages=stages,
            top_k=top_k,
            margin=margin,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self._waiting = False
        super().__init__(oracle, hypermodel, **kwargs)

    @property
    def _local_oracle(self):
        # On a distributed worker `self.oracle` is a gRPC client.
        return local_oracle(self)

    @property
    def stages(self):
        return self._local_oracle.stages

    @property
    def stage_ranges(self):
        """List, per started stage, of `{name: range}` dicts (see the oracle).

        Complete on the process that holds the oracle (single process or the
        chief); a distributed worker sees only its local copy.
        """
        return self._local_oracle.stage_ranges

    def pre_create_trial(self):
        # `search` asks again at once when the oracle answers IDLE (a worker
        # waiting for the others to finish a stage): do not spin.
        if self._waiting:
            time.sleep(0.5)
        self._waiting = True

    def on_trial_begin(self, trial):
        self._waiting = False
        super().on_trial_begin(trial)

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        if EPOCHS_KEY in values:
            kwargs["epochs"] = values[EPOCHS_KEY]
        return super().run_trial(trial, *args, **kwargs)

    def _build_and_fit_model(self, trial, *args, **kwargs):
        stop = None
        if self._divergence_config is not None:
            stop = StopOnDivergence.from_config(self._divergence_config)
            kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [stop]
        results = super()._build_and_fit_model(trial, *args, **kwargs)
        if stop is not None and stop.diverged:
            trial.hyperparameters.values[DIVERGED_KEY] = stop.stopped_reason
            raise keras_tuner.errors.FailedTrialError(
                DIVERGED_PREFIX + stop.stopped_reason
            )
        return results
