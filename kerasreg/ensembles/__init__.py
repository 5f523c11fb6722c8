"""Ensembles and weight averaging."""

from kerasreg.ensembles.averaging import average_weights
from kerasreg.ensembles.averaging import recompute_batchnorm
