"""kerasreg: classic training craft for Keras 3."""

from kerasreg.layers import BatchNormalization
from kerasreg.layers import Dropout

__version__ = "0.1.0"
__all__ = ["BatchNormalization", "Dropout"]
