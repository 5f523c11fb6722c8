"""MC dropout: `MCDropout(n_samples=10).predict` against a loop of 10 predicts.

The loop is what users write without `MCDropout`: a model whose
`kerasreg.Dropout(mc=True)` layers keep dropping at inference, and
`np.mean([model.predict(x) for _ in range(10)], axis=0)`. `MCDropout` runs
the 10 passes in one compiled call and runs the layers before the first
dropout once (the second figure: the same without that split, the input
tiled). The benchmark MLP (784-256-256-10, `_common`) with a dropout
after each hidden layer, 10,000 rows, `predict`'s default batch size (32).
Target: `MCDropout.predict` in at most half the loop's time.
"""

import keras
import numpy as np
from _common import figure
from _common import interleaved
from _common import mlp_data
from _common import ratio

import kerasreg
from kerasreg import MCDropout

N_SAMPLES = 10


def _mc_mlp(features=784, classes=10, width=256, depth=2, rate=0.3, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    h = inputs
    for _ in range(depth):
        h = keras.layers.Dense(width, activation="relu")(h)
        h = kerasreg.Dropout(rate, mc=True)(h)
    outputs = keras.layers.Dense(classes, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def run(quick=False):
    x, _ = mlp_data(n=10_000)
    model = _mc_mlp()
    mc = MCDropout(model, n_samples=N_SAMPLES)
    # The same, tiling the input instead of running the prefix once.
    tiled = MCDropout(model, n_samples=N_SAMPLES)
    tiled._plan.mode = "tiled"

    def loop():
        return np.mean(
            [model.predict(x, verbose=0) for _ in range(N_SAMPLES)], axis=0
        )

    fns = {
        "mc_dropout": lambda: mc.predict(x, verbose=0),
        "loop": loop,
        "tiled_input": lambda: tiled.predict(x, verbose=0),
    }
    # Both estimate the same mean: close, not equal (different masks).
    a, b = fns["mc_dropout"](), loop()
    assert np.abs(a - b).mean() < 0.05, np.abs(a - b).mean()

    times = interleaved(fns, repeats=2 if quick else 7)
    note = (
        "MLP 784-256-256-10, Dropout(0.3, mc=True) after each hidden layer, "
        "10k rows, batch 32, 10 passes, median of per-round ratios"
    )
    return [
        figure(
            "MCDropout(n_samples=10).predict / loop of 10 predict",
            ratio(times, "mc_dropout", "loop"),
            "<= 0.5",
            note,
        ),
        figure(
            "MCDropout, input tiled (no prefix split) / loop of 10 predict",
            ratio(times, "tiled_input", "loop"),
            "-",
            note + "; what the prefix split saves",
        ),
    ]
