"""Train-step cost of kerasreg Dropout + BatchNormalization vs keras.layers.

Two models (an MLP and a small CNN) are built twice, identically except for
where Dropout and BatchNormalization come from, compiled with jit on, and
trained for one epoch per timing round with `model.fit`, the two sides
alternating (`_common.interleaved`, half the rounds in each order). Figure: median per-round time ratio
kerasreg / keras; target <= 1.05.
"""

import keras
import numpy as np
from _common import epoch_fn
from _common import figure
from _common import interleaved
from _common import mlp_data
from _common import ratio

import kerasreg


def _mlp(layers_module, features=784, classes=10, width=256, depth=2, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    h = inputs
    for _ in range(depth):
        h = keras.layers.Dense(width, use_bias=False)(h)
        h = layers_module.BatchNormalization()(h)
        h = keras.layers.Activation("relu")(h)
        h = layers_module.Dropout(0.3)(h)
    outputs = keras.layers.Dense(classes, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def _cnn(layers_module, side=28, classes=10, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((side, side, 1))
    h = inputs
    for filters in (16, 32):
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = layers_module.BatchNormalization()(h)
        h = keras.layers.Activation("relu")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = layers_module.Dropout(0.5)(h)
    outputs = keras.layers.Dense(classes, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def _ratio_for(build, x, y, batch_size, repeats):
    fns = {
        "kerasreg": epoch_fn(build(kerasreg), x, y, batch_size),
        "keras": epoch_fn(build(keras.layers), x, y, batch_size),
    }
    # Half the rounds in each order, so that neither side always runs first.
    first = interleaved(fns, repeats=repeats, warmup=1)
    second = interleaved(dict(reversed(list(fns.items()))), repeats=repeats, warmup=0)
    times = {name: first[name] + second[name] for name in fns}
    return ratio(times, "kerasreg", "keras"), {k: float(np.median(v)) for k, v in times.items()}


def run(quick=False):
    """Returns the layers' figures: train-step time ratios vs keras.layers."""
    repeats = 3 if quick else 7
    n_mlp = 2048 if quick else 8192
    n_cnn = 512 if quick else 2048
    rows = []

    x, y = mlp_data(n=n_mlp)
    value, med = _ratio_for(_mlp, x, y, 128, repeats)
    steps = n_mlp // 128
    rows.append(
        figure(
            "MLP train step (BN+Dropout) time, kerasreg / keras",
            value,
            "<= 1.05",
            f"{steps} steps/round, keras {1e3 * med['keras'] / steps:.2f} ms/step, jit",
        )
    )

    rng = np.random.default_rng(0)
    xc = rng.random((n_cnn, 28, 28, 1), dtype=np.float32)
    yc = rng.integers(0, 10, size=(n_cnn,))
    value, med = _ratio_for(_cnn, xc, yc, 64, repeats)
    steps = n_cnn // 64
    rows.append(
        figure(
            "CNN train step (BN+Dropout) time, kerasreg / keras",
            value,
            "<= 1.05",
            f"{steps} steps/round, keras {1e3 * med['keras'] / steps:.2f} ms/step, jit",
        )
    )
    return rows
