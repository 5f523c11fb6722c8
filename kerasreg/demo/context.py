"""What every demo stage shares: the data split, the budget, result rows."""

import dataclasses
import time

import numpy as np

from kerasreg import datasets
from kerasreg import metrics
from kerasreg.demo import plan

BATCH_SIZE = {"digits": 64, "fashion_mnist": 128}
VALIDATION_SPLIT = 0.1
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


def make_context(dataset, epochs, out, quick, seed, tune):
    """Loads the split (cut down by `quick`) and fixes the epoch budget."""
    splits, source = datasets._load_with_source(dataset, VALIDATION_SPLIT, seed)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    if quick:
        x_tr, y_tr = x_tr[: plan.QUICK_MAX_TRAIN], y_tr[: plan.QUICK_MAX_TRAIN]
        x_va, y_va = x_va[: plan.QUICK_MAX_VAL], y_va[: plan.QUICK_MAX_VAL]
    if epochs is None:
        epochs = plan.QUICK_EPOCHS if quick else plan.DEFAULT_EPOCHS[dataset]
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


def result_row(method, probs, ctx, train_time_s, history=None):
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


def train(model, ctx, **kwargs):
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


def predict(model, x):
    return model.predict(x, batch_size=1024, verbose=0)


def steps_per_epoch(ctx):
    return -(-len(ctx.x_train) // ctx.batch_size)
