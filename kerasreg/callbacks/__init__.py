"""kerasreg callbacks."""

from kerasreg.callbacks.monitors import ActivationHistograms
from kerasreg.callbacks.monitors import UpdateRatioMonitor
