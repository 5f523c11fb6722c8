"""Ensembles: combine several models' predictions."""

from kerasreg.ensembles.bootstrap import fit_bootstrap
from kerasreg.ensembles.ensemble import Ensemble
from kerasreg.ensembles.multi_head import MultiHeadEnsemble
from kerasreg.ensembles.report import EnsembleReport, report

__all__ = [
    "Ensemble",
    "EnsembleReport",
    "MultiHeadEnsemble",
    "fit_bootstrap",
    "report",
]
