"""Ensembles: a bootstrap ensemble and a multi-head (shared-trunk) ensemble.

CS 182, lecture 7: the errors of independently trained models are partly
independent, so averaging their predicted probabilities is more accurate
and better calibrated than any one of them.

1. `fit_bootstrap`: M small MLPs, each trained on a resample of the training
   set drawn with replacement (about 36.8% of the rows left out of each: the
   member's out-of-bag validation set), combined as an `Ensemble`.
2. `MultiHeadEnsemble`: one trunk computed once, M independently initialized
   heads, trained together (the heads' losses summed); the cheap version
   when a full ensemble costs too much.
For both, `kerasreg.ensembles.report` prints accuracy, NLL, ECE and Brier
score of every member and of the mean / vote / geometric combinations (and
the parameter-averaged model, where it applies), with the members'
disagreement; the reports go to `--out/ensembles.json`.

Run: python examples/multi_head_and_bootstrap.py [--quick] [--out DIR]
                                                 [--dataset digits|fashion_mnist]
"""

import argparse
import json
import os

import keras
import numpy as np

from kerasreg import MultiHeadEnsemble
from kerasreg import datasets
from kerasreg import fit_bootstrap
from kerasreg.ensembles import report


def member(shape, classes=10):
    """One bootstrap member: a small MLP, compiled."""
    model = keras.Sequential([
        keras.Input(shape),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(classes, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def multi_head(shape, n_heads, classes=10, seed=0):
    keras.utils.set_random_seed(seed)
    trunk = keras.Sequential([
        keras.Input(shape),
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
    ])
    model = MultiHeadEnsemble(
        trunk,
        lambda: keras.layers.Dense(classes, activation="softmax"),
        n_heads=n_heads,
    )
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 members / heads, 3 epochs, 800 examples")
    parser.add_argument("--dataset", choices=["digits", "fashion_mnist"],
                        default="digits")
    parser.add_argument("--members", type=int, default=None,
                        help="members and heads (default 5, 3 with --quick)")
    parser.add_argument("--out", default="ensembles_out",
                        help="folder for ensembles.json")
    args = parser.parse_args()
    m = args.members or (3 if args.quick else 5)
    epochs = 3 if args.quick else 20
    (x, y), (xv, yv), (xt, yt) = datasets.load(args.dataset, seed=0, verbose=1)
    if args.quick:
        x, y = x[:800], y[:800]
    fit_args = dict(epochs=epochs, batch_size=64)

    print(f"\n== 1. bootstrap ensemble: {m} members, {epochs} epochs ==")
    ensemble = fit_bootstrap(lambda: member(x.shape[1:]), x, y, n_members=m,
                             seed=0, **fit_args)
    for i, (oob, model) in enumerate(zip(ensemble.oob_indices, ensemble.members)):
        probs = model.predict(x[oob], verbose=0)
        acc = float(np.mean(np.argmax(probs, -1) == y[oob]))
        print(f"  member {i}: {len(oob)} out-of-bag rows "
              f"({len(oob) / len(x):.1%}; expected 36.8%), OOB acc {acc:.4f}")
    bootstrap_report = report(ensemble, xt, yt)
    print(bootstrap_report)

    print(f"\n== 2. multi-head ensemble: one trunk, {m} heads ==")
    model = multi_head(x.shape[1:], m)
    model.fit(x, y, validation_data=(xv, yv), verbose=0, **fit_args)
    trunk_params = model.trunk.count_params()
    head_params = sum(h.count_params() for h in model.heads)
    print(f"  parameters: trunk {trunk_params} (once), heads {head_params} "
          f"({m} x {head_params // m})")
    heads_report = report(model, xt, yt)
    print(heads_report)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ensembles.json")
    with open(path, "w") as f:
        json.dump({"bootstrap": bootstrap_report.to_dict(),
                   "multi_head": heads_report.to_dict()}, f, indent=2)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
