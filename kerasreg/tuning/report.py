"""`report`: the "Best-k" summary of a Keras Tuner search, as text, CSV and PNG."""

import csv

from kerasreg import _checks
from kerasreg._compat import local_oracle
from kerasreg._trials import BOOKKEEPING_PREFIX
from kerasreg._trials import DIVERGED_KEY
from kerasreg._trials import EPOCHS_KEY
from kerasreg._trials import STAGE_KEY
from kerasreg._trials import ranked_trials
from kerasreg.tuning.spaces import ONE_MINUS_PREFIX


def _format(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _hp_values(values):
    """Hyperparameter values to show: no tuner bookkeeping, no 1-beta helpers."""
    shown = {}
    for name, value in values.items():
        if name.startswith(BOOKKEEPING_PREFIX):
            continue
        if name.startswith(ONE_MINUS_PREFIX) and name[len(ONE_MINUS_PREFIX):] in values:
            continue
        shown[name] = value
    return shown


def _rows(tuner):
    """(rows, trials): one row per trial, completed ones best first."""
    completed, others = ranked_trials(tuner)
    objective = local_oracle(tuner).objective.name
    rows = []
    for rank, trial in enumerate(completed + others, start=1):
        values = trial.hyperparameters.values
        done = rank <= len(completed)
        diverged = DIVERGED_KEY in values
        rows.append(
            {
                "rank": rank if done else None,
                "trial_id": trial.trial_id,
                "stage": int(values.get(STAGE_KEY, 0)),
                "epochs": values.get(EPOCHS_KEY),
                "status": trial.status,
                objective: trial.score if done else None,
                "diverged": diverged,
                "reason": values.get(DIVERGED_KEY, "") if diverged else "",
                **{
                    name: value
                    for name, value in values.items()
                    if not name.startswith(BOOKKEEPING_PREFIX)
                },
            }
        )
    return rows, completed + others


def report(tuner, top=5, path=None, csv_path=None, print_fn=print):
    """Prints the best trials of a search, returns all rows, writes CSV/PNG.

    The "fish book" prints the result of a hyperparameter search best first,
    one line per setting: `Best-1 (val acc:0.83) | lr:0.0092, weight
    decay:3.86e-07`. `report` does the same for any Keras Tuner tuner
    (`CoarseToFine` orders the final stage's trials first, as they trained
    longest):

    `Best-1 (val_accuracy: 0.83) | learning_rate: 0.0092, weight_decay: 3.86e-07`

    (a `CoarseToFine` line ends with its stage and epochs,
    `| stage 3, 20 epochs`, since a later stage trains longer).

    Args:
        tuner: A Keras Tuner tuner (or its oracle) after `search`.
        top: Integer >= 1. Number of lines to print. Defaults to `5`.
        path: Optional path of a PNG to write: the objective against each
            numeric hyperparameter (log x-axis for log-sampled ones), trials
            colored by stage, diverged trials marked with a red cross at the
            bottom. Needs matplotlib (`pip install kerasreg[plot]`).
        csv_path: Optional path of a CSV file with all the rows.
        print_fn: Function used to print each line. Defaults to `print`.

    Returns:
        A list of dicts, one per trial, best first (trials completed with a
        finite score, then the others: failed ones, and completed ones whose
        score is NaN, which get no rank): `rank`, `trial_id`, `stage`, `epochs`, `status`, the
        objective, `diverged`, `reason` and the hyperparameter values.

    Example:

    ```python
    import keras_tuner
    from kerasreg.tuning import report

    def run(hp):
        x = hp.Float("x", -2.0, 2.0)
        return (x - 0.5) ** 2

    class Toy(keras_tuner.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            return run(trial.hyperparameters)

    tuner = Toy(max_trials=4, seed=0, directory="/tmp/kerasreg_doc",
                project_name="report", overwrite=True)
    tuner.search()
    rows = report(tuner, top=2)
    assert rows[0]["rank"] == 1
    ```
    """
    _checks.int_at_least("top", top, 1)
    oracle = local_oracle(tuner)
    objective = oracle.objective.name
    rows, trials = _rows(tuner)
    for row, trial in zip(rows, trials):
        if row["rank"] is None or row["rank"] > top:
            break
        values = _hp_values(trial.hyperparameters.values)
        line = (
            f"Best-{row['rank']} ({objective}: {_format(row[objective])}) | "
            + ", ".join(f"{k}: {_format(v)}" for k, v in values.items())
        )
        if STAGE_KEY in trial.hyperparameters.values:
            line += f" | stage {row['stage'] + 1}, {row['epochs']} epochs"
        print_fn(line)
    if csv_path is not None:
        save_csv(rows, csv_path)
    if path is not None:
        plot(oracle, rows, path)
    return rows


def save_csv(rows, path):
    """Writes `report` rows to a CSV file (union of the columns)."""
    fields = []
    for row in rows:
        for key in row:
            if key not in fields:
                fields.append(key)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def _numeric_space(oracle):
    from keras_tuner.engine import hyperparameters as hp_module

    return [
        hp
        for hp in oracle.hyperparameters.space
        if isinstance(hp, (hp_module.Float, hp_module.Int))
    ]


def plot(tuner, rows, path):
    """Writes the objective-vs-hyperparameter PNG of `report` to `path`."""
    try:
        import matplotlib
        import matplotlib.ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "kerasreg.tuning.report(path=...) needs matplotlib. Install it "
            "with `pip install kerasreg[plot]`."
        ) from e
    oracle = local_oracle(tuner)
    objective = oracle.objective.name
    space = _numeric_space(oracle)
    n = max(len(space), 1)
    cols = min(n, 3)
    nrows = -(-n // cols)
    # No pyplot: the user's matplotlib backend and figures are left alone.
    fig = Figure(figsize=(4.2 * cols, 3.4 * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, cols, squeeze=False)
    scores = [r[objective] for r in rows if r[objective] is not None]
    bottom = min(scores) if scores else 0.0
    stages = sorted({r["stage"] for r in rows})
    viridis = matplotlib.colormaps["viridis"]

    def cmap(i):  # pyplot.get_cmap("viridis", max(len(stages), 2))(i)
        return viridis(i / (max(len(stages), 2) - 1))

    for ax, hp in zip(axes.flat, space):
        for i, stage in enumerate(stages):
            pts = [
                (r[hp.name], r[objective])
                for r in rows
                if r["stage"] == stage and r[objective] is not None and hp.name in r
            ]
            if pts:
                xs, ys = zip(*pts)
                ax.scatter(xs, ys, s=22, color=cmap(i), label=f"stage {stage + 1}")
        bad = [r[hp.name] for r in rows if r["diverged"] and hp.name in r]
        if bad:
            ax.scatter(bad, [bottom] * len(bad), marker="x", color="red", s=30, label="diverged")
        if getattr(hp, "sampling", "linear") == "log":
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        label = hp.name
        if label.startswith(ONE_MINUS_PREFIX):
            label = "1 - " + label[len(ONE_MINUS_PREFIX):]
        ax.set_xlabel(label)
        ax.set_ylabel(objective)
    for ax in list(axes.flat)[len(space):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
