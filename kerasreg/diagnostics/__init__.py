"""Diagnostics: checks that a model and its training are sound."""

from kerasreg.diagnostics.gradient_check import GradientCheckReport
from kerasreg.diagnostics.gradient_check import gradient_check

__all__ = ["GradientCheckReport", "gradient_check"]
