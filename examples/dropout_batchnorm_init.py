"""The fish book's chapter-6 experiments with kerasreg layers and initializers.

Deep Learning from Scratch ("the fish book"), chapter 6, on small data
(Fashion-MNIST, or scikit-learn digits with --quick), plain SGD as in the book:

1. Weight initialization: a 5-layer, 100-unit ReLU net whose hidden layers
   are initialized with std 1, std 0.01 (`ScaledNormal`), Xavier and He;
   training loss per epoch.
   Std 0.01 barely learns (vanishing signal), He learns fastest.
2. Batch normalization: the same net with and without `BatchNormalization`
   at several init scales; final training accuracy. Without BN the result
   depends heavily on the scale; with BN it hardly does.
3. Dropout vs overfitting: a 7-layer net on 300 training examples, with and
   without `Dropout(0.2)`; training vs test accuracy. Without dropout the net
   fits the 300 examples almost perfectly and the gap to test is large;
   dropout narrows it.
Writes `init_loss.png` (experiment 1) to --out.

Run: python examples/dropout_batchnorm_init.py [--quick] [--out DIR] [--dataset D]
"""

import argparse
import os

import keras
import numpy as np

import kerasreg
from kerasreg import datasets


# Plain SGD as in the book (lr 0.01, batches of 100 on MNIST); digits, with
# 64 inputs and fewer examples, needs a larger rate for as many epochs.
LEARNING_RATE = {"fashion_mnist": 0.01, "digits": 0.05}
BATCH_SIZE = {"fashion_mnist": 100, "digits": 50}
model_data = {"name": "digits"}


def load(name, quick):
    try:
        (x, y), _, (xt, yt) = datasets.load(name, seed=0)
    except (ValueError, OSError) as e:
        print(f"{name} unavailable ({e}); using digits")
        name = "digits"
        (x, y), _, (xt, yt) = datasets.load(name, seed=0)
    model_data["name"] = name
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    n, n_test = (600, 300) if quick else (1000, 2000)
    return x[:n], y[:n], xt[:n_test], yt[:n_test]


def net(features, init, depth=5, bn=False, dropout=0.0, seed=0):
    """`depth` Dense(100) -> [BN] -> ReLU -> [Dropout] blocks; Glorot softmax out."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((features,))]
    for _ in range(depth):
        layers.append(keras.layers.Dense(100, kernel_initializer=init()))
        if bn:
            layers.append(kerasreg.BatchNormalization())
        layers.append(keras.layers.Activation("relu"))
        if dropout:
            layers.append(kerasreg.Dropout(dropout))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.SGD(LEARNING_RATE[model_data["name"]]),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model, x, y, epochs):
    with np.errstate(all="ignore"):
        return model.fit(x, y, epochs=epochs, verbose=0,
                         batch_size=BATCH_SIZE[model_data["name"]]).history


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="digits, fewer scales and epochs")
    parser.add_argument("--dataset", choices=["digits", "fashion_mnist"],
                        default=None, help="default fashion_mnist (--quick: digits)")
    parser.add_argument("--out", default="fish_book_out", help="folder for plots")
    args = parser.parse_args()
    name = args.dataset or ("digits" if args.quick else "fashion_mnist")
    x, y, xt, yt = load(name, args.quick)
    name = model_data["name"]
    features = x.shape[1]
    os.makedirs(args.out, exist_ok=True)
    epochs = 6 if args.quick else 40

    print(f"\n== 1. weight init, 5 x 100 ReLU, SGD({LEARNING_RATE[name]}), "
          f"{len(x)} {name} examples ==")
    inits = {
        "std 1": lambda: kerasreg.ScaledNormal(1.0),
        "std 0.01": lambda: kerasreg.ScaledNormal(0.01),
        "Xavier": kerasreg.XavierNormal,
        "He": kerasreg.HeNormal,
    }
    curves = {}
    for label, init in inits.items():
        curves[label] = fit(net(features, init), x, y, epochs)["loss"]
        shown = [curves[label][i] for i in (0, epochs // 2, epochs - 1)]
        print(f"  {label:<9} training loss at epochs 1, {epochs // 2 + 1}, "
              f"{epochs}: " + "  ".join(f"{v:9.4g}" for v in shown))
    try:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        for label, c in curves.items():
            ax.plot(np.arange(1, epochs + 1), np.minimum(c, 10), label=label)
        ax.set(xlabel="epoch", ylabel="training loss (clipped at 10)",
               title=f"weight init, 5-layer ReLU net, {name}")
        ax.legend()
        fig.savefig(os.path.join(args.out, "init_loss.png"), dpi=100)
        print(f"  wrote {os.path.join(args.out, 'init_loss.png')}")
    except ImportError:
        print("  (matplotlib not installed: no plot)")

    print("\n== 2. with / without BatchNormalization, by hidden init std ==")
    stds = [1.0, 0.1] if args.quick else list(np.logspace(0, -3, 7))
    print(f"  {'init std':>9}  {'train acc, no BN':>16}  {'with BN':>8}")
    for std in stds:
        accs = []
        for bn in (False, True):
            model = net(features, lambda: kerasreg.ScaledNormal(float(std)), bn=bn)
            fit(model, x, y, epochs)
            accs.append(accuracy(model, x, y))
        print(f"  {std:9.4g}  {accs[0]:16.3f}  {accs[1]:8.3f}")

    n_small = 300
    epochs_small = 40 if args.quick else 300
    print(f"\n== 3. dropout vs overfitting: 7-layer net, {n_small} examples, "
          f"{epochs_small} epochs ==")
    for rate in (0.0, 0.2):
        model = net(features, kerasreg.HeNormal, depth=6, dropout=rate)
        fit(model, x[:n_small], y[:n_small], epochs_small)
        train_acc = accuracy(model, x[:n_small], y[:n_small])
        test_acc = accuracy(model, xt, yt)
        print(f"  dropout {rate:.1f}: train acc {train_acc:.3f}  test acc "
              f"{test_acc:.3f}  gap {train_acc - test_acc:.3f}")


if __name__ == "__main__":
    main()
