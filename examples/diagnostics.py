"""Training diagnostics: the fish book's activation histograms, cs231n's sanity checks.

1. The fish-book experiment: 1000 (--quick: 200) Gaussian inputs through a
   5-layer, 100-unit network, sigmoid / tanh / ReLU, weights of std 1, 0.01,
   Xavier (1/sqrt(n)) and He (sqrt(2/n)); one PNG of per-layer activation
   (and gradient) histograms per combination, saturation flags printed.
2. The cs231n sanity checks (initial loss ~ ln(10), regularization raises
   the loss, overfit 20 examples) on a Fashion-MNIST MLP (--quick: digits),
   then a short training run with UpdateRatioMonitor and overfitting_report.

Run: python examples/diagnostics.py [--quick] [--out DIR]
"""

import argparse
import math
import os
import warnings

import keras
import numpy as np

from kerasreg import datasets
from kerasreg.callbacks import ActivationHistograms, UpdateRatioMonitor
from kerasreg.diagnostics import overfitting_report, sanity_check


def load_data(quick):
    """Digits with --quick, Fashion-MNIST otherwise: flattened, in [0, 1]."""
    name = "digits" if quick else "fashion_mnist"
    (x, y), _, (xt, yt) = datasets.load(name, verbose=1)
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    return name, x[:10000], y[:10000], xt[:2000], yt[:2000]


def fish_book(out_dir, quick):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200 if quick else 1000, 100)).astype("float32")
    y = rng.integers(0, 10, size=len(x))
    scales = {
        "std1": 1.0,
        "std0.01": 0.01,
        "xavier": 1 / math.sqrt(100),
        "he": math.sqrt(2 / 100),
    }
    print(f"{'activation':<10} {'init':<8} flagged layers")
    for activation in ("sigmoid", "tanh", "relu"):
        for init_name, std in scales.items():
            keras.utils.set_random_seed(0)
            init = keras.initializers.RandomNormal(stddev=std)
            layers = [
                keras.layers.Dense(100, activation=activation,
                                   kernel_initializer=init, name=f"layer{i + 1}")
                for i in range(5)
            ]
            model = keras.Sequential(
                [keras.Input((100,))] + layers
                + [keras.layers.Dense(10, activation="softmax", name="out")]
            )
            model.compile("sgd", "sparse_categorical_crossentropy")
            png_dir = os.path.join(out_dir, f"{activation}_{init_name}")
            hist = ActivationHistograms((x, y), png_dir=png_dir)
            hist.set_model(model)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flags = hist.capture(step=0)
            names = ", ".join(f"{n} {kind} {f:.0%}" for n, kind, f in flags)
            print(f"{activation:<10} {init_name:<8} {names or '-'}")
    print(f"histogram PNGs under {out_dir}/<activation>_<init>/")


def mlp(features, dropout=0.2, l2=1e-4):
    model = keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(128, activation="relu",
                           kernel_regularizer=keras.regularizers.L2(l2)),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(64, activation="relu",
                           kernel_regularizer=keras.regularizers.L2(l2)),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="digits, small samples, few epochs")
    parser.add_argument("--out", default="diagnostics_out")
    args = parser.parse_args()
    print(f"backend: {keras.backend.backend()}")

    print("\n== 1. activation histograms (fish book, 5 x 100 units) ==")
    fish_book(os.path.join(args.out, "histograms"), args.quick)

    name, x, y, xt, yt = load_data(args.quick)
    print(f"\n== 2. sanity checks on a {name} MLP ==")
    keras.utils.set_random_seed(0)
    report = sanity_check(mlp(x.shape[1]), x, y, n_overfit=20,
                          epochs=150 if args.quick else 200)
    print(report)

    print("\n== 3. babysitting a training run ==")
    keras.utils.set_random_seed(0)
    model = mlp(x.shape[1])
    monitor = UpdateRatioMonitor(every=20,
                                 log_dir=os.path.join(args.out, "tensorboard"))
    history = model.fit(x, y, validation_data=(xt, yt), batch_size=64,
                        epochs=4 if args.quick else 15, verbose=0,
                        callbacks=[monitor])
    ratios = [f"{r:.1e}" for r in history.history["update_ratio"]]
    print(f"median update/weight ratio per epoch (want ~1e-3): {ratios}")
    overfitting_report(history)


if __name__ == "__main__":
    main()
