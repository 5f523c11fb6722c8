"""kerasreg: classic training craft for Keras 3."""

from kerasreg import datasets

__version__ = "0.1.0"
__all__ = ["datasets"]
