"""Ensembles: fused `Ensemble.predict` against the two ways to do without it.

- a Python loop of `member.predict` (what users write by hand), averaged;
- a hand-written fused Keras functional graph: the members applied to one
  `Input`, their outputs averaged by `keras.layers.Average`.

Five benchmark MLPs (`_common.mlp`), 10,000 rows, `predict`'s default batch
size (32). Target: `Ensemble.predict` within 1.1x of the hand-written graph.
"""

import keras
import numpy as np
from _common import figure
from _common import interleaved
from _common import mlp
from _common import mlp_data
from _common import ratio

from kerasreg import Ensemble


def run(quick=False):
    x, _ = mlp_data(n=10_000)
    members = [mlp(seed=i) for i in range(5)]
    ensemble = Ensemble(members)
    inputs = keras.Input((x.shape[1],))
    outputs = keras.layers.Average()([m(inputs) for m in members])
    hand_fused = keras.Model(inputs, outputs)

    def loop():
        return np.mean([m.predict(x, verbose=0) for m in members], axis=0)

    fns = {
        "ensemble": lambda: ensemble.predict(x, verbose=0),
        "loop": loop,
        "hand_fused": lambda: hand_fused.predict(x, verbose=0),
    }
    # The three compute the same thing.
    reference = loop()
    np.testing.assert_allclose(fns["ensemble"](), reference, atol=1e-5)
    np.testing.assert_allclose(fns["hand_fused"](), reference, atol=1e-5)

    times = interleaved(fns, repeats=3 if quick else 9)
    note = "5 MLPs 784-256-256-10, 10k rows, batch 32, median of per-round ratios"
    return [
        figure(
            "member-predict loop / Ensemble.predict (speed-up)",
            ratio(times, "loop", "ensemble"),
            "> 1",
            note,
        ),
        figure(
            "Ensemble.predict / hand-written fused graph",
            ratio(times, "ensemble", "hand_fused"),
            "<= 1.1",
            note,
        ),
    ]
