"""Training callbacks."""

from kerasreg.callbacks.weight_ema import WeightEMA
