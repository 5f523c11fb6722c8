"""Learning-rate schedules: the cs231n annealing recipes and snapshot cosines.

1. Plots the four kerasreg schedules over one training run, the three
   annealing recipes of the cs231n notes -- step decay ("halve the rate every
   few epochs"), exponential decay `lr0 * exp(-k t)` and 1/t decay
   `lr0 / (1 + k t)` -- and the cyclic cosine of snapshot ensembles, plus a
   linear `Warmup` in front of the exponential one (`schedules.png`).
2. Trains the same small MLP on digits once per schedule (SGD + momentum,
   the schedule applied per epoch by `ScheduleCallback`) and prints the
   final validation accuracy of each, next to a constant rate.

Run: python examples/schedules.py [--quick] [--out DIR]
"""

import argparse
import os

import keras
import numpy as np

from kerasreg import datasets
from kerasreg.callbacks import ScheduleCallback
from kerasreg.schedules import CyclicCosine
from kerasreg.schedules import ExponentialDecay
from kerasreg.schedules import InverseTimeDecay
from kerasreg.schedules import StepDecay
from kerasreg.schedules import Warmup
from kerasreg.schedules import plot

LR0 = 0.05


def make_schedules(epochs):
    """The schedules compared, by name (also their legend label); `t` is the epoch."""
    schedules = {
        "step (x0.5 every epochs/4)": StepDecay(
            LR0, drop_factor=0.5, drop_every=max(1, epochs // 4)
        ),
        "exponential": ExponentialDecay(LR0, k=3.0 / epochs),
        "1/t": InverseTimeDecay(LR0, k=10.0 / epochs),
        "cyclic cosine": CyclicCosine(LR0, epochs, n_cycles=min(4, epochs)),
        "warmup + exponential": Warmup(
            ExponentialDecay(LR0, k=3.0 / epochs), warmup_steps=max(1, epochs // 10)
        ),
    }
    for name, schedule in schedules.items():
        schedule.name = name
    return schedules


def constant(t):
    return LR0 + 0.0 * np.asarray(t, dtype="float64")


constant.name = "constant"


def train(x, y, x_val, y_val, schedule, epochs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(x.shape[1:]),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(LR0, momentum=0.9),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, validation_data=(x_val, y_val), epochs=epochs,
                        batch_size=64, verbose=0,
                        callbacks=[ScheduleCallback(schedule)])
    return history.history


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 epochs on 600 examples, 3 schedules trained")
    parser.add_argument("--out", default="schedules_out",
                        help="folder for schedules.png")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per run (default 30, 3 with --quick)")
    args = parser.parse_args()
    epochs = args.epochs or (3 if args.quick else 30)
    os.makedirs(args.out, exist_ok=True)

    schedules = make_schedules(epochs)
    # The plot uses the full-run length, so that the shapes show in --quick too.
    shown = make_schedules(30)
    path = os.path.join(args.out, "schedules.png")
    plot([constant, *shown.values()], steps=30, path=path)
    print(f"wrote {path}")
    print("rates at t = 0, 1/4, 1/2, 3/4 of the run (30 epochs):")
    for name, schedule in shown.items():
        rates = [float(schedule(t)) for t in (0, 7, 15, 22)]
        print(f"  {name:<28}" + "".join(f"{r:9.4f}" for r in rates))

    (x, y), (x_val, y_val), _ = datasets.load("digits", seed=0, verbose=1)
    if args.quick:
        x, y = x[:600], y[:600]
        trained = ["step (x0.5 every epochs/4)", "cyclic cosine"]
    else:
        trained = list(schedules)
    runs = {"constant": constant, **{n: schedules[n] for n in trained}}
    print(f"\nfinal validation accuracy after {epochs} epochs (digits MLP):")
    for name, schedule in runs.items():
        h = train(x, y, x_val, y_val, schedule, epochs)
        print(f"  {name:<28} val acc {h['val_accuracy'][-1]:.4f}  "
              f"val loss {h['val_loss'][-1]:.4f}  "
              f"last lr {h['learning_rate'][-1]:.5f}")


if __name__ == "__main__":
    main()
