"""kerasreg: classic training craft for Keras 3."""

__version__ = "0.1.0"

from kerasreg.callbacks.monitors import ActivationHistograms
from kerasreg.callbacks.monitors import UpdateRatioMonitor
from kerasreg.diagnostics.overfitting import overfitting_report
from kerasreg.diagnostics.sanity import sanity_check

__all__ = [
    "ActivationHistograms",
    "UpdateRatioMonitor",
    "overfitting_report",
    "sanity_check",
]
