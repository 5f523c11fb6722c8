"""Weight EMA (Polyak averaging): evaluate a moving average of the weights.

cs231n: "maintain a second copy of the network weights in memory that keeps
an exponentially decaying sum of previous weights"; evaluating with it is
almost always a little better than with the last weights, most of all when
the learning rate is still large and the weights jitter around a minimum.

The same MLP (kerasreg BatchNormalization + Dropout) is trained twice from the
same seed with SGD at a constant, fairly large rate: once plain, once with
`WeightEMA(warmup=True)` (updated inside the compiled train step). With
`swap_on_evaluate=True` the second run's validation uses the EMA weights, so
the two runs' `val_loss` columns compare raw and averaged weights epoch by
epoch. At the end both are scored on the test set, the averaged model
(`ema.averaged_model()`, BatchNorm statistics averaged too) is saved to
`--out/ema_model.keras`, and `WeightEMA(every=10)` shows the cheaper variant.

Run: python examples/weight_ema.py [--quick] [--out DIR]
                                   [--dataset digits|fashion_mnist]
"""

import argparse
import os

import keras
import numpy as np

import kerasreg
from kerasreg import datasets
from kerasreg import metrics


def build(shape, classes=10, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape),
        keras.layers.Flatten(),
        keras.layers.Dense(256, use_bias=False, kernel_initializer=kerasreg.HeNormal()),
        kerasreg.BatchNormalization(),
        keras.layers.Activation("relu"),
        kerasreg.Dropout(0.2),
        keras.layers.Dense(classes, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def score(name, model, x, y):
    probs = model.predict(x, batch_size=1024, verbose=0)
    acc = float(np.mean(np.argmax(probs, -1) == y))
    print(f"  {name:<24} test acc {acc:.4f}  NLL {metrics.nll(y, probs):.4f}  "
          f"ECE {metrics.expected_calibration_error(y, probs):.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits, 3 epochs")
    parser.add_argument("--dataset", choices=["digits", "fashion_mnist"],
                        default="digits")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default 20 (3 with --quick)")
    parser.add_argument("--out", default="weight_ema_out",
                        help="folder for ema_model.keras")
    args = parser.parse_args()
    epochs = args.epochs or (3 if args.quick else 20)
    (x, y), (xv, yv), (xt, yt) = datasets.load(args.dataset, seed=0, verbose=1)
    if args.quick:
        x, y = x[:800], y[:800]
    batch_size = 64
    steps = epochs * -(-len(x) // batch_size)
    # Average over roughly the last 10% of the steps (at least 10 steps).
    decay = min(0.999, max(0.9, 1 - 10 / steps))
    fit_args = dict(validation_data=(xv, yv), epochs=epochs,
                    batch_size=batch_size, verbose=0)

    plain = build(x.shape[1:])
    h_plain = plain.fit(x, y, **fit_args).history
    model = build(x.shape[1:])
    ema = kerasreg.WeightEMA(decay=decay, warmup=True, swap_on_evaluate=True)
    h_ema = model.fit(x, y, callbacks=[ema], **fit_args).history

    print(f"{args.dataset}: {len(x)} examples, {epochs} epochs, {steps} steps, "
          f"EMA decay {decay:.4f} (with warmup)")
    print(f"  {'epoch':>5}  {'val loss, raw':>13}  {'EMA':>8}  "
          f"{'val acc, raw':>12}  {'EMA':>7}")
    for e in range(epochs):
        print(f"  {e + 1:>5}  {h_plain['val_loss'][e]:13.4f}  "
              f"{h_ema['val_loss'][e]:8.4f}  {h_plain['val_accuracy'][e]:12.4f}  "
              f"{h_ema['val_accuracy'][e]:7.4f}")

    print("\ntest set:")
    averaged = ema.averaged_model()
    score("raw weights (plain run)", plain, xt, yt)
    score("raw weights (EMA run)", model, xt, yt)  # the model keeps raw weights
    score("EMA weights", averaged, xt, yt)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ema_model.keras")
    averaged.save(path)
    reloaded = keras.saving.load_model(path)
    same = np.allclose(reloaded.predict(xt[:32], verbose=0),
                       averaged.predict(xt[:32], verbose=0), atol=1e-6)
    print(f"saved {path} (reloaded predictions match: {same})")

    model = build(x.shape[1:])
    cheap = kerasreg.WeightEMA(decay=decay ** 10, every=10, warmup=True)
    model.fit(x, y, callbacks=[cheap], **fit_args)
    score("EMA weights, every=10", cheap.averaged_model(), xt, yt)


if __name__ == "__main__":
    main()
