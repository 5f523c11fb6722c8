"""kerasreg: classic training craft for Keras 3."""

__version__ = "0.1.0"
__all__ = []
