"""Reliability diagrams: is a classifier as accurate as it is confident?"""

import numpy as np

from kerasreg import _checks
from kerasreg import metrics as _metrics

FIGSIZE = (6.0, 7.0)
DPI = 100


def plot_reliability(y_true, probs, path, n_bins=15, title=None):
    """Writes reliability diagrams (Guo et al., 2017) to a PNG file.

    Top panel: for each of `n_bins` equal-width bins of confidence (the top
    predicted probability), the accuracy against the mean confidence of the
    rows in the bin, with the diagonal of perfect calibration; points below
    the diagonal are over-confident. With one model the per-bin accuracy is
    also drawn as bars. Bottom panel: the histogram of confidences (the
    share of rows in each bin). The legend gives each model's expected
    calibration error (`kerasreg.metrics.expected_calibration_error`, same
    bins).

    Needs matplotlib (`pip install "kerasreg[plot]"`). The figure is drawn
    with `matplotlib.figure.Figure` and the Agg canvas directly: pyplot's
    state and backend are not touched.

    Args:
        y_true: Integer labels of shape `(N,)` or one-hot rows `(N, classes)`.
        probs: Predicted probabilities of shape `(N, classes)`, or a dict
            mapping model names to such arrays (several models on one
            figure).
        path: Where to write the PNG (a string or path).
        n_bins: Positive integer, the number of confidence bins. Defaults
            to `15`.
        title: Optional string, the figure title. Defaults to `None`
            (`"Reliability diagram"`).

    Returns:
        `path`, as a string.

    Example:

    ```python
    import numpy as np
    from kerasreg.calibration import plot_reliability

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=500)
    logits = rng.normal(size=(500, 3)) + 2.0 * np.eye(3)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    p_sharp = p**3 / (p**3).sum(axis=1, keepdims=True)
    plot_reliability(y, {"model": p, "sharpened": p_sharp},
                     "reliability.png")
    ```
    """
    n_bins = _checks.int_at_least("n_bins", n_bins, 1)
    models = dict(probs) if isinstance(probs, dict) else {"model": probs}
    if not models:
        raise ValueError(
            "Invalid value received for argument `probs`. Expected an array "
            "of probabilities or a non-empty dict of them. Received: probs={}"
        )
    stats = {
        name: (
            _metrics.calibration_bins(y_true, p, n_bins),
            _metrics.expected_calibration_error(y_true, p, n_bins),
        )
        for name, p in models.items()
    }
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "`plot_reliability` needs matplotlib. Install it with: "
            'pip install "kerasreg[plot]"'
        ) from e

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    width = 1.0 / n_bins
    top.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect")
    for name, (bins, ece) in stats.items():
        confidence, counts, conf_sum, correct_sum = bins
        filled = counts > 0
        accuracy = correct_sum[filled] / counts[filled]
        mean_conf = conf_sum[filled] / counts[filled]
        if len(stats) == 1:
            top.bar(
                edges[:-1][filled], accuracy, width=width, align="edge",
                color="tab:blue", alpha=0.25, edgecolor="tab:blue",
            )
        top.plot(
            mean_conf, accuracy, marker="o", label=f"{name} (ECE {ece:.3f})"
        )
        bottom.hist(
            confidence, bins=edges, histtype="step", linewidth=1.5,
            weights=np.full(confidence.shape, 1.0 / max(len(confidence), 1)),
            label=name,
        )
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(title or "Reliability diagram")
    top.legend(loc="upper left")
    top.tick_params(labelbottom=False)
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_ylabel("share of rows")
    path = str(path)
    fig.savefig(path)
    return path
