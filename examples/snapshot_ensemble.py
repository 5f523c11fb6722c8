"""Snapshot ensembles ("train 1, get M for free") vs one model, same budget.

The same small network, the same initial weights and the same number of
epochs, trained three ways on Fashion-MNIST (--quick: scikit-learn digits):

1. single model: SGD with momentum and cosine annealing without restarts
   (CyclicCosine with one cycle, per step), the usual strong baseline;
2. SnapshotEnsemble (M=5): cyclic cosine with 5 restarts, one snapshot at
   the end of each cycle, predictions = mean of the 5 snapshots' probabilities;
3. the parameter average of the 5 snapshots (BatchNorm re-estimated on the
   training set), one model at inference.

Prints test accuracy and NLL as a table and writes it as JSON to --out.

Run: python examples/snapshot_ensemble.py [--quick] [--dataset fashion_mnist]
         [--epochs 20] [--snapshots 5] [--model {mlp,cnn}] [--lr 0.1]
         [--no-baseline] [--out snapshot_out]
"""

import argparse
import json
import os
import time

import keras
import numpy as np

import kerasreg
from kerasreg import metrics


def build(input_shape, classes, width, kind="mlp"):
    """An MLP (Dense + BatchNorm) or a small CNN (two Conv + BatchNorm blocks)."""
    if kind == "cnn":
        body = [keras.layers.Conv2D(32, 3, use_bias=False),
                keras.layers.BatchNormalization(), keras.layers.ReLU(),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(64, 3, use_bias=False),
                keras.layers.BatchNormalization(), keras.layers.ReLU(),
                keras.layers.MaxPooling2D(), keras.layers.Flatten()]
    else:
        body = [keras.layers.Flatten(), keras.layers.Dense(width, use_bias=False),
                keras.layers.BatchNormalization(), keras.layers.ReLU()]
    return keras.Sequential([
        keras.Input(input_shape), *body,
        keras.layers.Dense(width // 2, activation="relu"),
        keras.layers.Dense(classes, activation="softmax"),
    ])


def scores(probs, y):
    probs = np.asarray(probs, dtype="float64")
    return {
        "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        "nll": float(metrics.nll(y, probs)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="digits, few epochs (well under a minute)")
    parser.add_argument("--dataset", default=None,
                        choices=["digits", "fashion_mnist"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--snapshots", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="snapshot_out")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the single model (half the time)")
    args = parser.parse_args()
    dataset = args.dataset or ("digits" if args.quick else "fashion_mnist")
    epochs = args.epochs or (10 if args.quick else 20)

    (x, y), (xv, yv), (xt, yt) = kerasreg.datasets.load(dataset, seed=args.seed, verbose=1)
    classes = int(y.max()) + 1
    steps = int(np.ceil(len(x) / args.batch_size))
    print(f"{dataset}: {len(x)} train, {len(xt)} test; {epochs} epochs x "
          f"{steps} steps, backend {keras.backend.backend()}")

    keras.utils.set_random_seed(args.seed)
    initial = build(x.shape[1:], classes, args.width, args.model).get_weights()

    def fresh():
        model = build(x.shape[1:], classes, args.width, args.model)
        model.set_weights(initial)
        return model

    def optimizer():
        return keras.optimizers.SGD(args.lr, momentum=0.9, nesterov=True)

    results, seconds = {}, {}

    # 1. One model, cosine annealing without restarts (one cycle).
    if not args.no_baseline:
        keras.utils.set_random_seed(args.seed + 1)
        single = fresh()
        single.compile(optimizer(), "sparse_categorical_crossentropy")
        cosine = kerasreg.schedules.CyclicCosine(args.lr, epochs * steps, 1)
        start = time.perf_counter()
        single.fit(x, y, epochs=epochs, batch_size=args.batch_size, verbose=0,
                   validation_data=(xv, yv),
                   callbacks=[kerasreg.ScheduleCallback(cosine, unit="step")])
        seconds["single"] = time.perf_counter() - start
        results["single model (cosine, no restart)"] = scores(
            single.predict(xt, batch_size=1024, verbose=0), yt)
        print(f"single model: fit in {seconds['single']:.0f} s", flush=True)

    # 2. Snapshot ensemble: same model, same initial weights, same epochs.
    keras.utils.set_random_seed(args.seed + 1)
    se = kerasreg.SnapshotEnsemble(fresh(), n_snapshots=args.snapshots,
                                   initial_learning_rate=args.lr)
    se.compile(optimizer(), "sparse_categorical_crossentropy")
    start = time.perf_counter()
    se.fit(x, y, epochs=epochs, batch_size=args.batch_size, verbose=0,
           validation_data=(xv, yv))
    seconds["snapshot"] = time.perf_counter() - start
    print(f"snapshot ensemble: fit in {seconds['snapshot']:.0f} s", flush=True)
    members = [m.predict(xt, batch_size=1024, verbose=0) for m in se.snapshots]
    for i, p in enumerate(members):
        results[f"  snapshot {i + 1} (step {se.snapshot_steps[i]})"] = scores(p, yt)
    results[f"snapshot ensemble (M={args.snapshots}, mean)"] = scores(
        se.predict(xt, batch_size=1024, verbose=0), yt)

    # 3. The snapshots' parameters averaged, BatchNorm re-estimated.
    averaged = se.averaged(x, batch_size=args.batch_size)
    results["averaged snapshots (BN re-estimated)"] = scores(
        averaged.predict(xt, batch_size=1024, verbose=0), yt)

    width = max(len(k) for k in results)
    print(f"\n{'model'.ljust(width)}  test acc  test NLL")
    for name, r in results.items():
        print(f"{name.ljust(width)}  {r['accuracy']:8.4f}  {r['nll']:8.4f}")
    print("fit time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"snapshot_ensemble_{dataset}.json")
    with open(path, "w") as f:
        json.dump({"dataset": dataset, "epochs": epochs, "steps_per_epoch": steps,
                   "batch_size": args.batch_size, "learning_rate": args.lr,
                   "n_snapshots": args.snapshots, "width": args.width,
                   "model": args.model,
                   "backend": keras.backend.backend(), "fit_seconds": seconds,
                   "results": results}, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
