"""Weight initializers: Xavier, He, the classic small Gaussian, and LSUV."""

from kerasreg.initializers.lsuv import LSUVReport
from kerasreg.initializers.lsuv import lsuv
from kerasreg.initializers.variance_scaling import HeNormal
from kerasreg.initializers.variance_scaling import HeUniform
from kerasreg.initializers.variance_scaling import ScaledNormal
from kerasreg.initializers.variance_scaling import XavierNormal
from kerasreg.initializers.variance_scaling import XavierUniform

__all__ = [
    "HeNormal",
    "HeUniform",
    "LSUVReport",
    "ScaledNormal",
    "XavierNormal",
    "XavierUniform",
    "lsuv",
]
