"""Learning-rate schedules: step, exponential, 1/t, cyclic cosine, warmup."""

from kerasreg.schedules.cyclic_cosine import CyclicCosine
from kerasreg.schedules.exponential import ExponentialDecay
from kerasreg.schedules.inverse_time import InverseTimeDecay
from kerasreg.schedules.plot import plot
from kerasreg.schedules.step import StepDecay
from kerasreg.schedules.warmup import Warmup

__all__ = [
    "CyclicCosine",
    "ExponentialDecay",
    "InverseTimeDecay",
    "StepDecay",
    "Warmup",
    "plot",
]
