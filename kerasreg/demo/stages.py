"""The demo's stages: one function per stage, in the order of `plan.STAGES`.

A stage is a function `fn(ctx)` (`ctx` a `kerasreg.demo.context.Context`)
that trains on the shared split with the shared epoch budget and returns a
list of result rows (`context.result_row`). `STAGES` pairs every entry of
`plan.STAGES` (the one list, which `kerasreg demo --help` reads) with its
function here.
"""

import dataclasses
import os
import time
import warnings

from kerasreg.demo import plan
from kerasreg.demo.context import predict
from kerasreg.demo.context import result_row
from kerasreg.demo.context import steps_per_epoch
from kerasreg.demo.context import train
from kerasreg.demo.models import LEARNING_RATE
from kerasreg.demo.models import baseline_model
from kerasreg.demo.models import compile_sgd
from kerasreg.demo.models import ema_decay
from kerasreg.demo.models import regularized_model
from kerasreg.demo.models import step_schedule

# Stage 4: the rate at each restart of the cyclic cosine.
SNAPSHOT_LEARNING_RATE = 0.1
# Stage 5: seeds of the deep ensemble's members, this far apart.
DEEP_SEED_OFFSET = 1000
# Stage 6: CoarseToFine ranges (log-uniform) and stages (see `tune_stages`).
TUNE_LEARNING_RATE = (1e-3, 0.5)
TUNE_L2 = (1e-6, 1e-2)
TUNE_COARSE_TRIALS = 10
TUNE_COARSE_TRIALS_QUICK = 4


@dataclasses.dataclass
class Stage:
    """A demo stage: `fn(ctx)` trains and returns a list of result rows."""

    title: str
    fn: object
    needs_tune: bool = False


def baseline(ctx):
    """Stage 1: plain Keras MLP, Glorot init, SGD with a constant rate."""
    model = compile_sgd(baseline_model(ctx))
    ctx.schedules["constant (stage 1)"] = lambda t: LEARNING_RATE + 0.0 * t
    history, seconds = train(model, ctx)
    return [
        result_row("baseline MLP", predict(model, ctx.x_test), ctx, seconds, history)
    ]


def regularized(ctx):
    """Stage 2: kerasreg Dropout + BatchNormalization + He init + step decay."""
    from kerasreg.callbacks import ScheduleCallback

    model = compile_sgd(regularized_model(ctx))
    schedule = step_schedule(ctx)
    spe = steps_per_epoch(ctx)
    ctx.schedules[schedule.name] = lambda t: schedule(t // spe)
    history, seconds = train(model, ctx, callbacks=[ScheduleCallback(schedule)])
    return [
        result_row(
            "+ Dropout, BN, He, step LR",
            predict(model, ctx.x_test),
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

    model = compile_sgd(regularized_model(ctx))
    ema = WeightEMA(decay=ema_decay(ctx), warmup=True)
    history, seconds = train(
        model, ctx, callbacks=[ScheduleCallback(step_schedule(ctx)), ema]
    )
    averaged = ema.averaged_model()
    return [
        result_row(
            "+ WeightEMA (EMA weights)",
            predict(averaged, ctx.x_test),
            ctx,
            seconds,
            history,
        )
    ]


def snapshot(ctx):
    """Stage 4: SnapshotEnsemble (M=5) of the stage-2 model, and its average.

    One training run of the stage-2 model with a cyclic cosine rate (per
    step, `SNAPSHOT_LEARNING_RATE` at the start of each of the
    `plan.SNAPSHOTS` cycles); the snapshots' mean probabilities, then the
    single model whose parameters are their mean, with the
    BatchNormalization statistics re-estimated on the training inputs.
    """
    from kerasreg.ensembles import SnapshotEnsemble
    from kerasreg.schedules import CyclicCosine

    steps = ctx.epochs * steps_per_epoch(ctx)
    n_snapshots = min(plan.SNAPSHOTS, steps)
    se = SnapshotEnsemble(
        regularized_model(ctx),
        n_snapshots=n_snapshots,
        initial_learning_rate=SNAPSHOT_LEARNING_RATE,
    )
    compile_sgd(se, SNAPSHOT_LEARNING_RATE)
    ctx.schedules[f"cyclic cosine, {n_snapshots} snapshots (stage 4)"] = (
        CyclicCosine(SNAPSHOT_LEARNING_RATE, steps, n_snapshots)
    )
    history, seconds = train(se, ctx)
    ensemble_row = result_row(
        f"SnapshotEnsemble (M={n_snapshots})",
        predict(se, ctx.x_test),
        ctx,
        seconds,
        history,
    )
    start = time.perf_counter()
    averaged = se.averaged(ctx.x_train, batch_size=ctx.batch_size)
    averaging_s = time.perf_counter() - start
    averaged_row = result_row(
        "snapshot weights averaged, BN re-estimated",
        predict(averaged, ctx.x_test),
        ctx,
        seconds + averaging_s,
    )
    return [ensemble_row, averaged_row]


def deep_ensemble(ctx):
    """Stage 5: DeepEnsemble (M=3) of the stage-2 model, temperature-scaled.

    `plan.DEEP_MEMBERS` copies of the stage-2 model, each from its own
    initialization (`DEEP_SEED_OFFSET` apart), trained together in one fused
    train step with stage 2's step schedule; the mean of their
    probabilities, then the same ensemble with its temperature fitted on the
    validation split (`kerasreg.calibration.fit_temperature`), which changes
    its NLL and ECE, not its predicted classes.
    """
    from kerasreg.calibration import fit_temperature
    from kerasreg.callbacks import ScheduleCallback
    from kerasreg.ensembles import DeepEnsemble

    built = []

    def build():
        built.append(None)  # a different initialization for every member
        return regularized_model(ctx, seed_offset=DEEP_SEED_OFFSET * len(built))

    deep = compile_sgd(DeepEnsemble(build, n_members=plan.DEEP_MEMBERS))
    history, seconds = train(
        deep, ctx, callbacks=[ScheduleCallback(step_schedule(ctx))]
    )
    ensemble_row = result_row(
        f"DeepEnsemble (M={plan.DEEP_MEMBERS})",
        predict(deep, ctx.x_test),
        ctx,
        seconds,
        history,
    )
    start = time.perf_counter()
    scaled = fit_temperature(deep, ctx.x_val, ctx.y_val, batch_size=1024)
    scaling_s = time.perf_counter() - start
    scaled_row = result_row(
        f"+ temperature scaling (T={scaled.temperature:.2f})",
        predict(scaled, ctx.x_test),
        ctx,
        seconds + scaling_s,
    )
    scaled_row["temperature"] = scaled.temperature
    return [ensemble_row, scaled_row]


def tune_stages(ctx):
    """CoarseToFine stages: many short trials, then `plan.TUNE_TOP_K` full ones.

    The final stage trains `plan.TUNE_TOP_K` settings for the whole epoch
    budget, so the ensemble of the best trials is made of models trained as
    long as every other stage's.
    """
    coarse_trials = TUNE_COARSE_TRIALS_QUICK if ctx.quick else TUNE_COARSE_TRIALS
    coarse_epochs = max(1, ctx.epochs // 10)
    return ((coarse_trials, coarse_epochs), (plan.TUNE_TOP_K, ctx.epochs))


def _range_notes(tuner):
    """One line per narrowed stage of a `CoarseToFine` search."""
    stages = tuner.stages
    notes = []
    for i, ranges in enumerate(tuner.stage_ranges[1:], 1):
        shown = ", ".join(
            f"{name}: {r['values']}"
            if "values" in r
            else f"{name}: [{r['min_value']:.3g}, {r['max_value']:.3g}]"
            for name, r in ranges.items()
        )
        trials, epochs = stages[i]
        notes.append(
            f"CoarseToFine: stage {i + 1}/{len(stages)} ({trials} trials x "
            f"{epochs} epochs), ranges: {shown}"
        )
    return notes


def tuned(ctx):
    """Stage 6: CoarseToFine search of learning rate and L2; top-3 Ensemble.

    The stage-2 model (constant rate, with an L2 penalty), searched over
    `TUNE_LEARNING_RATE` and `TUNE_L2` (both log-uniform) with
    `val_accuracy` as the objective. Writes `tuner.png` (objective against
    each hyperparameter; `kerasreg.tuning.report`) and `tuner.csv`; the
    narrowed ranges and the best trials are the stage's notes.
    """
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
        return compile_sgd(model, lr)

    start = time.perf_counter()
    tuner = CoarseToFine(
        build,
        "val_accuracy",
        stages=tune_stages(ctx),
        top_k=plan.TUNE_TOP_K,
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
    ctx.notes.extend(_range_notes(tuner))
    rows = report(
        tuner,
        top=plan.TUNE_TOP_K,
        path=os.path.join(ctx.out, "tuner.png"),
        csv_path=os.path.join(ctx.out, "tuner.csv"),
        print_fn=ctx.notes.append,
    )
    ctx.plots.extend(["tuner.png", "tuner.csv"])
    best = tuner.get_best_hyperparameters(1)[0].values
    with warnings.catch_warnings():
        # The checkpoints hold the optimizer state; the reloaded models are
        # only used for prediction.
        warnings.filterwarnings("ignore", message="Skipping variable loading")
        ensemble = Ensemble.from_tuner(tuner, k=plan.TUNE_TOP_K)
    best_model = ensemble.members[0]
    settings = {
        "learning_rate": float(best["learning_rate"]),
        "l2": float(best["l2"]),
        "trials": len(rows),
        "stages": [list(s) for s in tune_stages(ctx)],
    }
    best_row = result_row(
        "CoarseToFine best trial", predict(best_model, ctx.x_test), ctx, seconds
    )
    best_row["tuning"] = settings
    ensemble_row = result_row(
        f"CoarseToFine top-{plan.TUNE_TOP_K} Ensemble",
        predict(ensemble, ctx.x_test),
        ctx,
        seconds,
    )
    ensemble_row["tuning"] = settings
    return [best_row, ensemble_row]


# The one list of stages: `plan.STAGES` (titles, order, `--no-tune`), each
# paired with the function of that name above.
STAGES = [
    Stage(title, globals()[name], needs_tune)
    for name, title, needs_tune in plan.STAGES
]
