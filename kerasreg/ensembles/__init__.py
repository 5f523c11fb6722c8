"""Ensembles and weight averaging."""

from kerasreg.ensembles.averaging import average_weights
from kerasreg.ensembles.averaging import recompute_batchnorm
from kerasreg.ensembles.bootstrap import fit_bootstrap
from kerasreg.ensembles.deep import DeepEnsemble
from kerasreg.ensembles.ensemble import Ensemble
from kerasreg.ensembles.mc_dropout import MCDropout
from kerasreg.ensembles.multi_head import MultiHeadEnsemble
from kerasreg.ensembles.report import EnsembleReport
from kerasreg.ensembles.report import report
from kerasreg.ensembles.snapshot import SnapshotEnsemble
