"""Coarse-to-fine search of a small CNN on Fashion-MNIST with kerasreg.CoarseToFine.

Searches the learning rate and the L2 strength on a log scale, the dropout
rate linearly and Adam's beta_1 through `1 - beta_1` log-uniform; diverging
trials are stopped early; prints the fish book's "Best-k" lines and writes
a plot of the objective against each hyperparameter.

    python examples/tune_fashion_mnist.py --quick          # CPU, under a minute
    KERAS_BACKEND=jax python examples/tune_fashion_mnist.py  # GPU, full search

Fashion-MNIST comes from `--data-dir` (or `$KERASREG_DATA_DIR`), else the Keras
cache, the Debian package dataset-fashion-mnist (`make fashion-mnist`) or a
download: see `kerasreg.datasets.load`.
"""

import argparse
import os

# jax: allocate GPU memory as needed instead of 75% up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasreg  # noqa: E402
from kerasreg.tuning import beta, log_uniform, report  # noqa: E402


def enable_memory_growth():
    """TensorFlow grabs all GPU memory unless told otherwise."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)


def load_data(n_train, n_val, seed=0, data_dir=None):
    try:
        from kerasreg import datasets
    except ImportError:
        datasets = None
    if datasets is not None:
        (x, y), (xv, yv), _ = datasets.load(
            "fashion_mnist", validation_split=0.1, seed=seed, data_dir=data_dir,
            verbose=1,
        )
    else:  # kerasreg.datasets not installed: Keras' own loader (may download).
        (x, y), _ = keras.datasets.fashion_mnist.load_data()
        x = (x.astype("float32") / 255.0)[..., None]
        idx = np.random.default_rng(seed).permutation(len(x))  # shuffle, then split
        x, y = x[idx], y[idx].astype("int32")
        cut = len(x) // 10
        (xv, yv), (x, y) = (x[:cut], y[:cut]), (x[cut:], y[cut:])
    return (x[:n_train], y[:n_train]), (xv[:n_val], yv[:n_val])


def build(hp):
    lr = log_uniform(hp, "learning_rate", 1e-5, 1e-1)
    l2 = log_uniform(hp, "l2", 1e-7, 1e-2)
    rate = hp.Float("dropout", 0.0, 0.5)
    beta_1 = beta(hp, "beta_1", 0.8, 0.999)
    reg = keras.regularizers.L2(l2)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu", kernel_regularizer=reg),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu", kernel_regularizer=reg),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(rate),
            keras.layers.Dense(64, activation="relu", kernel_regularizer=reg),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(lr, beta_1=beta_1),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small subset, short stages")
    parser.add_argument("--out", default="tune_fashion_mnist", help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the Fashion-MNIST IDX files (default: "
        "$KERASREG_DATA_DIR, the Keras cache, the Debian package, a download)",
    )
    args = parser.parse_args(argv)
    enable_memory_growth()
    keras.utils.set_random_seed(args.seed)
    if args.quick:
        # A smoke run: 3 short trials on a subset. Each trial compiles its
        # model anew (jax: ~5 s of CPU for this CNN), which dominates here;
        # sizes are multiples of the batch, so no extra compile for a last
        # partial batch.
        n_train, n_val, stages, top_k = 512, 256, ((2, 1), (1, 2)), 2
    else:
        n_train, n_val, stages, top_k = 54000, 6000, ((30, 1), (10, 5), (5, 20)), 5
    (x, y), (xv, yv) = load_data(n_train, n_val, args.seed, args.data_dir)
    # Keras Tuner clears the Keras session before building each trial's model
    # (Tuner._try_build), so memory does not grow from trial to trial.
    tuner = kerasreg.CoarseToFine(
        build,
        "val_accuracy",
        stages=stages,
        top_k=top_k,
        seed=args.seed + 1,
        directory=args.out,
        project_name="search",
        overwrite=False,  # run again to resume an interrupted search
    )
    tuner.search(x, y, validation_data=(xv, yv), batch_size=128, verbose=0)
    if "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ["KERASTUNER_TUNER_ID"]:
        return  # a distributed worker: the chief holds the results
    for stage, ranges in enumerate(tuner.stage_ranges):
        print(f"stage {stage + 1} ranges: {ranges}")
    report(
        tuner,
        top=5,
        path=os.path.join(args.out, "search.png"),
        csv_path=os.path.join(args.out, "search.csv"),
    )


if __name__ == "__main__":
    main()
