"""Shared pieces of the benchmarks: data, the benchmark MLP, interleaved timing.

Every figure is a ratio measured in one process, with the two sides run
alternately so that machine noise hits both alike.
"""

import gc
import time

import keras
import numpy as np


def mlp_data(n=8192, features=784, classes=10, seed=0):
    """Random float32 inputs and int labels shaped like flattened MNIST."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, features), dtype=np.float32)
    y = rng.integers(0, classes, size=(n,))
    return x, y


def mlp(features=784, classes=10, width=256, depth=2, seed=0):
    """The benchmark MLP: `depth` ReLU layers of `width` units, softmax out."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    h = inputs
    for _ in range(depth):
        h = keras.layers.Dense(width, activation="relu")(h)
    outputs = keras.layers.Dense(classes, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def epoch_fn(model, x, y, batch_size):
    """Compiles `model` (Adam, jit on) and returns a callable fitting one epoch."""
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        jit_compile=True,
    )

    def fit():
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)

    return fit


def interleaved(fns, repeats=5, warmup=1):
    """Times each zero-argument callable in `fns` (a dict), alternating them.

    Rounds alternate the order of the callables. As `timeit` does, the
    garbage collector runs before each timed call and
    is off during it, so that a collection started by one side's garbage
    does not land in the other side's time.

    Returns a dict name -> list of seconds (warm-up runs dropped).
    """
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(warmup + repeats):
        # Rounds alternate the order (A B, B A, ...): a cost that falls on
        # whichever side runs first or second in a round hits both alike.
        for name in names if r % 2 == 0 else names[::-1]:
            fn = fns[name]
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - start
            finally:
                gc.enable()
            if r >= warmup:
                times[name].append(elapsed)
    return times


def ratio(times, numerator, denominator):
    """Median over rounds of the per-round ratio numerator / denominator."""
    per_round = np.array(times[numerator]) / np.array(times[denominator])
    return float(np.median(per_round))


def figure(name, value, target, note=""):
    """One row of the results table."""
    return {"figure": name, "value": round(float(value), 4), "target": target, "note": note}
