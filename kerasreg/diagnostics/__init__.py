"""Diagnostics to run before and after training."""

from kerasreg.diagnostics.overfitting import OverfittingReport
from kerasreg.diagnostics.overfitting import overfitting_report
from kerasreg.diagnostics.sanity import SanityCheck
from kerasreg.diagnostics.sanity import SanityReport
from kerasreg.diagnostics.sanity import sanity_check
