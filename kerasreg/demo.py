"""`kerasreg demo`: train and compare the kerasreg techniques on one split.

The demo is a list of stages (`STAGES`). Every stage trains on the same data
split with the same epoch budget and returns one or more result rows; the
runner prints one line per stage, then one aligned table (test accuracy, NLL,
ECE, training time), and writes `results.json` (and plots, when matplotlib is
installed) to the output folder.

Stages:

1. baseline MLP (Keras layers, Glorot init, constant learning rate);
2. the same MLP with kerasreg He init, BatchNormalization and Dropout, and a
   `StepDecay` schedule applied per epoch by `ScheduleCallback`;
3. stage 2 plus `WeightEMA`, scored with the EMA weights;
4. `SnapshotEnsemble` (M=5) of the stage-2 model (cyclic cosine rate), and
   the single model with the snapshots' averaged parameters (BatchNorm
   statistics re-estimated on the training inputs);
5. (`needs_tune`, skipped by `--no-tune`) a short `CoarseToFine` search of
   the learning rate and the L2 strength of the stage-2 model, the best
   trial and the top-3 trials as an `Ensemble.from_tuner`.

Files written to `out`: `results.json` (settings, one entry per result row,
learning curves), `learning_curves.png` (training / validation loss and
validation accuracy per epoch), `schedules.png` (the learning rate of each
stage against the training step) and, with tuning, `tuner.png` (the
objective against each hyperparameter, `kerasreg.tuning.report`),
`tuner.csv` (every trial) and the Keras Tuner folder `tuning/`.
"""

import dataclasses
import json
import logging
import os
import time
import warnings

import numpy as np

from kerasreg import datasets
from kerasreg import metrics

DEFAULT_OUT = "kerasreg-demo"
DEFAULT_EPOCHS = {"digits": 30, "fashion_mnist": 10}
BATCH_SIZE = {"digits": 64, "fashion_mnist": 128}
VALIDATION_SPLIT = 0.1
LEARNING_RATE = 0.05
MOMENTUM = 0.9
HIDDEN_UNITS = (256, 128)
DROPOUT_RATE = 0.2
# Stage 2's step schedule: the rate is multiplied by this every quarter of
# the epochs.
STEP_DROP_FACTOR = 0.3
# Stage 4: snapshots (cycles of the cyclic cosine) and the rate at each restart.
SNAPSHOTS = 5
SNAPSHOT_LEARNING_RATE = 0.1
# Stage 5: CoarseToFine ranges (log-uniform) and stages (see `tune_stages`).
TUNE_LEARNING_RATE = (1e-3, 0.5)
TUNE_L2 = (1e-6, 1e-2)
TUNE_COARSE_TRIALS = 10
TUNE_TOP_K = 3
# --quick: a smoke run of a few seconds.
QUICK_EPOCHS = 2
QUICK_MAX_TRAIN = 2000
QUICK_MAX_VAL = 500
ECE_BINS = 15


@dataclasses.dataclass
class Context:
    """Everything a stage needs: the data split and the shared budget."""

    dataset: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    epochs: int
    batch_size: int
    seed: int
    out: str
    quick: bool
    tune: bool
    # Learning-rate schedules the stages used, by legend label (`callable(t)`,
    # `t` = training step); drawn together in `schedules.png`.
    schedules: dict = dataclasses.field(default_factory=dict)
    # Extra files a stage wrote to `out` (names relative to it).
    plots: list = dataclasses.field(default_factory=list)
    # Lines a stage wants shown under its progress line.
    notes: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Stage:
    """A demo stage: `fn(ctx)` trains and returns a list of result rows."""

    title: str
    fn: object
    needs_tune: bool = False


# --- result rows -------------------------------------------------------------


def _row(method, probs, ctx, train_time_s, history=None):
    """One result row; metrics from `kerasreg.metrics` on the test set."""
    probs = np.asarray(probs, dtype=np.float64)
    return {
        "method": method,
        "test_accuracy": float(np.mean(np.argmax(probs, axis=-1) == ctx.y_test)),
        "nll": metrics.nll(ctx.y_test, probs),
        "ece": metrics.expected_calibration_error(
            ctx.y_test, probs, n_bins=ECE_BINS
        ),
        "train_time_s": float(train_time_s),
        "history": history or {},
    }


# --- shared training helpers -----------------------------------------------


def _fit(model, ctx, **kwargs):
    """Fits on the context's training data; returns (history dict, seconds)."""
    validation = (ctx.x_val, ctx.y_val) if len(ctx.x_val) else None
    start = time.perf_counter()
    history = model.fit(
        ctx.x_train,
        ctx.y_train,
        validation_data=validation,
        epochs=ctx.epochs,
        batch_size=ctx.batch_size,
        verbose=0,
        **kwargs,
    )
    elapsed = time.perf_counter() - start
    curves = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    return curves, elapsed


def _predict(model, x):
    return model.predict(x, batch_size=1024, verbose=0)


# --- stages ----------------------------------------------------------------


def _compile(model, learning_rate=LEARNING_RATE):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=MOMENTUM),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def baseline_model(ctx):
    """The baseline MLP: Keras layers, Glorot init, ReLU, softmax out."""
    import keras

    keras.utils.set_random_seed(ctx.seed)
    inputs = keras.Input(ctx.x_train.shape[1:])
    h = keras.layers.Flatten()(inputs)
    for units in HIDDEN_UNITS:
        h = keras.layers.Dense(units, activation="relu")(h)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(h)
    return keras.Model(inputs, outputs, name="baseline_mlp")


def regularized_model(ctx, dropout=DROPOUT_RATE, seed_offset=0, l2=0.0):
    """The same MLP with kerasreg He init, BatchNormalization and Dropout.

    Each hidden block is Dense (He normal init, no bias: BatchNormalization's
    beta replaces it) -> BatchNormalization -> ReLU -> Dropout. With `l2 > 0`
    every kernel gets an L2 penalty `l2 * sum(w ** 2)`.
    """
    import keras

    import kerasreg

    seed = ctx.seed + seed_offset
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(ctx.x_train.shape[1:])
    h = keras.layers.Flatten()(inputs)
    for i, units in enumerate(HIDDEN_UNITS):
        h = keras.layers.Dense(
            units,
            use_bias=False,
            kernel_initializer=kerasreg.HeNormal(seed=seed + i),
            kernel_regularizer=reg,
        )(h)
        h = kerasreg.BatchNormalization()(h)
        h = keras.layers.Activation("relu")(h)
        h = kerasreg.Dropout(dropout, seed=seed + i)(h)
    outputs = keras.layers.Dense(
        ctx.num_classes,
        activation="softmax",
        kernel_initializer=kerasreg.XavierNormal(seed=seed + len(HIDDEN_UNITS)),
        kernel_regularizer=reg,
    )(h)
    return keras.Model(inputs, outputs, name="regularized_mlp")


def step_schedule(ctx):
    """The stage-2 schedule: the rate times `STEP_DROP_FACTOR`, three times."""
    from kerasreg.schedules import StepDecay

    return StepDecay(
        LEARNING_RATE,
        drop_factor=STEP_DROP_FACTOR,
        drop_every=max(1, -(-ctx.epochs // 4)),
        name="step decay (stages 2-3)",
    )


def _steps_per_epoch(ctx):
    return -(-len(ctx.x_train) // ctx.batch_size)


def ema_decay(ctx):
    """EMA decay whose horizon `1 / (1 - decay)` is ~10% of the steps."""
    steps = ctx.epochs * _steps_per_epoch(ctx)
    return float(min(0.999, max(0.9, 1.0 - 10.0 / steps)))


def baseline(ctx):
    """Stage 1: plain Keras MLP, Glorot init, SGD with a constant rate."""
    model = _compile(baseline_model(ctx))
    ctx.schedules["constant (stage 1)"] = lambda t: LEARNING_RATE + 0.0 * t
    history, seconds = _fit(model, ctx)
    return [_row("baseline MLP", _predict(model, ctx.x_test), ctx, seconds, history)]


def regularized(ctx):
    """Stage 2: kerasreg Dropout + BatchNormalization + He init + step decay."""
    from kerasreg.callbacks import ScheduleCallback

    model = _compile(regularized_model(ctx))
    schedule = step_schedule(ctx)
    spe = _steps_per_epoch(ctx)
    ctx.schedules[schedule.name] = lambda t: schedule(t // spe)
    history, seconds = _fit(model, ctx, callbacks=[ScheduleCallback(schedule)])
    return [
        _row(
            "+ Dropout, BN, He, step LR",
            _predict(model, ctx.x_test),
            ctx,
            seconds,
            history,
        )
    ]


def with_ema(ctx):
    """Stage 3: stage 2 plus WeightEMA; the EMA weights are evaluated.

    Validation during training runs on the EMA weights
    (`swap_on_evaluate=True`), so the stage's learning curves are those of
    the averaged model.
    """
    from kerasreg.callbacks import ScheduleCallback
    from kerasreg.callbacks import WeightEMA

    model = _compile(regularized_model(ctx))
    ema = WeightEMA(decay=ema_decay(ctx), warmup=True)
    history, seconds = _fit(
        model, ctx, callbacks=[ScheduleCallback(step_schedule(ctx)), ema]
    )
    averaged = ema.averaged_model()
    return [
        _row(
            "+ WeightEMA (EMA weights)",
            _predict(averaged, ctx.x_test),
            ctx,
            seconds,
            history,
        )
    ]


def snapshot(ctx):
    """Stage 4: SnapshotEnsemble (M=5) of the stage-2 model, and its average.

    One training run of the stage-2 model with a cyclic cosine rate (per
    step, `SNAPSHOT_LEARNING_RATE` at the start of each of the
    `SNAPSHOTS` cycles); the snapshots' mean probabilities, then the single
    model whose parameters are their mean, with the BatchNormalization
    statistics re-estimated on the training inputs.
    """
    import keras

    from kerasreg.ensembles import SnapshotEnsemble
    from kerasreg.schedules import CyclicCosine

    steps = ctx.epochs * _steps_per_epoch(ctx)
    n_snapshots = min(SNAPSHOTS, steps)
    se = SnapshotEnsemble(
        regularized_model(ctx),
        n_snapshots=n_snapshots,
        initial_learning_rate=SNAPSHOT_LEARNING_RATE,
    )
    se.compile(
        optimizer=keras.optimizers.SGD(SNAPSHOT_LEARNING_RATE, momentum=MOMENTUM),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    ctx.schedules[f"cyclic cosine, {n_snapshots} snapshots (stage 4)"] = (
        CyclicCosine(SNAPSHOT_LEARNING_RATE, steps, n_snapshots)
    )
    history, seconds = _fit(se, ctx)
    ensemble_row = _row(
        f"SnapshotEnsemble (M={n_snapshots})",
        _predict(se, ctx.x_test),
        ctx,
        seconds,
        history,
    )
    start = time.perf_counter()
    averaged = se.averaged(ctx.x_train, batch_size=ctx.batch_size)
    averaging_s = time.perf_counter() - start
    averaged_row = _row(
        "snapshot weights averaged, BN re-estimated",
        _predict(averaged, ctx.x_test),
        ctx,
        seconds + averaging_s,
    )
    return [ensemble_row, averaged_row]


def tune_stages(ctx):
    """CoarseToFine stages: many short trials, then `TUNE_TOP_K` full ones.

    The final stage trains `TUNE_TOP_K` settings for the whole epoch budget,
    so the ensemble of the best `TUNE_TOP_K` trials is made of models
    trained as long as every other stage's.
    """
    coarse_trials = 4 if ctx.quick else TUNE_COARSE_TRIALS
    coarse_epochs = max(1, ctx.epochs // 10)
    return ((coarse_trials, coarse_epochs), (TUNE_TOP_K, ctx.epochs))


def tuned(ctx):
    """Stage 5: CoarseToFine search of learning rate and L2; top-3 Ensemble.

    The stage-2 model (constant rate, with an L2 penalty), searched over
    `TUNE_LEARNING_RATE` and `TUNE_L2` (both log-uniform) with
    `val_accuracy` as the objective. Writes `tuner.png` (objective against
    each hyperparameter; `kerasreg.tuning.report`) and `tuner.csv`.
    """
    import contextlib
    import io

    import keras

    from kerasreg.ensembles import Ensemble
    from kerasreg.tuning import CoarseToFine
    from kerasreg.tuning import log_uniform
    from kerasreg.tuning import report

    builds = []

    def build(hp):
        lr = log_uniform(hp, "learning_rate", *TUNE_LEARNING_RATE)
        l2 = log_uniform(hp, "l2", *TUNE_L2)
        builds.append(None)  # a different init for every trial
        model = regularized_model(ctx, seed_offset=100 * len(builds), l2=l2)
        model.compile(
            optimizer=keras.optimizers.SGD(lr, momentum=MOMENTUM),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    printed = io.StringIO()  # the tuner's range lines, shown after the stage
    start = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        tuner = CoarseToFine(
            build,
            "val_accuracy",
            stages=tune_stages(ctx),
            top_k=TUNE_TOP_K,
            # Keras Tuner reads seed=0 as "no seed" (`seed or randint`).
            seed=ctx.seed + 1,
            directory=os.path.join(ctx.out, "tuning"),
            project_name="demo",
            overwrite=True,
        )
        tuner.search(
            ctx.x_train,
            ctx.y_train,
            validation_data=(ctx.x_val, ctx.y_val),
            batch_size=ctx.batch_size,
            verbose=0,
        )
        seconds = time.perf_counter() - start
        rows = report(
            tuner,
            top=TUNE_TOP_K,
            path=os.path.join(ctx.out, "tuner.png"),
            csv_path=os.path.join(ctx.out, "tuner.csv"),
        )
    ctx.notes.extend(line for line in printed.getvalue().splitlines() if line)
    ctx.plots.extend(["tuner.png", "tuner.csv"])
    best = tuner.get_best_hyperparameters(1)[0].values
    with warnings.catch_warnings():
        # The checkpoints hold the optimizer state; the reloaded models are
        # only used for prediction.
        warnings.filterwarnings("ignore", message="Skipping variable loading")
        ensemble = Ensemble.from_tuner(tuner, k=TUNE_TOP_K)
    best_model = ensemble.members[0]
    settings = {
        "learning_rate": float(best["learning_rate"]),
        "l2": float(best["l2"]),
        "trials": len(rows),
        "stages": [list(s) for s in tune_stages(ctx)],
    }
    best_row = _row(
        "CoarseToFine best trial",
        _predict(best_model, ctx.x_test),
        ctx,
        seconds,
    )
    best_row["tuning"] = settings
    ensemble_row = _row(
        f"CoarseToFine top-{TUNE_TOP_K} Ensemble",
        _predict(ensemble, ctx.x_test),
        ctx,
        seconds,
    )
    ensemble_row["tuning"] = settings
    return [best_row, ensemble_row]


STAGES = [
    Stage("baseline MLP (Keras layers, constant learning rate)", baseline),
    Stage(
        "kerasreg Dropout + BatchNormalization + He init + step schedule",
        regularized,
    ),
    Stage("+ WeightEMA (EMA weights evaluated)", with_ema),
    Stage("SnapshotEnsemble (M=5) and its parameter-averaged model", snapshot),
    Stage(
        "CoarseToFine search of learning rate and L2, top-3 as an Ensemble",
        tuned,
        needs_tune=True,
    ),
]


# --- runner ----------------------------------------------------------------


def format_table(rows):
    """One aligned text table of the result rows."""
    headers = ("method", "test acc", "NLL", "ECE", "train s")
    cells = [
        (
            r["method"],
            f"{r['test_accuracy']:.4f}",
            f"{r['nll']:.4f}",
            f"{r['ece']:.4f}",
            f"{r['train_time_s']:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [headers, *cells]) for i in range(5)]

    def line(c):
        first = c[0].ljust(widths[0])
        rest = [c[i].rjust(widths[i]) for i in range(1, 5)]
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *map(line, cells)])


def _context(dataset, epochs, out, quick, seed, tune):
    splits, source = datasets._load_with_source(dataset, VALIDATION_SPLIT, seed)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    if quick:
        x_tr, y_tr = x_tr[:QUICK_MAX_TRAIN], y_tr[:QUICK_MAX_TRAIN]
        x_va, y_va = x_va[:QUICK_MAX_VAL], y_va[:QUICK_MAX_VAL]
    if epochs is None:
        epochs = QUICK_EPOCHS if quick else DEFAULT_EPOCHS[dataset]
    return Context(
        dataset=dataset,
        source=source,
        x_train=x_tr,
        y_train=y_tr,
        x_val=x_va,
        y_val=y_va,
        x_test=x_te,
        y_test=y_te,
        num_classes=int(max(y_tr.max(), y_te.max())) + 1,
        epochs=epochs,
        batch_size=BATCH_SIZE[dataset],
        seed=seed,
        out=out,
        quick=quick,
        tune=tune,
    )


def _plot_learning_curves(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        h = r["history"]
        for key, style in (("loss", "--"), ("val_loss", "-")):
            if key in h:
                ax_loss.plot(h[key], style, label=f"{r['method']} ({key})")
        if "val_accuracy" in h:
            ax_acc.plot(h["val_accuracy"], label=r["method"])
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training / validation loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class _Labeled:
    """A `callable(t)` with a legend label (`kerasreg.schedules.plot` reads `name`)."""

    def __init__(self, name, fn):
        self.name = name
        self._fn = fn

    def __call__(self, t):
        return self._fn(t)


def _plot_schedules(ctx, path):
    """The learning rate of every stage against the step, one figure."""
    from kerasreg.schedules import plot

    labeled = [
        _Labeled(label, fn) if getattr(fn, "name", None) != label else fn
        for label, fn in ctx.schedules.items()
    ]
    plot(labeled, steps=ctx.epochs * _steps_per_epoch(ctx), path=path)


def run(
    dataset="digits",
    epochs=None,
    out=DEFAULT_OUT,
    quick=False,
    seed=0,
    tune=True,
    stages=None,
):
    """Runs the demo stages; prints progress and the table; returns the report.

    Args:
        dataset: String. `"digits"` or `"fashion_mnist"`.
        epochs: Integer or `None`. Epoch budget of every stage; `None` picks
            `DEFAULT_EPOCHS[dataset]` (or `QUICK_EPOCHS` with `quick`).
        out: String. Folder for `results.json` and the plots.
        quick: Boolean. Smoke run: at most `QUICK_MAX_TRAIN` training
            examples and `QUICK_EPOCHS` epochs.
        seed: Integer. Seeds the validation split and every model.
        tune: Boolean. Whether stages marked `needs_tune` run.
        stages: List of `Stage` or `None` (all of `STAGES`).

    Returns:
        The dict written to `out/results.json`.
    """
    import keras

    import kerasreg

    if epochs is not None and (
        isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1
    ):
        raise ValueError(
            "Invalid value received for argument `epochs`. Expected a "
            f"positive integer. Received: epochs={epochs!r}"
        )
    stages = STAGES if stages is None else stages
    # TensorFlow warns when many models' predict functions are traced (the
    # ensembles' members): expected here, and it would break the progress
    # lines. (A logger name: this imports nothing.)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    start = time.perf_counter()
    ctx = _context(dataset, epochs, out, quick, seed, tune)
    os.makedirs(out, exist_ok=True)
    print(
        f"kerasreg demo: {dataset} from {ctx.source}; "
        f"{len(ctx.x_train)} train / {len(ctx.x_val)} val / "
        f"{len(ctx.x_test)} test; {ctx.epochs} epochs; "
        f"backend {keras.backend.backend()}"
    )
    rows = []
    for i, stage in enumerate(stages, 1):
        prefix = f"[{i}/{len(stages)}] {stage.title}"
        if stage.needs_tune and not tune:
            print(f"{prefix}: skipped (--no-tune)")
            continue
        print(f"{prefix} ...", end="", flush=True)
        t0 = time.perf_counter()
        try:
            new_rows = stage.fn(ctx)
        except BaseException:
            print(flush=True)  # end the stage's line before the error shows
            raise
        summary = ", ".join(
            f"{r['method']} acc {r['test_accuracy']:.4f}" for r in new_rows
        )
        print(f" {summary} ({time.perf_counter() - t0:.1f} s)", flush=True)
        for note in ctx.notes:
            print(f"    {note}")
        ctx.notes.clear()
        rows.extend(new_rows)

    print()
    print(format_table(rows))
    report = {
        "dataset": dataset,
        "source": ctx.source,
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "kerasreg_version": kerasreg.__version__,
        "epochs": ctx.epochs,
        "batch_size": ctx.batch_size,
        "seed": seed,
        "quick": quick,
        "tune": tune,
        "sizes": {
            "train": len(ctx.x_train),
            "val": len(ctx.x_val),
            "test": len(ctx.x_test),
        },
        "ece_bins": ECE_BINS,
        "results": [
            {k: v for k, v in r.items() if k != "history"} for r in rows
        ],
        "histories": {r["method"]: r["history"] for r in rows},
        "total_time_s": time.perf_counter() - start,
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(report, f, indent=2)
    written = ["results.json"]
    try:
        _plot_learning_curves(rows, os.path.join(out, "learning_curves.png"))
        written.append("learning_curves.png")
        if ctx.schedules:
            _plot_schedules(ctx, os.path.join(out, "schedules.png"))
            written.append("schedules.png")
        written.extend(ctx.plots)
    except ImportError:
        print("(matplotlib not installed: no plots; `pip install kerasreg[plot]`)")
    print(f"\nwrote {', '.join(written)} to {out}")
    return report
