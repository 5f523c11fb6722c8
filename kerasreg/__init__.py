"""kerasreg: classic training craft for Keras 3."""

__version__ = "0.1.0"

from kerasreg import callbacks
from kerasreg import schedules
from kerasreg.callbacks import ScheduleCallback
from kerasreg.schedules import CyclicCosine
from kerasreg.schedules import ExponentialDecay
from kerasreg.schedules import InverseTimeDecay
from kerasreg.schedules import StepDecay
from kerasreg.schedules import Warmup

__all__ = [
    "CyclicCosine",
    "ExponentialDecay",
    "InverseTimeDecay",
    "ScheduleCallback",
    "StepDecay",
    "Warmup",
    "callbacks",
    "schedules",
]
