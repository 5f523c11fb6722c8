"""GPU training throughput: a small CNN on Fashion-MNIST, kerasreg vs keras layers.

Only with `python benchmarks/run.py --gpu` (meant for a GPU machine with
`KERAS_BACKEND=jax`); a plain run skips this area. The CNN (two conv blocks
of Conv2D -> BatchNormalization -> ReLU twice, then max pooling; then
Dropout -> Dense(128) -> BatchNormalization -> ReLU -> Dropout -> softmax)
is built twice, identically except for where BatchNormalization and Dropout
come from, compiled with jit, and trained one epoch per timing round with
`model.fit`, the two sides alternating (`_common.interleaved`). Figures:
training images per second of each side (median round), and the median
per-round time ratio kerasreg / keras (target <= 1.05).

Without a GPU, `--gpu` still runs, on a few batches, and says so in each
row's note. The data are the Fashion-MNIST training images when
`kerasreg.datasets.load` finds them, else random arrays of the same shape.
"""

import keras
import numpy as np
from _common import epoch_fn
from _common import figure
from _common import interleaved
from _common import ratio

import kerasreg


def _has_gpu():
    if keras.backend.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def _data(n):
    try:
        (x, y), _, _ = kerasreg.datasets.load("fashion_mnist", seed=0)
        source = "Fashion-MNIST"
    except (ValueError, OSError):
        rng = np.random.default_rng(0)
        x = rng.random((n, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, size=(n,))
        source = "random 28x28 arrays"
    return x[:n], y[:n], source


def _cnn(layers_module, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    h = inputs
    for filters in (32, 64):
        for _ in range(2):
            h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
            h = layers_module.BatchNormalization()(h)
            h = keras.layers.Activation("relu")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = layers_module.Dropout(0.25)(h)
    h = keras.layers.Dense(128, use_bias=False)(h)
    h = layers_module.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    h = layers_module.Dropout(0.5)(h)
    outputs = keras.layers.Dense(10, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def run(quick=False, gpu=False):
    """Returns images/s of each side and their time ratio; [] without `gpu`."""
    if not gpu:
        print("  skipped: run with --gpu (meant for KERAS_BACKEND=jax on a GPU)")
        return []
    on_gpu = _has_gpu()
    batch_size = 256 if on_gpu else 64
    if on_gpu:
        n = 16384 if quick else 54000
    else:
        n = 512 if quick else 2048
    repeats = 3 if quick else 5
    x, y, source = _data(n)
    n = len(x) - len(x) % batch_size  # whole batches only
    x, y = x[:n], y[:n]
    fns = {
        "kerasreg": epoch_fn(_cnn(kerasreg), x, y, batch_size),
        "keras": epoch_fn(_cnn(keras.layers), x, y, batch_size),
    }
    # Half the rounds in each order, so that neither side always runs first.
    first = interleaved(fns, repeats=repeats, warmup=1)
    second = interleaved(dict(reversed(list(fns.items()))), repeats=repeats, warmup=0)
    times = {name: first[name] + second[name] for name in fns}
    device = "gpu" if on_gpu else "cpu (no GPU found: small run)"
    note = (
        f"{device}, {keras.backend.backend()}, {source}, {n} images/round, "
        f"batch {batch_size}, jit"
    )
    return [
        figure(
            "CNN training throughput, kerasreg layers (images/s)",
            n / np.median(times["kerasreg"]),
            "reference",
            note,
        ),
        figure(
            "CNN training throughput, keras layers (images/s)",
            n / np.median(times["keras"]),
            "reference",
            note,
        ),
        figure(
            "CNN epoch time, kerasreg / keras layers",
            ratio(times, "kerasreg", "keras"),
            "<= 1.05",
            note,
        ),
    ]
