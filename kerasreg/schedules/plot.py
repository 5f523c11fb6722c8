"""Plot learning-rate schedules with matplotlib (optional dependency)."""

import numpy as np
from keras import ops


def _label(schedule):
    name = getattr(schedule, "name", None)
    if name:
        return name
    return getattr(schedule, "__name__", None) or type(schedule).__name__


def _values(schedule, t):
    try:
        values = ops.convert_to_numpy(schedule(t))
        values = np.asarray(values, dtype="float64")
        if values.shape == t.shape:
            return values
    except Exception:  # a python callable that only takes scalars
        pass
    return np.array([float(ops.convert_to_numpy(schedule(int(s)))) for s in t])


def plot(schedule_or_list, steps, path=None, log_y=False):
    """Draws learning rate against `t` for one schedule or several, overlaid.

    Args:
        schedule_or_list: A schedule (any `LearningRateSchedule` or
            `callable(t) -> float`), or a list of them; each is drawn with a
            legend entry (its `name`, else its class name).
        steps: Integer. Draws `t = 0, 1, ..., steps - 1`.
        path: String or path-like. When given, the figure is saved there
            as a PNG. Defaults to `None`.
        log_y: Boolean. Logarithmic rate axis. Defaults to `False`.

    Returns:
        The matplotlib `Figure`.

    Raises:
        ImportError: if matplotlib is not installed
            (`pip install "kerasreg[plot]"`).

    Example:

    ```python
    import kerasreg

    fig = kerasreg.schedules.plot(
        [
            kerasreg.schedules.StepDecay(0.1, 0.5, 10, name="step"),
            kerasreg.schedules.CyclicCosine(0.1, 100, 4, name="cyclic cosine"),
        ],
        steps=100,
        path="schedules.png",
    )
    ```
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "`kerasreg.schedules.plot` needs matplotlib. Install it with "
            '`pip install "kerasreg[plot]"` (or `pip install matplotlib`).'
        ) from e
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(
            "Invalid value received for argument `steps`. "
            f"Expected an integer >= 1. Received: steps={steps!r}"
        )
    schedules = (
        list(schedule_or_list)
        if isinstance(schedule_or_list, (list, tuple))
        else [schedule_or_list]
    )
    t = np.arange(int(steps))
    fig = Figure(figsize=(6, 3.5))  # no pyplot: leaves the user's backend alone
    ax = fig.subplots()
    for schedule in schedules:
        ax.plot(t, _values(schedule, t), label=_label(schedule))
    ax.set_xlabel("t (step or epoch)")
    ax.set_ylabel("learning rate")
    if log_y:
        ax.set_yscale("log")
    if len(schedules) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig
