"""WeightEMA cost: fit time relative to a plain fit, and to `use_ema=True`.

Every variant trains the benchmark MLP (`_common.mlp`) for one epoch on the
same data, alternating variants in each round so that machine noise hits all
alike. Compilation is excluded: each variant is fitted once before timing,
and later `fit` calls reuse the compiled train function.
"""

import keras

from _common import figure
from _common import interleaved
from _common import mlp
from _common import mlp_data
from _common import ratio

from kerasreg.callbacks import WeightEMA


def run(quick=False):
    n = 8192 if quick else 16384
    x, y = mlp_data(n=n)
    batch_size = 64

    def compiled(use_ema=False):
        model = mlp()
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3, use_ema=use_ema),
            loss="sparse_categorical_crossentropy",
        )
        return model

    plain, builtin, ema, ema10 = (
        compiled(),
        compiled(use_ema=True),
        compiled(),
        compiled(),
    )
    callback = WeightEMA()
    callback10 = WeightEMA(every=10)

    def fit(model, callbacks=None):
        def run_fit():
            model.fit(
                x, y, batch_size=batch_size, epochs=1, verbose=0,
                shuffle=False, callbacks=callbacks,
            )
            if model is builtin and keras.backend.backend() == "jax":
                # Keras bug: on jax, `use_ema` leaves weights and averages
                # sharing buffers, and the next `fit` fails to donate them.
                # Break the aliasing (not timed as part of our callback).
                for v in model.trainable_variables:
                    v.assign(keras.ops.copy(v.value))

        return run_fit

    fns = {
        "plain": fit(plain),
        "use_ema": fit(builtin),
        "weight_ema": fit(ema, [callback]),
        "weight_ema_every10": fit(ema10, [callback10]),
    }
    times = interleaved(fns, repeats=5 if quick else 31, warmup=1)
    ours = ratio(times, "weight_ema", "plain")
    keras_ema = ratio(times, "use_ema", "plain")
    return [
        figure("WeightEMA() fit / plain fit", ours, "<= 1.15"),
        figure("Adam(use_ema=True) fit / plain fit", keras_ema, "reference"),
        figure(
            "WeightEMA() fit / use_ema fit",
            ratio(times, "weight_ema", "use_ema"),
            "<= 1.0",
        ),
        figure(
            "WeightEMA(every=10) fit / plain fit",
            ratio(times, "weight_ema_every10", "plain"),
            "<= 1.05",
        ),
    ]
