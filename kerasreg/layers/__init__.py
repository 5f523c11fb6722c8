"""Drop-in Keras layers: inverted/Monte-Carlo Dropout, BatchNormalization."""

from kerasreg.layers.batch_normalization import BatchNormalization
from kerasreg.layers.dropout import Dropout

__all__ = ["BatchNormalization", "Dropout"]
