"""ScheduleCallback(unit="step") vs the same schedule inside the optimizer.

Both fit the benchmark MLP with SGD and `kerasreg.schedules.CyclicCosine`;
one passes the schedule as the optimizer's `learning_rate=` (computed inside
the compiled step), the other gives the optimizer a float rate and lets
`ScheduleCallback(unit="step")` set it before every batch. Figure: fit-time
ratio callback / optimizer (target <= 1.05).
"""

import keras

from _common import figure
from _common import interleaved
from _common import mlp
from _common import mlp_data
from _common import ratio


def _model(learning_rate, x, y, batch_size):
    model = mlp()
    model.compile(
        keras.optimizers.SGD(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x[: 2 * batch_size], y[: 2 * batch_size], batch_size=batch_size, verbose=0)
    return model


def run(quick=False):
    from kerasreg.callbacks import ScheduleCallback
    from kerasreg.schedules import CyclicCosine

    n = 2048 if quick else 8192
    batch_size = 128
    x, y = mlp_data(n=n)
    schedule = CyclicCosine(0.05, total_steps=10**6, n_cycles=10)
    in_optimizer = _model(schedule, x, y, batch_size)
    with_callback = _model(0.05, x, y, batch_size)
    callback = ScheduleCallback(schedule, unit="step")

    def fit_optimizer():
        in_optimizer.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)

    def fit_callback():
        with_callback.fit(
            x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[callback]
        )

    times = interleaved(
        {"optimizer": fit_optimizer, "callback": fit_callback},
        repeats=5 if quick else 15,
    )
    steps = n // batch_size
    return [
        figure(
            "ScheduleCallback(unit='step') fit time / schedule in optimizer",
            ratio(times, "callback", "optimizer"),
            "<= 1.05",
            f"MLP 784-256-256-10, SGD, CyclicCosine, batch {batch_size}, "
            f"{steps} steps per fit",
        )
    ]
