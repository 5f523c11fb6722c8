"""kerasreg: classic training craft for Keras 3."""

from kerasreg import calibration
from kerasreg import callbacks
from kerasreg import datasets
from kerasreg import diagnostics
from kerasreg import ensembles
from kerasreg import initializers
from kerasreg import layers
from kerasreg import metrics
from kerasreg import schedules
from kerasreg import tuning
from kerasreg.callbacks import StopOnDivergence
from kerasreg.callbacks.monitors import ActivationHistograms
from kerasreg.callbacks.monitors import UpdateRatioMonitor
from kerasreg.callbacks.schedule import ScheduleCallback
from kerasreg.callbacks.snapshot import SnapshotCallback
from kerasreg.callbacks.weight_ema import WeightEMA
from kerasreg.diagnostics.gradient_check import GradientCheckReport
from kerasreg.diagnostics.gradient_check import gradient_check
from kerasreg.diagnostics.overfitting import overfitting_report
from kerasreg.diagnostics.sanity import sanity_check
from kerasreg.ensembles import DeepEnsemble
from kerasreg.ensembles import Ensemble
from kerasreg.ensembles import MCDropout
from kerasreg.ensembles import MultiHeadEnsemble
from kerasreg.ensembles import SnapshotEnsemble
from kerasreg.ensembles import fit_bootstrap
from kerasreg.initializers import HeNormal
from kerasreg.initializers import HeUniform
from kerasreg.initializers import LSUVReport
from kerasreg.initializers import ScaledNormal
from kerasreg.initializers import XavierNormal
from kerasreg.initializers import XavierUniform
from kerasreg.initializers import lsuv
from kerasreg.layers import BatchNormalization
from kerasreg.layers import Dropout
from kerasreg.schedules import CyclicCosine
from kerasreg.schedules import ExponentialDecay
from kerasreg.schedules import InverseTimeDecay
from kerasreg.schedules import StepDecay
from kerasreg.schedules import Warmup

__version__ = "0.1.0"
__all__ = [
    "CoarseToFine",
    "ActivationHistograms",
    "BatchNormalization",
    "CyclicCosine",
    "DeepEnsemble",
    "Dropout",
    "Ensemble",
    "ExponentialDecay",
    "GradientCheckReport",
    "HeNormal",
    "HeUniform",
    "InverseTimeDecay",
    "LSUVReport",
    "MCDropout",
    "MultiHeadEnsemble",
    "ScaledNormal",
    "ScheduleCallback",
    "SnapshotCallback",
    "SnapshotEnsemble",
    "StepDecay",
    "StopOnDivergence",
    "UpdateRatioMonitor",
    "Warmup",
    "WeightEMA",
    "XavierNormal",
    "XavierUniform",
    "calibration",
    "callbacks",
    "datasets",
    "diagnostics",
    "ensembles",
    "fit_bootstrap",
    "gradient_check",
    "initializers",
    "layers",
    "lsuv",
    "metrics",
    "overfitting_report",
    "sanity_check",
    "schedules",
    "tuning",
]


def __getattr__(name):
    # `CoarseToFine` subclasses Keras Tuner's classes: loaded on first use so
    # that `import kerasreg` needs only keras and numpy.
    if name == "CoarseToFine":
        return tuning.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
