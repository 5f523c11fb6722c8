"""Training callbacks."""

from kerasreg.callbacks.divergence import StopOnDivergence
from kerasreg.callbacks.monitors import ActivationHistograms
from kerasreg.callbacks.monitors import UpdateRatioMonitor
from kerasreg.callbacks.schedule import ScheduleCallback
from kerasreg.callbacks.snapshot import SnapshotCallback
from kerasreg.callbacks.weight_ema import WeightEMA
