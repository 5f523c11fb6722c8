"""kerasreg: classic training craft for Keras 3."""

from kerasreg import callbacks
from kerasreg import datasets
from kerasreg import ensembles
from kerasreg.callbacks.weight_ema import WeightEMA

__version__ = "0.1.0"
__all__ = [
    "WeightEMA",
    "callbacks",
    "datasets",
    "ensembles",
]
