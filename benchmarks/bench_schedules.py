"""Per-step rates and snapshots in the compiled step vs the optimizer's own.

Two figures, both on the MLP 784-256-128-10 with plain SGD, batch 128, one
epoch per fit, the two sides run alternately in one process:

* `ScheduleCallback(unit="step")` (the optimizer has a float rate; the
  callback writes the epoch's rates into a table that the wrapped train step
  reads) against the same `kerasreg.schedules.CyclicCosine` passed as the
  optimizer's `learning_rate=` (computed inside the compiled step).
* `SnapshotEnsemble.fit` (cyclic cosine rate through the same table, and a
  copy of the weights into a snapshot slot inside the step at each cycle
  end) against a plain `fit` of the same MLP with `CyclicCosine` in the
  optimizer.

Figure: fit-time ratio (target <= 1.05 each).
"""

import keras

from _common import figure
from _common import interleaved
from _common import mlp_data
from _common import ratio

BATCH_SIZE = 128
LEARNING_RATE = 0.05
N_SNAPSHOTS = 4


def _mlp(seed=0):
    """The MLP 784-256-128-10 (ReLU, softmax output)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def _compile(model, learning_rate):
    model.compile(
        keras.optimizers.SGD(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _schedule_figure(x, y, repeats):
    from kerasreg.callbacks import ScheduleCallback
    from kerasreg.schedules import CyclicCosine

    schedule = CyclicCosine(LEARNING_RATE, total_steps=10**6, n_cycles=10)
    in_optimizer = _compile(_mlp(), schedule)
    with_callback = _compile(_mlp(), LEARNING_RATE)
    callback = ScheduleCallback(schedule, unit="step")

    def fit_optimizer():
        in_optimizer.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)

    def fit_callback():
        with_callback.fit(
            x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0,
            callbacks=[callback],
        )

    times = interleaved(
        {"optimizer": fit_optimizer, "callback": fit_callback}, repeats=repeats
    )
    steps = len(x) // BATCH_SIZE
    return figure(
        "ScheduleCallback(unit='step') fit time / schedule in optimizer",
        ratio(times, "callback", "optimizer"),
        "<= 1.05",
        f"MLP 784-256-128-10, SGD, CyclicCosine, batch {BATCH_SIZE}, "
        f"{steps} steps per fit",
    )


def _snapshot_figure(x, y, repeats):
    from kerasreg import SnapshotEnsemble
    from kerasreg.schedules import CyclicCosine

    steps = len(x) // BATCH_SIZE
    schedule = CyclicCosine(LEARNING_RATE, total_steps=steps, n_cycles=N_SNAPSHOTS)
    plain = _compile(_mlp(), schedule)
    ensemble = _compile(
        SnapshotEnsemble(
            _mlp(), n_snapshots=N_SNAPSHOTS, initial_learning_rate=LEARNING_RATE
        ),
        LEARNING_RATE,
    )

    def fit_plain():
        plain.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)

    def fit_ensemble():
        ensemble.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)

    times = interleaved(
        {"plain": fit_plain, "snapshot": fit_ensemble}, repeats=repeats
    )
    return figure(
        "SnapshotEnsemble.fit time / plain fit with CyclicCosine in optimizer",
        ratio(times, "snapshot", "plain"),
        "<= 1.05",
        f"MLP 784-256-128-10, SGD, {N_SNAPSHOTS} snapshots per fit, batch "
        f"{BATCH_SIZE}, {steps} steps per fit",
    )


def run(quick=False):
    n = 2048 if quick else 8192
    x, y = mlp_data(n=n)
    repeats = 5 if quick else 31
    return [_schedule_figure(x, y, repeats), _snapshot_figure(x, y, repeats)]
