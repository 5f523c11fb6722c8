"""kerasreg: classic training craft for Keras 3."""

__version__ = "0.1.0"

from kerasreg import diagnostics
from kerasreg import initializers
from kerasreg.diagnostics import GradientCheckReport
from kerasreg.diagnostics import gradient_check
from kerasreg.initializers import HeNormal
from kerasreg.initializers import HeUniform
from kerasreg.initializers import LSUVReport
from kerasreg.initializers import ScaledNormal
from kerasreg.initializers import XavierNormal
from kerasreg.initializers import XavierUniform
from kerasreg.initializers import lsuv

__all__ = [
    "GradientCheckReport",
    "HeNormal",
    "HeUniform",
    "LSUVReport",
    "ScaledNormal",
    "XavierNormal",
    "XavierUniform",
    "diagnostics",
    "gradient_check",
    "initializers",
    "lsuv",
]
