"""Weight initializers: Xavier, He, the classic small Gaussian, and LSUV."""

from kerasreg import _compat
from kerasreg.initializers.lsuv import LSUVReport
from kerasreg.initializers.lsuv import lsuv
from kerasreg.initializers.variance_scaling import HeNormal
from kerasreg.initializers.variance_scaling import HeUniform
from kerasreg.initializers.variance_scaling import ScaledNormal
from kerasreg.initializers.variance_scaling import XavierNormal
from kerasreg.initializers.variance_scaling import XavierUniform

# By registered name too (`kernel_initializer="kerasreg>HeNormal"`), on every Keras.
_compat.add_initializer_names(
    HeNormal, HeUniform, ScaledNormal, XavierNormal, XavierUniform
)

__all__ = [
    "HeNormal",
    "HeUniform",
    "LSUVReport",
    "ScaledNormal",
    "XavierNormal",
    "XavierUniform",
    "lsuv",
]
