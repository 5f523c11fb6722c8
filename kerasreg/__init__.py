"""kerasreg: classic training craft for Keras 3."""

from kerasreg import callbacks
from kerasreg import datasets
from kerasreg import diagnostics
from kerasreg import ensembles
from kerasreg.callbacks.monitors import ActivationHistograms
from kerasreg.callbacks.monitors import UpdateRatioMonitor
from kerasreg.callbacks.weight_ema import WeightEMA
from kerasreg.diagnostics.overfitting import overfitting_report
from kerasreg.diagnostics.sanity import sanity_check

__version__ = "0.1.0"
__all__ = [
    "ActivationHistograms",
    "UpdateRatioMonitor",
    "WeightEMA",
    "callbacks",
    "datasets",
    "diagnostics",
    "ensembles",
    "overfitting_report",
    "sanity_check",
]
