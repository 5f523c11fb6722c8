"""Tuning benchmarks: coarse-to-fine epochs, random vs grid, memory over trials.

1. Epochs to match flat random search: on digits (scikit-learn) with a small
   MLP, flat `keras_tuner.RandomSearch` runs N trials of E epochs; the figure
   is the number of training epochs `CoarseToFine` (N trials in stages of
   60% / 25% / 15% of the trials at E/10, E/4 and E epochs) spends until a trial first reaches the best
   validation accuracy of the flat search, over N * E. Target <= 0.33.
2. Random vs grid (Bergstra & Bengio), with Keras Tuner's own `RandomSearch`
   and `GridSearch` and a cheap synthetic objective (no training): 16 trials
   over two hyperparameters of which only one matters (a narrow bump at a
   random place); the share of 20 seeds in which each finds a score within 1%
   of the optimum. Grid tries only 4 distinct values of the one that matters,
   random tries 16.
3. Memory: process RSS growth from the end of trial 1 to the end of trial 30
   of a small model (Keras Tuner clears the session before each build).
   Target < 200 MB.
"""

import math
import tempfile

import keras
import keras_tuner
import numpy as np

from _common import figure

import kerasreg
from kerasreg.tuning import log_uniform


def _digits(n=None):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(x))[:n]
    x, y = (x[idx] / 16.0).astype("float32"), y[idx].astype("int32")
    cut = len(x) // 4
    return (x[cut:], y[cut:]), (x[:cut], y[:cut])


def _build(hp):
    lr = log_uniform(hp, "learning_rate", 1e-5, 1.0)
    l2 = log_uniform(hp, "l2", 1e-7, 1e-1)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.L2(l2)),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _c2f_epochs(n_trials, epochs, seed, data, directory):
    (x, y), (xv, yv) = data
    fit = dict(x=x, y=y, validation_data=(xv, yv), batch_size=64, verbose=0)
    flat = keras_tuner.RandomSearch(
        _build, "val_accuracy", max_trials=n_trials, seed=seed,
        directory=directory, project_name=f"flat{seed}",
    )
    flat.search(epochs=epochs, **fit)
    target = flat.oracle.get_best_trials(1)[0].score
    # 60% of the trials at E/10 epochs, 25% at E/4, the rest at E.
    n1, n2 = round(0.6 * n_trials), round(0.25 * n_trials)
    stages = ((n1, max(1, epochs // 10)), (n2, max(1, epochs // 4)), (n_trials - n1 - n2, epochs))
    c2f = kerasreg.CoarseToFine(
        _build, "val_accuracy", stages=stages, top_k=3, seed=seed,
        directory=directory, project_name=f"c2f{seed}",
    )
    c2f.search(**fit)
    spent = 0
    for tid in sorted(c2f.oracle.trials, key=int):
        trial = c2f.oracle.trials[tid]
        spent += trial.hyperparameters.values["tuner/epochs"]
        if trial.score is not None and trial.score >= target:
            return spent / (n_trials * epochs), True
    return float("inf"), False  # never matched the flat search


def _random_vs_grid(seeds=20, directory=None):
    wins = {"random": 0, "grid": 0}
    for seed in range(seeds):
        peak = np.random.default_rng(seed).uniform(0.05, 0.95)

        def score(hp, step):
            a = hp.Float("a", 0.0, 1.0, step=step)
            hp.Float("b", 0.0, 1.0, step=step)  # does not matter
            return {"score": math.exp(-((a - peak) ** 2) / (2 * 0.25**2))}

        for kind, cls, step in [
            ("random", keras_tuner.RandomSearch, None),
            ("grid", keras_tuner.GridSearch, 1 / 3),
        ]:
            class Search(cls):
                def run_trial(self, trial, *args, **kwargs):
                    return score(trial.hyperparameters, step)

            tuner = Search(
                hypermodel=None, objective=keras_tuner.Objective("score", "max"),
                max_trials=16, seed=seed + 1, directory=directory,
                project_name=f"{kind}{seed}",
            )
            # Declare the space up front so the first trial is sampled too.
            hp = keras_tuner.HyperParameters()
            hp.Float("a", 0.0, 1.0, step=step)
            hp.Float("b", 0.0, 1.0, step=step)
            tuner.oracle.update_space(hp)
            tuner.search(verbose=0)
            best = tuner.oracle.get_best_trials(1)[0].score
            wins[kind] += best >= 0.99
    return wins["random"] / seeds, wins["grid"] / seeds


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _memory(n_trials, data, directory):
    (x, y), (xv, yv) = data
    rss = []

    class Measured(kerasreg.CoarseToFine):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            rss.append(_rss_mb())

    tuner = Measured(
        _build, "val_accuracy", stages=((n_trials, 1),), seed=0,
        directory=directory, project_name="memory",
    )
    tuner.search(x, y, validation_data=(xv, yv), batch_size=64, verbose=0)
    return rss[-1] - rss[0], rss


def run(quick=False):
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        data = _digits(600 if quick else None)
        n_trials, epochs = (8, 8) if quick else (20, 20)
        seeds = [0] if quick else [0, 1, 2]
        results = [_c2f_epochs(n_trials, epochs, s, data, directory) for s in seeds]
        ratios = [r for r, _ in results]
        reached = sum(ok for _, ok in results)
        rows.append(
            figure(
                "coarse-to-fine epochs to match flat random search (fraction)",
                float(np.median(ratios)),
                "<= 0.33",
                f"digits MLP, {n_trials} trials x {epochs} epochs flat; reached in "
                f"{reached}/{len(seeds)} seeds (inf: never matched)",
            )
        )
        random_rate, grid_rate = _random_vs_grid(20, directory)
        rows.append(figure("random search: share of seeds within 1% of optimum", random_rate,
                           "> grid", "16 trials, 1 of 2 hps matters, synthetic objective, 20 seeds"))
        rows.append(figure("grid search: share of seeds within 1% of optimum", grid_rate,
                           "< random", "4x4 grid, same objective and seeds"))
        growth, _ = _memory(30, _digits(500) if quick else data, directory)
        rows.append(figure("RSS growth over 30 trials (MB)", growth, "< 200",
                           "CoarseToFine, small MLP, 1 epoch per trial"))
    return rows
