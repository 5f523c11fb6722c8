"""Deep ensembles: members trained in one fused step vs one after another.

Speed: `DeepEnsemble(n_members=5)` of an MLP 784-256-128-10 with
BatchNormalization and Dropout, batch 128, 8192 random rows, one epoch per
round, against five sequential `fit`s of the same five members (each its own
compiled model), jit on for both sides, rounds alternated
(`_common.interleaved`). Figure: median per-round time ratio fused /
sequential; targets <= 0.5 (tensorflow CPU), <= 1.0 (jax CPU).

Fusion strategy measured: "branches" (the only one implemented): the members
are called on the same input inside one graph, the step sums their losses.
A stacked-weights prototype (member axis on the activations, the first Dense
as one wide matmul against the members' kernels side by side, the next ones
as one batched einsum; BatchNormalization and Dropout per member slice) was
measured on jax CPU at 1.13x the branch graph's time per epoch (0.93x in a
shorter run; all within the noise of a loaded machine) and its batched
matmuls at up to 2x the time of per-member matmuls: XLA CPU is compute-bound
here, stacking saves no arithmetic, so it was not shipped (issue 14).

Accuracy: on scikit-learn's digits, the fused ensemble against five members
trained separately from the same initial weights on the same batches (they
should agree up to float rounding; Dropout's masks too, the seed states are
copied).
"""

import keras
import numpy as np
from _common import figure
from _common import interleaved
from _common import mlp_data
from _common import ratio

import kerasreg

N_MEMBERS = 5


def _mlp(features=784, classes=10):
    inputs = keras.Input((features,))
    h = keras.layers.Dense(256, use_bias=False)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.Dense(128, activation="relu")(h)
    h = keras.layers.Dropout(0.3)(h)
    outputs = keras.layers.Dense(classes, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def _compile(model):
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        jit_compile=True,
    )
    return model


def _pair(build, seed=0):
    """A fused DeepEnsemble and separate copies of its members (same state)."""
    fused = kerasreg.DeepEnsemble(build, n_members=N_MEMBERS, seed=seed)
    # `members` are standalone copies: weights and dropout seed states.
    return fused, fused.members


def _speed(quick):
    n = 2048 if quick else 8192
    x, y = mlp_data(n=n)
    fused, separate = _pair(_mlp)
    _compile(fused)
    for m in separate:
        _compile(m)

    def fit_fused():
        fused.fit(x, y, batch_size=128, epochs=1, shuffle=False, verbose=0)

    def fit_separate():
        for m in separate:
            m.fit(x, y, batch_size=128, epochs=1, shuffle=False, verbose=0)

    fns = {"fused": fit_fused, "separate": fit_separate}
    repeats = 2 if quick else 5
    first = interleaved(fns, repeats=repeats, warmup=1)
    second = interleaved(
        dict(reversed(list(fns.items()))), repeats=repeats, warmup=0
    )
    times = {k: first[k] + second[k] for k in fns}
    steps = n // 128
    med = {k: float(np.median(v)) for k, v in times.items()}
    note = (
        f"5 MLPs 784-256(BN)-128-10 + Dropout, batch 128, {steps} steps/round, "
        f"fused {1e3 * med['fused'] / steps:.1f} ms/step, separate "
        f"{1e3 * med['separate'] / steps:.1f} ms/step (5 models), jit, "
        "fusion: branches"
    )
    return figure(
        "DeepEnsemble(5) fused fit / 5 sequential fits (time)",
        ratio(times, "fused", "separate"),
        "<= 0.5 (tensorflow CPU), <= 1.0 (jax CPU)",
        note,
    )


def _accuracy(quick):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    epochs = 5 if quick else 15

    def build():
        return _mlp(features=64)

    fused, separate = _pair(build, seed=1)
    _compile(fused)
    fused.fit(x_train, y_train, batch_size=64, epochs=epochs, shuffle=False,
              verbose=0)
    for m in separate:
        _compile(m)
        m.fit(x_train, y_train, batch_size=64, epochs=epochs, shuffle=False,
              verbose=0)
    p_fused = fused.member_predictions(x_test)
    p_separate = np.stack([m.predict(x_test, verbose=0) for m in separate])

    def acc(p):
        return float(np.mean(p.argmax(-1) == y_test))

    note = (
        f"digits, {len(x_test)} test rows, {epochs} epochs, Adam; members "
        f"fused {[round(acc(p), 3) for p in p_fused]}, separate "
        f"{[round(acc(p), 3) for p in p_separate]}; max |p_fused - p_separate| "
        f"{np.abs(p_fused - p_separate).max():.1e}"
    )
    return [
        figure("DeepEnsemble(5) test accuracy, fused training",
               acc(p_fused.mean(0)), "= separate", note),
        figure("5 members trained separately, test accuracy of their mean",
               acc(p_separate.mean(0)), "= fused", note),
    ]


def run(quick=False):
    return [_speed(quick)] + _accuracy(quick)
