"""Diagnostics to run before and during training."""

from kerasreg.diagnostics.gradient_check import GradientCheckReport
from kerasreg.diagnostics.gradient_check import gradient_check
from kerasreg.diagnostics.overfitting import OverfittingReport
from kerasreg.diagnostics.overfitting import overfitting_report
from kerasreg.diagnostics.sanity import SanityCheck
from kerasreg.diagnostics.sanity import SanityReport
from kerasreg.diagnostics.sanity import sanity_check
