"""Six Keras optimizers on f(x, y) = x**2 / 20 + y**2, the fish book's figure.

"Deep Learning from Scratch" (chapter 6, see the lecture notes 004) starts
every optimizer at (x, y) = (-7, 2) on this stretched bowl: the gradient is
large along y and small along x, so it mostly does not point at the minimum
(0, 0). Plain SGD zig-zags across the valley; Momentum rolls like a ball and
damps the zig-zag; AdaGrad and RMSprop scale each coordinate by its own
gradient history; Adam combines both ideas.

The optimizers are the real `keras.optimizers` classes, updating one
`keras.Variable` with `optimizer.apply()`. The gradient (x / 10, 2 y) is
written with `keras.ops`, so the script runs on every Keras backend.

Learning rates: SGD 0.95, Momentum 0.1, AdaGrad 1.5 and Adam 0.3 are the
book's figure (its `optimizer_compare_naive.py`, 30 steps, AdaGrad's sum of
squares starting at 0 as in the book); Nesterov reuses Momentum's settings,
and RMSprop 0.25 is our choice (not in the book's figure).

Run:

    python examples/optimizers_2d.py --out figures/

writes `optimizers_2d.png` and prints where each optimizer ended. `--quick`
is accepted for the example smoke tests; this script is already quick
(it only lowers the figure's resolution).
"""

import argparse
import os

import keras
import numpy as np
from keras import ops

START = (-7.0, 2.0)
STEPS = 30


def f(x, y):
    return x**2 / 20.0 + y**2


def optimizers():
    """Name -> a fresh optimizer, with the learning rates of the figure."""
    return {
        "SGD": keras.optimizers.SGD(learning_rate=0.95),
        "Momentum": keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        "Nesterov": keras.optimizers.SGD(
            learning_rate=0.1, momentum=0.9, nesterov=True
        ),
        "AdaGrad": keras.optimizers.Adagrad(
            learning_rate=1.5, initial_accumulator_value=0.0
        ),
        "RMSprop": keras.optimizers.RMSprop(learning_rate=0.25, rho=0.9),
        "Adam": keras.optimizers.Adam(
            learning_rate=0.3, beta_1=0.9, beta_2=0.999
        ),
    }


def trajectory(optimizer, steps=STEPS, start=START):
    """Positions visited by `optimizer` from `start`: array (steps + 1, 2)."""
    position = keras.Variable(np.array(start, dtype="float32"), name="xy")
    scale = ops.convert_to_tensor(np.array([1 / 10, 2.0], dtype="float32"))
    path = [ops.convert_to_numpy(position)]
    for _ in range(steps):
        gradient = ops.multiply(scale, position)  # (df/dx, df/dy)
        optimizer.apply([gradient], [position])
        path.append(ops.convert_to_numpy(position))
    return np.array(path)


def plot(paths, filename, dpi):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = np.meshgrid(np.arange(-10, 10, 0.01), np.arange(-5, 5, 0.01))
    zs = f(xs, ys)
    zs[zs > 7] = 0  # the book's trick: draw only the inner contour lines
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for ax, (name, path) in zip(axes.flat, paths.items()):
        ax.contour(xs, ys, zs, colors="0.75")
        ax.plot(path[:, 0], path[:, 1], "o-", color="red", markersize=3)
        ax.plot(0, 0, "+", color="black", markersize=12)
        ax.set(xlim=(-10, 10), ylim=(-5, 5), xlabel="x", ylabel="y", title=name)
    fig.suptitle(f"f(x, y) = x²/20 + y² from {START}, {STEPS} steps")
    fig.tight_layout()
    fig.savefig(filename, dpi=dpi)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="folder for the figure")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run (lower-resolution figure)"
    )
    args = parser.parse_args(argv)

    paths = {name: trajectory(opt) for name, opt in optimizers().items()}
    print(f"backend {keras.backend.backend()}; {STEPS} steps from {START}")
    for name, path in paths.items():
        x, y = path[-1]
        print(f"{name:>9}: ends at ({x:+.4f}, {y:+.4f}), f = {f(x, y):.2e}")
    os.makedirs(args.out, exist_ok=True)
    filename = os.path.join(args.out, "optimizers_2d.png")
    plot(paths, filename, dpi=60 if args.quick else 110)
    print(f"wrote {filename}")


if __name__ == "__main__":
    main()
