"""Deep ensemble, snapshot ensemble, MC dropout: accuracy and calibration.

The same MLP (784-256-128-10, BatchNorm and Dropout after each hidden
layer), the same SGD with Nesterov momentum and the same number of epochs,
on Fashion-MNIST split 50,000 train / 10,000 validation (the last 10,000 of
the shuffled training set) / the 10,000 test images (--quick: scikit-learn
digits, 3 epochs):

1. single model: cosine annealing without restarts (per step);
2. MC dropout: that same trained model, dropout on at test time, the mean
   of --mc-samples stochastic passes (`kerasreg.MCDropout`, no training);
3. `DeepEnsemble` (M=--members): M copies from M initializations, trained
   together in one fused train step, same schedule, mean of probabilities;
4. `SnapshotEnsemble` (M=--snapshots): one run with a cyclic cosine rate,
   a snapshot at the end of each cycle, mean of probabilities.

Each is scored raw and after temperature scaling (Guo et al. 2017), with T
fitted on the validation split (`kerasreg.calibration.optimal_temperature`):
test accuracy, NLL, ECE (15 bins), Brier score, the temperature, training
and test-prediction seconds. Prints a markdown table and the load average,
writes the table as JSON and two reliability diagrams (raw, scaled) to --out
(calibration_<dataset>_<backend>.json, .png and _scaled.png).

Run: python examples/calibration_fashion_mnist.py [--quick]
         [--dataset {digits,fashion_mnist}] [--epochs 15] [--members 5]
         [--snapshots 5] [--mc-samples 30] [--lr 0.1] [--seed 0]
         [--out calibration_out]
"""

import argparse
import json
import os
import platform
import time

import keras
import numpy as np

import kerasreg
from kerasreg import metrics
from kerasreg.calibration import apply_temperature
from kerasreg.calibration import optimal_temperature
from kerasreg.calibration import plot_reliability

# Fashion-MNIST: 10,000 of the 60,000 training images for validation.
VALIDATION_SPLIT = 1 / 6
PREDICT_BATCH = 1024


def build(input_shape, classes, dropout):
    """784-256-128-classes MLP, BatchNorm and Dropout after each hidden layer."""
    hidden = []
    for units in (256, 128):
        hidden += [keras.layers.Dense(units, use_bias=False),
                   kerasreg.BatchNormalization(), keras.layers.ReLU(),
                   kerasreg.Dropout(dropout)]
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                             *hidden,
                             keras.layers.Dense(classes, activation="softmax")])


def scores(y, probs):
    probs = np.asarray(probs, dtype="float64")
    return {
        "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        "nll": float(metrics.nll(y, probs)),
        "ece": float(metrics.expected_calibration_error(y, probs)),
        "brier": float(metrics.brier(y, probs)),
    }


def timed_predict(model, x):
    start = time.perf_counter()
    probs = model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
    return np.asarray(probs, dtype="float64"), time.perf_counter() - start


def markdown(rows):
    lines = [
        "| method | test acc | NLL | NLL (T) | ECE | ECE (T) | Brier | Brier (T) "
        "| T | fit s | predict s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        raw, cal = r["raw"], r["scaled"]
        lines.append(
            f"| {name} | {raw['accuracy']:.4f} | {raw['nll']:.4f} | "
            f"{cal['nll']:.4f} | {raw['ece']:.4f} | {cal['ece']:.4f} | "
            f"{raw['brier']:.4f} | {cal['brier']:.4f} | {r['temperature']:.3f} | "
            f"{r['fit_seconds']:.0f} | {r['predict_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="digits, 3 epochs, 5 MC samples (seconds)")
    parser.add_argument("--dataset", default=None,
                        choices=["digits", "fashion_mnist"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--snapshots", type=int, default=5)
    parser.add_argument("--mc-samples", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="calibration_out")
    args = parser.parse_args()
    dataset = args.dataset or ("digits" if args.quick else "fashion_mnist")
    epochs = args.epochs or (3 if args.quick else 15)
    mc_samples = args.mc_samples or (5 if args.quick else 30)

    (x, y), (xv, yv), (xt, yt) = kerasreg.datasets.load(
        dataset, validation_split=VALIDATION_SPLIT, seed=args.seed, verbose=1)
    classes = int(y.max()) + 1
    steps = int(np.ceil(len(x) / args.batch_size))
    backend = keras.backend.backend()
    load_before = os.getloadavg()
    print(f"{dataset}: {len(x)} train, {len(xv)} validation, {len(xt)} test; "
          f"{epochs} epochs x {steps} steps, backend {backend}, "
          f"load average {load_before[0]:.2f}", flush=True)

    def fresh():
        return build(x.shape[1:], classes, args.dropout)

    def compile_sgd(model):
        model.compile(keras.optimizers.SGD(args.lr, momentum=0.9, nesterov=True),
                      "sparse_categorical_crossentropy")
        return model

    def cosine():
        # One cycle of the cyclic cosine rate: annealing without restarts.
        schedule = kerasreg.schedules.CyclicCosine(args.lr, epochs * steps, 1)
        return [kerasreg.ScheduleCallback(schedule, unit="step")]

    def fit(model, callbacks=()):
        start = time.perf_counter()
        model.fit(x, y, epochs=epochs, batch_size=args.batch_size, verbose=0,
                  callbacks=list(callbacks))
        return time.perf_counter() - start

    trained = {}  # method -> (model, fit seconds)

    keras.utils.set_random_seed(args.seed)
    single = compile_sgd(fresh())
    trained["single model"] = (single, fit(single, cosine()))
    print(f"single model: fit in {trained['single model'][1]:.0f} s", flush=True)

    trained[f"MC dropout ({mc_samples} passes)"] = (
        kerasreg.MCDropout(single, n_samples=mc_samples), trained["single model"][1])

    deep = compile_sgd(kerasreg.DeepEnsemble(fresh, n_members=args.members,
                                             seed=args.seed + 1))
    name = f"DeepEnsemble (M={args.members}, fused)"
    trained[name] = (deep, fit(deep, cosine()))
    print(f"deep ensemble: fit in {trained[name][1]:.0f} s", flush=True)

    keras.utils.set_random_seed(args.seed + 100)
    se = compile_sgd(kerasreg.SnapshotEnsemble(
        fresh(), n_snapshots=args.snapshots, initial_learning_rate=args.lr))
    name = f"SnapshotEnsemble (M={args.snapshots})"
    trained[name] = (se, fit(se))
    print(f"snapshot ensemble: fit in {trained[name][1]:.0f} s", flush=True)

    rows, raw_probs, scaled_probs = {}, {}, {}
    for name, (model, fit_seconds) in trained.items():
        p_val, _ = timed_predict(model, xv)
        p_test, predict_seconds = timed_predict(model, xt)
        t = optimal_temperature(yv, p_val)
        p_scaled = apply_temperature(p_test, t)
        raw_probs[name], scaled_probs[f"{name}, T={t:.2f}"] = p_test, p_scaled
        rows[name] = {"raw": scores(yt, p_test), "scaled": scores(yt, p_scaled),
                      "temperature": t, "fit_seconds": fit_seconds,
                      "predict_seconds": predict_seconds}

    load_after = os.getloadavg()
    table = markdown(rows)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"\n{table}\n\n(T) = after temperature scaling, T fitted on the "
          f"{len(xv)} validation images; fit s: training seconds (MC dropout: "
          f"the single model's); predict s: the {len(xt)} test images.")
    print(f"{time.strftime('%Y-%m-%d')}, {machine}, backend {backend}, load "
          f"average (1/5/15 min) before {load_before[0]:.2f} / "
          f"{load_before[1]:.2f} / {load_before[2]:.2f}, after "
          f"{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}")

    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"calibration_{dataset}_{backend}")
    for probs, suffix, title in (
            (raw_probs, "", "raw"),
            (scaled_probs, "_scaled", "temperature-scaled")):
        path = plot_reliability(
            yt, probs, f"{stem}{suffix}.png",
            title=f"{dataset}, {title} (test set, backend {backend})")
        print(f"wrote {path}")
    with open(f"{stem}.json", "w") as f:
        json.dump({"dataset": dataset, "epochs": epochs, "steps_per_epoch": steps,
                   "batch_size": args.batch_size, "learning_rate": args.lr,
                   "dropout": args.dropout, "members": args.members,
                   "snapshots": args.snapshots, "mc_samples": mc_samples,
                   "seed": args.seed, "backend": backend, "machine": machine,
                   "date": time.strftime("%Y-%m-%d %H:%M"),
                   "load_average_before": load_before,
                   "load_average_after": load_after,
                   "results": rows}, f, indent=2)
    print(f"wrote {stem}.json")


if __name__ == "__main__":
    main()
