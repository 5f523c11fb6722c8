"""Inverted dropout, with an optional Monte-Carlo mode kept on at inference."""

import keras

from kerasreg import _checks
from kerasreg._registry import register


@register
class Dropout(keras.layers.Dropout):
    """Applies inverted dropout to the input, optionally at inference too.

    During training each input unit is kept with probability `1 - rate` and
    set to 0 otherwise; the kept units are divided by `1 - rate` ("inverted"
    dropout), so that the expected value of every unit is unchanged and
    nothing has to be rescaled at test time. At inference the layer is the
    identity. Dropout trains an exponentially large ensemble of thinned
    networks that share weights (Srivastava et al., 2014); the plain
    inference pass approximates the ensemble's average.

    With `mc=True` the layer keeps dropping at inference as well
    (Monte-Carlo dropout, Gal & Ghahramani, 2016): averaging many stochastic
    forward passes, e.g. several `model.predict(x)` calls, samples that
    ensemble explicitly and also gives a measure of its disagreement.

    This is a drop-in replacement for `keras.layers.Dropout` (it subclasses
    it): it accepts the same arguments with the same defaults and config
    keys, and adds `mc` after them. The randomness comes from a
    `keras.random.SeedGenerator` owned by the layer, so it works inside a
    jit-compiled step on every backend and draws a fresh mask at each call.

    Args:
        rate: Float between 0 and 1. Fraction of the input units to drop.
        noise_shape: 1D integer tuple representing the shape of the binary
            dropout mask that will be multiplied with the input. For
            instance, if your inputs have shape
            `(batch_size, timesteps, features)` and you want the dropout mask
            to be the same for all timesteps, you can use
            `noise_shape=(batch_size, 1, features)`. Defaults to `None`
            (one independent draw per unit).
        seed: A Python integer to use as random seed. Defaults to `None`.
        mc: Boolean. If `True`, dropout is also applied at inference
            (Monte-Carlo dropout). Defaults to `False`.
        **kwargs: Base layer keyword arguments (e.g. `name` and `dtype`).

    Call arguments:
        inputs: Input tensor (of any rank).
        training: Python boolean indicating whether the layer should behave
            in training mode (adding dropout) or in inference mode (doing
            nothing, unless `mc=True`).

    Example:

    ```python
    import numpy as np
    import kerasreg

    layer = kerasreg.Dropout(0.5, seed=0)
    x = np.ones((2, 4), dtype="float32")
    y = layer(x, training=True)  # each entry is 0.0 or 2.0
    z = layer(x)  # inference: identical to x

    mc_layer = kerasreg.Dropout(0.5, seed=0, mc=True)
    w = mc_layer(x)  # still dropped at inference
    ```
    """

    def __init__(self, rate, noise_shape=None, seed=None, mc=False, **kwargs):
        # Keras' own check (`not 0 <= rate <= 1`) fails with a bare
        # TypeError for None or a string; same wording for every bad rate.
        if not _checks.is_real(rate) or not 0 <= rate <= 1:
            raise ValueError(
                "Invalid value received for argument `rate`. Expected a "
                f"float value between 0 and 1. Received: rate={rate!r}"
            )
        if not isinstance(mc, bool):
            raise ValueError(
                "Invalid value received for argument `mc`. "
                f"Expected a boolean. Received: mc={mc}"
            )
        super().__init__(rate=rate, noise_shape=noise_shape, seed=seed, **kwargs)
        self.mc = mc

    def call(self, inputs, training=False):
        if (training or self.mc) and self.rate >= 1:
            # Keras < 3.14 rejects rate=1 in `keras.random.dropout` on the
            # tensorflow backend; everything dropped is all zeros.
            return keras.ops.zeros_like(inputs)
        if (training or self.mc) and self.rate > 0:
            return keras.random.dropout(
                inputs,
                self.rate,
                noise_shape=self.noise_shape,
                seed=self.seed_generator,
            )
        return inputs

    def get_config(self):
        base_config = super().get_config()
        config = {"mc": self.mc}
        return {**base_config, **config}
