"""Training callbacks."""

from kerasreg.callbacks.divergence import StopOnDivergence

__all__ = ["StopOnDivergence"]
