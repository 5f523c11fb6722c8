"""The demo's figures: learning curves and the stages' learning rates.

Drawn on a `matplotlib.figure.Figure` with the Agg canvas, not with pyplot:
the user's matplotlib backend and pyplot's figures are left alone.
"""


def plot_learning_curves(rows, path):
    """Training / validation loss and validation accuracy per epoch, a PNG.

    Args:
        rows: List of result rows; each row's `"history"` (a
            `History.history` dict, maybe empty) gives its curves.
        path: Where to write the PNG.

    Returns:
        The matplotlib `Figure`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for r in rows:
        h = r["history"]
        # A one-epoch curve is a point: give it a marker, or it is invisible.
        marker = {"marker": "o"} if len(h.get("loss", ())) == 1 else {}
        for key, style in (("loss", "--"), ("val_loss", "-")):
            if key in h:
                ax_loss.plot(h[key], style, label=f"{r['method']} ({key})", **marker)
        if "val_accuracy" in h:
            ax_acc.plot(h["val_accuracy"], label=r["method"], **marker)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training / validation loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


class _Labeled:
    """A `callable(t)` with a legend label (`kerasreg.schedules.plot` reads `name`)."""

    def __init__(self, name, fn):
        self.name = name
        self._fn = fn

    def __call__(self, t):
        return self._fn(t)


def plot_schedules(schedules, steps, path):
    """The learning rate of every stage against the step, one PNG.

    Args:
        schedules: Dict mapping a legend label to a `callable(t)`, `t` the
            training step (`Context.schedules`).
        steps: Integer, the number of training steps drawn.
        path: Where to write the PNG.

    Returns:
        The matplotlib `Figure` (`kerasreg.schedules.plot`).
    """
    from kerasreg.schedules import plot

    labeled = [
        _Labeled(label, fn) if getattr(fn, "name", None) != label else fn
        for label, fn in schedules.items()
    ]
    return plot(labeled, steps=steps, path=path)
