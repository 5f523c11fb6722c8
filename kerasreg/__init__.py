"""kerasreg: classic training craft for Keras 3."""

from kerasreg.callbacks.weight_ema import WeightEMA

__version__ = "0.1.0"
__all__ = ["WeightEMA"]
