"""kerasreg: classic training craft for Keras 3."""

from kerasreg import metrics
from kerasreg.ensembles import Ensemble
from kerasreg.ensembles import MultiHeadEnsemble
from kerasreg.ensembles import fit_bootstrap

__version__ = "0.1.0"
__all__ = [
    "Ensemble",
    "MultiHeadEnsemble",
    "fit_bootstrap",
    "metrics",
]
