"""`report`: how much an ensemble gains over its members, as a table."""

import keras
import numpy as np

from kerasreg import metrics as _metrics
from kerasreg.calibration.temperature import _fit as _fit_temperature
from kerasreg.calibration.temperature import apply_temperature
from kerasreg.ensembles.combine import combine_probabilities
from kerasreg.ensembles.deep import DeepEnsemble
from kerasreg.ensembles.ensemble import Ensemble
from kerasreg.ensembles.mc_dropout import MCDropout
from kerasreg.ensembles.multi_head import MultiHeadEnsemble
from kerasreg.ensembles.snapshot import SnapshotEnsemble

COLUMNS = ("model", "accuracy", "nll", "ece", "brier")
# With `calibration_data`: NLL and ECE after temperature scaling, and T.
CALIBRATED_COLUMNS = ("calibrated_nll", "calibrated_ece", "temperature")


class EnsembleReport:
    """Accuracy, NLL, ECE and Brier score of each member and combination.

    Returned by `kerasreg.ensembles.report`. `str(report)` (and `print`) gives
    an aligned text table; `rows` is a list of dicts with the keys
    `"model"`, `"accuracy"`, `"nll"`, `"ece"`, `"brier"` (and, when
    `report` was given `calibration_data`, `"calibrated_nll"`,
    `"calibrated_ece"` and `"temperature"`); `disagreement` is the members'
    mean pairwise disagreement; `to_dict()` returns both.
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
        columns = COLUMNS
        if self.rows and all(c in self.rows[0] for c in CALIBRATED_COLUMNS):
            columns = COLUMNS + CALIBRATED_COLUMNS
        header = list(columns)
        body = [
            [r["model"]] + [f"{r[c]:.4f}" for c in columns[1:]]
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
    labels, rows = _metrics.labels_and_probabilities(y, probs)
    return {
        "model": name,
        "accuracy": float(np.mean(rows.argmax(axis=1) == labels)),
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


def _calibrated(row, y, probs, y_val, probs_val, n_bins):
    """Adds NLL and ECE after temperature scaling fitted on the validation set."""
    t = _fit_temperature(
        y_val, probs_val, False, "calibration_data", "calibration_data"
    )
    # In their dtype, as fitted: the same floor under the log of zeros.
    scaled = apply_temperature(probs, t)
    row["calibrated_nll"] = _metrics.nll(y, scaled)
    row["calibrated_ece"] = _metrics.expected_calibration_error(
        y, scaled, n_bins=n_bins
    )
    row["temperature"] = t
    return row


def _check_calibration_data(calibration_data):
    if calibration_data is None:
        return None
    if (
        not isinstance(calibration_data, (tuple, list))
        or len(calibration_data) != 2
    ):
        raise ValueError(
            "Invalid value received for argument `calibration_data`. Expected "
            "a tuple `(x_val, y_val)`. Received: "
            f"calibration_data={calibration_data!r}"
        )
    return tuple(calibration_data)


def report(ensemble, x, y, batch_size=None, n_bins=15, calibration_data=None):
    """Scores an ensemble's members and its combinations on `(x, y)`.

    One row per member (`"member i"` for an `Ensemble` or a `DeepEnsemble`,
    `"head i"` for a `MultiHeadEnsemble`, `"snapshot i"` for the kept
    snapshots of a `SnapshotEnsemble`, `"sample i"` for the stochastic passes
    of an `MCDropout`), then one per combination: `"mean"`, `"vote"`,
    `"geometric"` (with the ensemble's member weights), and, for an
    `Ensemble` or a `SnapshotEnsemble`, `"parameter-averaged"`, the single
    model whose weights are the average of the members' weights, when the
    members share an architecture (`kerasreg.ensembles.average_weights`). Columns: accuracy, NLL, expected
    calibration error, Brier score; plus the members' disagreement. Member
    predictions are computed once, in one fused pass. (The vote row scores
    the vote shares as probabilities: a true class that got no vote costs
    `-log(1e-12)` in NLL, so its NLL is large by design.)

    With `calibration_data=(x_val, y_val)`, every row also gets its NLL and
    ECE after temperature scaling (`kerasreg.calibration`), with the
    temperature fitted on that validation set for that row, and the
    temperature: Ashukha et al. (2020) recommend comparing ensembles by
    their calibrated NLL, which does not reward a method merely for being
    less over-confident.

    Args:
        ensemble: An `Ensemble`, a `DeepEnsemble`, a `MultiHeadEnsemble`,
            a `SnapshotEnsemble` or an `MCDropout`.
        x: Inputs.
        y: Integer labels (or one-hot rows).
        batch_size: Integer, rows per prediction batch. Defaults to `None`.
        n_bins: Positive integer, bins of the calibration error. Defaults to
            `15`.
        calibration_data: Optional tuple `(x_val, y_val)`, a validation set
            (not the test set `(x, y)`) to fit the temperatures of the
            calibrated columns on. Defaults to `None` (no calibrated
            columns).

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
    x_val = np.random.rand(50, 4).astype("float32")
    y_val = np.random.randint(0, 3, size=50)
    calibrated = report(Ensemble(members), x, y,
                        calibration_data=(x_val, y_val))
    calibrated.row("mean")["calibrated_nll"]
    ```
    """
    calibration_data = _check_calibration_data(calibration_data)
    member_name = "member"
    if isinstance(ensemble, SnapshotEnsemble):
        ensemble = ensemble.ensemble()
        member_name = "snapshot"
    if isinstance(ensemble, Ensemble):
        predictions = ensemble.member_predictions
        names = [f"{member_name} {i}" for i in range(len(ensemble.members))]
        weights = ensemble.member_weights
        models = list(ensemble.members)
    elif isinstance(ensemble, (MultiHeadEnsemble, DeepEnsemble, MCDropout)):
        # No parameter-averaged row: heads share a trunk, deep-ensemble
        # members start from independent initializations, MC-dropout
        # samples share one set of weights.
        if isinstance(ensemble, MultiHeadEnsemble):
            predictions = ensemble.head_predictions
            names = [f"head {i}" for i in range(ensemble.n_heads)]
        elif isinstance(ensemble, DeepEnsemble):
            predictions = ensemble.member_predictions
            names = [f"member {i}" for i in range(ensemble.n_members)]
        else:
            predictions = ensemble.sample_predictions
            names = [f"sample {i}" for i in range(ensemble.n_samples)]
        weights = None
        models = None
    else:
        raise ValueError(
            "Invalid value received for argument `ensemble`. Expected an "
            "`Ensemble`, `MultiHeadEnsemble`, `SnapshotEnsemble`, "
            f"`DeepEnsemble` or `MCDropout`. Received: ensemble={ensemble!r}"
        )
    probs = predictions(x, batch_size=batch_size)
    outputs = {n: p for n, p in zip(names, probs)}
    for combine in ("mean", "vote", "geometric"):
        outputs[combine] = keras.ops.convert_to_numpy(
            combine_probabilities(probs.astype("float32"), combine, weights)
        )
    if calibration_data is not None:
        x_val, y_val = calibration_data
        probs_val = predictions(x_val, batch_size=batch_size)
        outputs_val = {n: p for n, p in zip(names, probs_val)}
        for combine in ("mean", "vote", "geometric"):
            outputs_val[combine] = keras.ops.convert_to_numpy(
                combine_probabilities(
                    probs_val.astype("float32"), combine, weights
                )
            )
    rows = []
    for name, p in outputs.items():
        rows.append(_scores(name, y, p, n_bins))
        if calibration_data is not None:
            _calibrated(rows[-1], y, p, y_val, outputs_val[name], n_bins)

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

                def averaged_probs(inputs):
                    p = np.asarray(
                        averaged.predict(
                            inputs, batch_size=batch_size, verbose=0
                        )
                    )
                    if ensemble.from_logits:
                        p = keras.ops.convert_to_numpy(
                            keras.ops.softmax(p, axis=-1)
                            if p.shape[-1] > 1
                            else keras.ops.sigmoid(p)
                        )
                    return p

                p = averaged_probs(x)
                rows.append(_scores("parameter-averaged", y, p, n_bins))
                if calibration_data is not None:
                    _calibrated(
                        rows[-1], y, p, y_val, averaged_probs(x_val), n_bins
                    )
        else:
            notes.append(
                "parameter-averaged: skipped (members differ in architecture)"
            )
    return EnsembleReport(rows, _metrics.disagreement(probs), notes)
