"""UpdateRatioMonitor cost: fit time with the monitor relative to a plain fit.

`UpdateRatioMonitor` measures inside the compiled train step (under
`keras.ops.cond` on the optimizer's `iterations`) and reads its buffer once
per epoch: no per-batch callback, no weight read between steps, no jax state
sync; on jax the steps where no measurement is due run a compiled step
without the monitor (see `_in_step._Dispatch`). Each variant trains the benchmark MLP
(`_common.mlp`) for one epoch on the same data, the variants alternating in
each round so that machine noise hits all alike; each is fitted once before
timing, so compilation is excluded. Figures: `UpdateRatioMonitor(every=50)`
fit / plain fit (target <= 1.05), and `every=1` (a measurement at every
step, for reference).
"""

import keras
from _common import figure
from _common import interleaved
from _common import mlp
from _common import mlp_data
from _common import ratio

from kerasreg.callbacks import UpdateRatioMonitor


def run(quick=False):
    n = 8192 if quick else 16384
    x, y = mlp_data(n=n)
    batch_size = 64

    def compiled():
        model = mlp()
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss="sparse_categorical_crossentropy",
        )
        return model

    def fit(model, callbacks=None):
        def run_fit():
            model.fit(
                x, y, batch_size=batch_size, epochs=1, verbose=0,
                shuffle=False, callbacks=callbacks,
            )

        return run_fit

    # Wide bounds: the monitor must not warn during the benchmark.
    fns = {
        "plain": fit(compiled()),
        "every50": fit(compiled(), [UpdateRatioMonitor(every=50, low=1e-12, high=1e12)]),
        "every1": fit(compiled(), [UpdateRatioMonitor(every=1, low=1e-12, high=1e12)]),
    }
    times = interleaved(fns, repeats=5 if quick else 21, warmup=1)
    steps = n // batch_size
    note = f"{steps} steps/epoch, batch {batch_size}"
    return [
        figure(
            "UpdateRatioMonitor(every=50) fit / plain fit",
            ratio(times, "every50", "plain"),
            "<= 1.05",
            note,
        ),
        figure(
            "UpdateRatioMonitor(every=1) fit / plain fit",
            ratio(times, "every1", "plain"),
            "reference",
            note,
        ),
    ]
