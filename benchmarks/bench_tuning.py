"""Tuning benchmarks: coarse-to-fine epochs, random vs grid, memory over trials.

1. Epochs to match flat random search (the lecture's coarse-to-fine claim).
   Problem: scikit-learn's digits, split in half (899 training, 898
   validation images), a 64-32-10 MLP trained by SGD with momentum 0.9,
   batch 64, searching two hyperparameters over wide log ranges, as a first
   pass would: learning rate 10 ** U(-5, 1) and L2 strength 10 ** U(-7, 0).
   Most of that box fails: above lr ~0.5 training blows up, below ~1e-3 it
   learns little, above L2 ~1e-2 the penalty flattens the model.
   Flat search: `keras_tuner.RandomSearch`, N trials of E epochs each
   (budget N x E epochs); its score S is its best validation accuracy
   (Keras Tuner's score of a trial is its best epoch's value).
   Coarse-to-fine: `CoarseToFine` with the same N trials split in stages
   of 60% / 25% / 15% of the trials at E/10, E/4 and E epochs (all trials
   run: 0.27 x N x E epochs), top_k=3, margin 0.25, `StopOnDivergence` on;
   the first trial of stages 2 and 3 re-trains the previous stage's best
   configuration for the longer epochs, the rest sample the narrowed ranges.
   Figure: the epochs `CoarseToFine` has scheduled (trial order, every
   trial counted at its full stage epochs, diverged ones too, so an upper
   bound) up to and including its first trial whose score is
   >= S - 1/n_val, over N x E; `inf` when no trial gets there. The
   tolerance is one validation example (1/898 = 0.0011), the resolution of
   the accuracy; it only forgives ties broken by a single image, far below
   the binomial noise of the estimate (sqrt(p (1 - p) / n) ~ 0.006 at
   p = 0.97). Full mode: N = 20, E = 20, seeds 0-4 (both searches use the
   seed; quick mode: N = 10, E = 10, seed 0); the row gives the median
   ratio and, in its note, how many seeds reached S within tolerance and
   how many reached it strictly.
   Target: median <= 0.33.
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


def _digits(n=None, val_fraction=0.5):
    """Digits (scikit-learn), scaled to [0, 1]; half of it for validation."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(x))[:n]
    x, y = (x[idx] / 16.0).astype("float32"), y[idx].astype("int32")
    cut = int(len(x) * val_fraction)
    return (x[cut:], y[cut:]), (x[:cut], y[:cut])


def _build(hp):
    # Wide log ranges, as the lecture's first pass: lr = 10 ** uniform(-5, 1)
    # (SGD with momentum 0.9 blows up above ~0.5, learns nothing in a few
    # epochs below ~1e-3) and L2 = 10 ** uniform(-7, 0) (above ~1e-2 the
    # penalty flattens the model). Most of the box fails or is mediocre.
    lr = log_uniform(hp, "learning_rate", 1e-5, 10.0)
    l2 = log_uniform(hp, "l2", 1e-7, 1.0)
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


def _stages(n_trials, epochs):
    """60% of the trials at E/10 epochs, 25% at E/4, the rest at E.

    Budget if every trial runs: 0.6/10 + 0.25/4 + 0.15 = 0.27 of N x E.
    """
    n1, n2 = round(0.6 * n_trials), round(0.25 * n_trials)
    return (
        (n1, max(1, epochs // 10)),
        (n2, max(1, epochs // 4)),
        (n_trials - n1 - n2, epochs),
    )


def _c2f_epochs(n_trials, epochs, seed, data, directory, top_k=3):
    """One seed of figure 1: (ratio, reached, details)."""
    (x, y), (xv, yv) = data
    # Each seed starts from the same global RNG state, whatever ran before it.
    keras.utils.set_random_seed(seed)
    fit = dict(x=x, y=y, validation_data=(xv, yv), batch_size=64, verbose=0)
    flat = keras_tuner.RandomSearch(
        _build, "val_accuracy", max_trials=n_trials, seed=seed,
        directory=directory, project_name=f"flat{seed}",
    )
    flat.search(epochs=epochs, **fit)
    target = flat.oracle.get_best_trials(1)[0].score
    # One validation example: the resolution of the accuracy.
    tolerance = 1.0 / len(yv)
    c2f = kerasreg.CoarseToFine(
        _build, "val_accuracy", stages=_stages(n_trials, epochs), top_k=top_k,
        seed=seed, directory=directory, project_name=f"c2f{seed}",
    )
    c2f.search(**fit)
    spent, first = 0, None
    for tid in sorted(c2f.oracle.trials, key=int):
        trial = c2f.oracle.trials[tid]
        spent += trial.hyperparameters.values["tuner/epochs"]
        # 1e-6 slack: scores are float32, where 866/898 - 865/898 falls ~1e-8 short of 1/898.
        if trial.score is not None and trial.score >= target - tolerance - 1e-6:
            first = spent
            break
    scores = [t.score for t in c2f.oracle.trials.values() if t.score is not None]
    details = {
        "flat_best": target,
        "c2f_best": max(scores) if scores else None,
        "strict": bool(scores) and max(scores) >= target - 1e-6,
        "c2f_total": sum(
            t.hyperparameters.values["tuner/epochs"] for t in c2f.oracle.trials.values()
        ) / (n_trials * epochs),
    }
    if first is None:
        return float("inf"), False, details  # never matched the flat search
    return first / (n_trials * epochs), True, details


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
        data = _digits()
        n_trials, epochs = (10, 10) if quick else (20, 20)
        seeds = [0] if quick else [0, 1, 2, 3, 4]
        results = [_c2f_epochs(n_trials, epochs, s, data, directory) for s in seeds]
        for s, (r, ok, d) in zip(seeds, results):
            print(f"  seed {s}: ratio {r:.3g}, flat best {d['flat_best']:.4f}, "
                  f"coarse-to-fine best {d['c2f_best']:.4f}", flush=True)
        ratios = [r for r, _, _ in results]
        reached = sum(ok for _, ok, _ in results)
        strict = sum(d["strict"] for _, _, d in results)
        rows.append(
            figure(
                "coarse-to-fine epochs to match flat random search (fraction)",
                float(np.median(ratios)),
                "<= 0.33",
                f"digits MLP, lr 1e-5..10 and L2 1e-7..1 log, {n_trials} trials x "
                f"{epochs} epochs flat; median of {len(seeds)} seeds; reached within "
                f"1 val example in {reached}/{len(seeds)}, strictly in "
                f"{strict}/{len(seeds)} (inf: never)",
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
