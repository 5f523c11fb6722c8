"""`report`: how much an ensemble gains over its members, as a table."""

import keras
import numpy as np

from kerasreg import metrics as _metrics
from kerasreg.ensembles.combine import combine_probabilities
from kerasreg.ensembles.ensemble import Ensemble
from kerasreg.ensembles.multi_head import MultiHeadEnsemble
from kerasreg.ensembles.snapshot import SnapshotEnsemble

COLUMNS = ("model", "accuracy", "nll", "ece", "brier")


class EnsembleReport:
    """Accuracy, NLL, ECE and Brier score of each member and combination.

    Returned by `kerasreg.ensembles.report`. `str(report)` (and `print`) gives
    an aligned text table; `rows` is a list of dicts with the keys
    `"model"`, `"accuracy"`, `"nll"`, `"ece"`, `"brier"`; `disagreement` is
    the members' mean pairwise disagreement; `to_dict()` returns both.
    """

    def __init__(self, rows, disagreement, notes=()):
        self.rows = list(rows)
        self.disagreement = float(disagreement)
        self.notes = list(notes)

    def to_dict(self):
        return {
            "rows": [dict(r) for r in self.rows],
            "disagreement": self.disagreement,
            "notes": list(self.notes),
        }

    def row(self, model):
        """The row named `model` (e.g. `"mean"` or `"member 0"`)."""
        for r in self.rows:
            if r["model"] == model:
                return r
        raise KeyError(model)

    def __str__(self):
        header = list(COLUMNS)
        body = [
            [r["model"]] + [f"{r[c]:.4f}" for c in COLUMNS[1:]]
            for r in self.rows
        ]
        widths = [
            max(len(line[j]) for line in [header] + body)
            for j in range(len(header))
        ]

        def fmt(line):
            cells = [line[0].ljust(widths[0])] + [
                cell.rjust(w) for cell, w in zip(line[1:], widths[1:])
            ]
            return "  ".join(cells).rstrip()

        lines = [fmt(header), "  ".join("-" * w for w in widths)]
        lines += [fmt(line) for line in body]
        lines.append(f"disagreement: {self.disagreement:.4f}")
        lines += self.notes
        return "\n".join(lines)

    def __repr__(self):
        return str(self)


def _scores(name, y, probs, n_bins):
    probs = np.asarray(probs, dtype=np.float64)
    labels = _metrics._as_labels(y, _metrics._as_probs(probs))
    pred = _metrics._as_probs(probs).argmax(axis=1)
    return {
        "model": name,
        "accuracy": float(np.mean(pred == labels)),
        "nll": _metrics.nll(y, probs),
        "ece": _metrics.expected_calibration_error(y, probs, n_bins=n_bins),
        "brier": _metrics.brier(y, probs),
    }


def _same_architecture(models):
    def signature(m):
        return (
            [type(layer).__name__ for layer in getattr(m, "layers", [])],
            [tuple(w.shape) for w in m.weights],
        )

    first = signature(models[0])
    return all(signature(m) == first for m in models[1:])


def report(ensemble, x, y, batch_size=None, n_bins=15):
    """Scores an ensemble's members and its combinations on `(x, y)`.

    One row per member (`"member i"`, `"head i"` for a `MultiHeadEnsemble`,
    `"snapshot i"` for the kept snapshots of a `SnapshotEnsemble`), then one
    per combination: `"mean"`, `"vote"`, `"geometric"` (with the ensemble's member weights), and
    `"parameter-averaged"`, the single model whose weights are the average
    of the members' weights, when the members share an architecture
    (`kerasreg.ensembles.average_weights`). Columns: accuracy, NLL, expected
    calibration error, Brier score; plus the members' disagreement. Member
    predictions are computed once, in one fused pass. (The vote row scores
    the vote shares as probabilities: a true class that got no vote costs
    `-log(1e-12)` in NLL, so its NLL is large by design.)

    Args:
        ensemble: An `Ensemble`, a `MultiHeadEnsemble` or a
            `SnapshotEnsemble`.
        x: Inputs.
        y: Integer labels (or one-hot rows).
        batch_size: Integer, rows per prediction batch. Defaults to `None`.
        n_bins: Positive integer, bins of the calibration error. Defaults to
            `15`.

    Returns:
        An `EnsembleReport`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg import Ensemble
    from kerasreg.ensembles import report

    members = [
        keras.Sequential([keras.Input((4,)),
                          keras.layers.Dense(3, activation="softmax")])
        for _ in range(3)
    ]
    x = np.random.rand(50, 4).astype("float32")
    y = np.random.randint(0, 3, size=50)
    table = report(Ensemble(members), x, y)
    print(table)
    table.row("mean")["nll"]
    ```
    """
    member_name = "member"
    if isinstance(ensemble, SnapshotEnsemble):
        ensemble = ensemble.ensemble()
        member_name = "snapshot"
    if isinstance(ensemble, Ensemble):
        probs = ensemble.member_predictions(x, batch_size=batch_size)
        names = [f"{member_name} {i}" for i in range(len(ensemble.members))]
        weights = ensemble.member_weights
        models = list(ensemble.members)
    elif isinstance(ensemble, MultiHeadEnsemble):
        probs = ensemble.head_predictions(x, batch_size=batch_size)
        names = [f"head {i}" for i in range(ensemble.n_heads)]
        weights = None
        models = None
    else:
        raise ValueError(
            "Invalid value received for argument `ensemble`. Expected an "
            "`Ensemble`, `MultiHeadEnsemble` or `SnapshotEnsemble`. Received: "
            f"ensemble={ensemble!r}"
        )
    rows = [_scores(n, y, p, n_bins) for n, p in zip(names, probs)]
    for combine in ("mean", "vote", "geometric"):
        combined = keras.ops.convert_to_numpy(
            combine_probabilities(probs.astype("float32"), combine, weights)
        )
        rows.append(_scores(combine, y, combined, n_bins))

    notes = []
    if models is not None and len(models) > 1:
        if _same_architecture(models):
            try:
                from kerasreg.ensembles.averaging import average_weights
            except ImportError:
                average_weights = None
                notes.append(
                    "parameter-averaged: skipped (kerasreg.ensembles."
                    "averaging is not available)"
                )
            if average_weights is not None:
                averaged = average_weights(models, weights=weights)
                p = np.asarray(
                    averaged.predict(x, batch_size=batch_size, verbose=0)
                )
                if ensemble.from_logits:
                    p = keras.ops.convert_to_numpy(
                        keras.ops.softmax(p, axis=-1)
                        if p.shape[-1] > 1
                        else keras.ops.sigmoid(p)
                    )
                rows.append(_scores("parameter-averaged", y, p, n_bins))
        else:
            notes.append(
                "parameter-averaged: skipped (members differ in architecture)"
            )
    return EnsembleReport(rows, _metrics.disagreement(probs), notes)
