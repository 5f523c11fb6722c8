"""Calibration: temperature scaling and reliability diagrams."""

from kerasreg.calibration.reliability import plot_reliability
from kerasreg.calibration.temperature import TemperatureScaling
from kerasreg.calibration.temperature import apply_temperature
from kerasreg.calibration.temperature import fit_temperature
from kerasreg.calibration.temperature import optimal_temperature
