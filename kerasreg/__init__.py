"""kerasreg: classic training craft for Keras 3."""

from kerasreg import callbacks
from kerasreg import tuning
from kerasreg.callbacks import StopOnDivergence

__version__ = "0.1.0"
__all__ = ["CoarseToFine", "StopOnDivergence", "callbacks", "tuning"]


def __getattr__(name):
    # `CoarseToFine` subclasses Keras Tuner's classes: loaded on first use so
    # that `import kerasreg` needs only keras and numpy.
    if name == "CoarseToFine":
        return tuning.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
