"""Hyperparameter search on Keras Tuner: log-scale spaces, coarse-to-fine, reports.

`log_uniform`, `beta` and `report` need no extra package at import time.
`CoarseToFine` and `CoarseToFineOracle` subclass Keras Tuner's classes; they
are loaded on first access (PEP 562), so `import kerasreg` works without
`keras_tuner` and a clear ImportError names the `kerasreg[tuner]` extra.
"""

from kerasreg.tuning.report import report
from kerasreg.tuning.spaces import beta
from kerasreg.tuning.spaces import log_uniform

_LAZY = ("CoarseToFine", "CoarseToFineOracle")

__all__ = ["CoarseToFine", "CoarseToFineOracle", "beta", "log_uniform", "report"]


def _import_coarse_to_fine():
    try:
        import keras_tuner  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "kerasreg.tuning.CoarseToFine needs Keras Tuner. Install it with "
            "`pip install kerasreg[tuner]` (or `pip install keras-tuner`)."
        ) from e
    from kerasreg.tuning import coarse_to_fine

    return coarse_to_fine


def __getattr__(name):
    if name in _LAZY:
        return getattr(_import_coarse_to_fine(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
