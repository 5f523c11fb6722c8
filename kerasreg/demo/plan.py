"""The demo's plan, as plain data: its stages in order and its defaults.

This file imports nothing. The console script `kerasreg_cli` (a top-level
module) loads it by its path, without importing the `kerasreg` package
(whose `__init__` imports keras), and writes `kerasreg demo --help` from it;
`kerasreg.demo.stages` pairs each stage below with the function that runs
it. A stage is added here (name, title) and in `stages.py` (the function).
"""

DATASETS = ("digits", "fashion_mnist")
DEFAULT_OUT = "./kerasreg-demo/"
# Epoch budget of every stage, by dataset.
DEFAULT_EPOCHS = {"digits": 30, "fashion_mnist": 10}
# --quick: a smoke run of a few seconds.
QUICK_EPOCHS = 2
QUICK_MAX_TRAIN = 2000
QUICK_MAX_VAL = 500
# Stage 4's snapshots (cycles of the cyclic cosine rate).
SNAPSHOTS = 5
# Stage 5's deep ensemble (3 members: about 2x the training time of stage
# 2; 5 members cost about 3x, some 30 s of the demo on 2 cores).
DEEP_MEMBERS = 3
# Stage 6's ensemble of the best trials.
TUNE_TOP_K = 3

# The stages, in order: (name of the function in `kerasreg.demo.stages`,
# title shown by `--help` and on the stage's progress line, whether
# `--no-tune` skips it).
STAGES = (
    ("baseline", "baseline MLP (Keras layers, constant learning rate)", False),
    (
        "regularized",
        "kerasreg Dropout + BatchNormalization + He init + step schedule",
        False,
    ),
    ("with_ema", "+ WeightEMA (EMA weights evaluated)", False),
    (
        "snapshot",
        f"SnapshotEnsemble (M={SNAPSHOTS}) and its parameter-averaged model",
        False,
    ),
    (
        "deep_ensemble",
        f"DeepEnsemble (M={DEEP_MEMBERS}), fused training, "
        "then temperature scaling",
        False,
    ),
    (
        "tuned",
        "CoarseToFine search of learning rate and L2, "
        f"top-{TUNE_TOP_K} as an Ensemble",
        True,
    ),
)
