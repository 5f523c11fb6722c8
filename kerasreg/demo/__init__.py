"""`kerasreg demo`: train and compare the kerasreg techniques on one split.

The demo is a list of stages (`STAGES`, built in `stages.py` from
`plan.STAGES`, the one list that `kerasreg demo --help` also reads). Every
stage trains on the same data split with the same epoch budget and returns
one or more result rows; `run` prints one line per stage, then one aligned
table (test accuracy, NLL, ECE, training time; `table.py`), and writes
`results.json` (and plots, when matplotlib is installed; `plots.py`) to the
output folder.

Stages:

1. baseline MLP (Keras layers, Glorot init, constant learning rate);
2. the same MLP with kerasreg He init, BatchNormalization and Dropout, and a
   `StepDecay` schedule applied per epoch by `ScheduleCallback`;
3. stage 2 plus `WeightEMA`, scored with the EMA weights;
4. `SnapshotEnsemble` (M=5) of the stage-2 model (cyclic cosine rate), and
   the single model with the snapshots' averaged parameters (BatchNorm
   statistics re-estimated on the training inputs);
5. `DeepEnsemble` (M=3) of the stage-2 model, its members trained together
   in one fused step, then temperature-scaled on the validation split
   (`kerasreg.calibration.fit_temperature`);
6. (`needs_tune`, skipped by `--no-tune`) a short `CoarseToFine` search of
   the learning rate and the L2 strength of the stage-2 model, the best
   trial and the top-3 trials as an `Ensemble.from_tuner`.

Files written to `out`: `results.json` (settings, one entry per result row,
learning curves), `learning_curves.png` (training / validation loss and
validation accuracy per epoch), `schedules.png` (the learning rate of each
stage against the training step) and, with tuning, `tuner.png` (the
objective against each hyperparameter, `kerasreg.tuning.report`),
`tuner.csv` (every trial) and the Keras Tuner folder `tuning/`.

Modules: `plan` (the stages' names and titles, the defaults; plain data),
`context` (the shared split and budget, result rows), `models` (the MLPs),
`stages` (one function per stage), `table`, `plots`.
"""

import json
import logging
import os
import time

from kerasreg.demo import plots
from kerasreg.demo.context import ECE_BINS
from kerasreg.demo.context import Context
from kerasreg.demo.context import make_context
from kerasreg.demo.context import steps_per_epoch
from kerasreg.demo.plan import DEFAULT_EPOCHS
from kerasreg.demo.plan import DEFAULT_OUT
from kerasreg.demo.plan import QUICK_EPOCHS
from kerasreg.demo.stages import STAGES
from kerasreg.demo.stages import Stage
from kerasreg.demo.table import format_table

__all__ = [
    "Context",
    "DEFAULT_EPOCHS",
    "DEFAULT_OUT",
    "QUICK_EPOCHS",
    "STAGES",
    "Stage",
    "format_table",
    "run",
]


def _check_epochs(epochs):
    if epochs is not None and (
        isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1
    ):
        raise ValueError(
            "Invalid value received for argument `epochs`. Expected a "
            f"positive integer. Received: epochs={epochs!r}"
        )


def _run_stages(stages, ctx):
    """Runs the stages, one progress line each; returns their result rows."""
    rows = []
    for i, stage in enumerate(stages, 1):
        prefix = f"[{i}/{len(stages)}] {stage.title}"
        if stage.needs_tune and not ctx.tune:
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
    return rows


def _write_plots(rows, ctx):
    """Writes the figures; returns the names written (none without matplotlib)."""
    written = []
    try:
        plots.plot_learning_curves(rows, os.path.join(ctx.out, "learning_curves.png"))
        written.append("learning_curves.png")
        if ctx.schedules:
            plots.plot_schedules(
                ctx.schedules,
                ctx.epochs * steps_per_epoch(ctx),
                os.path.join(ctx.out, "schedules.png"),
            )
            written.append("schedules.png")
    except ImportError:
        print("(matplotlib not installed: no plots; `pip install kerasreg[plot]`)")
    return written


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

    The demo is a command-line program (`kerasreg demo`): it prints one line
    per stage and the table, and writes its files to `out`.

    Args:
        dataset: String. `"digits"` or `"fashion_mnist"`.
        epochs: Integer or `None`. Epoch budget of every stage; `None` picks
            `DEFAULT_EPOCHS[dataset]` (or `QUICK_EPOCHS` with `quick`).
        out: String. Folder for `results.json` and the plots. Defaults to
            `DEFAULT_OUT` (`"./kerasreg-demo/"`).
        quick: Boolean. Smoke run: at most `plan.QUICK_MAX_TRAIN` training
            examples and `QUICK_EPOCHS` epochs.
        seed: Integer. Seeds the validation split and every model.
        tune: Boolean. Whether stages marked `needs_tune` run.
        stages: List of `Stage` or `None` (all of `STAGES`).

    Returns:
        The dict written to `out/results.json`.
    """
    import keras

    import kerasreg

    _check_epochs(epochs)
    stages = STAGES if stages is None else stages
    # TensorFlow warns when many models' predict functions are traced (the
    # ensembles' members): expected here, and it would break the progress
    # lines. (A logger name: this imports nothing.)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    start = time.perf_counter()
    ctx = make_context(dataset, epochs, out, quick, seed, tune)
    os.makedirs(out, exist_ok=True)
    print(
        f"kerasreg demo: {dataset} from {ctx.source}; "
        f"{len(ctx.x_train)} train / {len(ctx.x_val)} val / "
        f"{len(ctx.x_test)} test; {ctx.epochs} epochs; "
        f"backend {keras.backend.backend()}"
    )
    rows = _run_stages(stages, ctx)
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
    written = ["results.json", *_write_plots(rows, ctx), *ctx.plots]
    print(f"\nwrote {', '.join(written)} to {out}")
    return report

