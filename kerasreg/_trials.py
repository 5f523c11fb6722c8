"""Keras Tuner trials, read alike by `kerasreg.tuning` and `kerasreg.ensembles`.

The trial values `CoarseToFine` records (keys under `"tuner/"`), which trials
count as completed, and the trials of a search ranked best first. Keras
Tuner is not imported: a trial's status is compared with the string value of
`keras_tuner`'s `TrialStatus.COMPLETED`.

Keras Tuner's `get_best_trials(n)` (hence `get_best_models(n)`) pads its
answer with failed and invalid trials when fewer than `n` completed, and
sorts a completed trial whose score is NaN among the others (a NaN compares
neither below nor above anything, so the order around it is arbitrary).
"""

import math

from kerasreg import _checks
from kerasreg._compat import local_oracle

# Trial values of `CoarseToFine` (the `"tuner/"` prefix marks bookkeeping
# values, as Keras Tuner's `Hyperband` does).
STAGE_KEY = "tuner/stage"
EPOCHS_KEY = "tuner/epochs"
DIVERGED_KEY = "tuner/diverged"
CARRIED_KEY = "tuner/carried_from"
BOOKKEEPING_PREFIX = "tuner/"
DIVERGED_PREFIX = "Diverged: "

COMPLETED = "COMPLETED"


def is_completed(trial):
    """Whether a trial completed with a finite score."""
    score = trial.score
    return (
        trial.status == COMPLETED
        and _checks.is_real(score)
        and math.isfinite(score)
    )


def ranked_trials(tuner):
    """The trials of a search: completed ones best first, then the others.

    The order is the oracle's (`get_best_trials`, so that an oracle with its
    own ranking, such as `CoarseToFineOracle`, keeps it); when the oracle
    ranked a non-finite score among the completed trials, the completed
    trials are sorted again by score.

    Args:
        tuner: A Keras Tuner tuner or oracle.

    Returns:
        A tuple `(completed, others)` of lists of `Trial`s: the trials
        completed with a finite score, best first, and all other trials
        (failed, invalid, running, or completed with a NaN/Inf/missing
        score).
    """
    oracle = getattr(tuner, "oracle", tuner)
    local = local_oracle(tuner)
    # Ask for every trial (a distributed worker's local copy may know fewer
    # than the chief: ask for at least `max_trials`).
    n = max(len(getattr(local, "trials", {}) or {}), oracle.max_trials or 0)
    ordered = list(oracle.get_best_trials(n)) if n else []
    completed = [t for t in ordered if is_completed(t)]
    others = [t for t in ordered if not is_completed(t)]
    if any(t.status == COMPLETED for t in others):
        # A stable sort: among equal scores the oracle's order is kept.
        completed.sort(
            key=lambda t: t.score,
            reverse=oracle.objective.direction == "max",
        )
    return completed, others
