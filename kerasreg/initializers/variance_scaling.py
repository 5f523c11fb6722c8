"""Variance-scaling weight initializers: Xavier, He and the classic small Gaussian.

The lecture notes (fish book, chapter 6) compare three ways of drawing the
initial weights of a layer whose previous layer has `n` units:

- `std = 0.01`: activations shrink layer after layer, gradients vanish;
- Xavier: `std = sqrt(1 / n)`, suited to symmetric S-shaped activations
  (tanh, sigmoid) that are nearly linear around zero;
- He: `std = sqrt(2 / n)`, for ReLU, whose negative half is zero and so
  needs twice the variance to keep the activations spread.

Normal variants draw from an *untruncated* normal distribution, so the
standard deviation is exactly the one stated (Keras' own `HeNormal` and
`GlorotNormal` truncate at two standard deviations and rescale). Uniform
variants draw from `[-limit, limit]` with `limit = sqrt(3) * std`, which
has the same variance. Fans follow Keras' conventions
(`keras.initializers.VarianceScaling`): for a Dense kernel of shape
`(fan_in, fan_out)` they are its two dimensions; for a convolution kernel
of shape `(*kernel_size, in_channels, out_channels)`,
`fan_in = prod(kernel_size) * in_channels` and
`fan_out = prod(kernel_size) * out_channels`.

All initializers are registered under the `kerasreg` package, so once
`kerasreg` is imported they can be named by string, e.g.
`keras.layers.Dense(64, kernel_initializer="kerasreg>HeNormal")`.
"""

import keras

from kerasreg import _checks
from kerasreg._registry import register

_MODES = ("fan_in", "fan_out", "fan_avg")


def _check_mode(mode):
    if mode not in _MODES:
        raise ValueError(
            "Invalid value received for argument `mode`. "
            f"Expected one of {_MODES}. Received: mode={mode}"
        )
    return mode


class _FixedVarianceScaling(keras.initializers.VarianceScaling):
    """`VarianceScaling` with a fixed scale and distribution (internal)."""

    _scale = 1.0
    _distribution = "untruncated_normal"

    def __init__(self, mode="fan_in", seed=None):
        super().__init__(
            scale=self._scale,
            mode=_check_mode(mode),
            distribution=self._distribution,
            seed=seed,
        )

    def get_config(self):
        # The seed as Keras serializes it (its own `get_config`).
        base_config = {"seed": super().get_config()["seed"]}
        config = {"mode": self.mode}
        return {**base_config, **config}


@register
class XavierNormal(_FixedVarianceScaling):
    """Xavier normal initializer: `std = sqrt(1 / fan_in)`.

    Draws samples from an (untruncated) normal distribution centred on 0
    with standard deviation `sqrt(1 / n)`, where `n` is the number of units
    of the previous layer (the kernel's fan-in), as in the lecture notes
    (Glorot & Bengio, 2010, simplified). With `mode="fan_avg"` it is
    Glorot's original `sqrt(2 / (fan_in + fan_out))`.

    Suited to tanh and sigmoid activations. Registered name:
    `"kerasreg>XavierNormal"`.

    Args:
        mode: String. Which fan sets the variance: `"fan_in"` (the notes'
            `sqrt(1 / n)`), `"fan_avg"` (Glorot's `sqrt(2 / (fan_in +
            fan_out))`) or `"fan_out"` (`sqrt(1 / fan_out)`). Defaults to
            `"fan_in"`.
        seed: Integer or `keras.random.SeedGenerator`, or `None` for a
            random seed. An integer or `None` gives the same values on every
            call of the same instance. Defaults to `None`.

    Example:

    ```python
    import keras
    import kerasreg

    init = kerasreg.initializers.XavierNormal(seed=0)
    w = keras.ops.convert_to_numpy(init((400, 300)))
    print(w.std())  # close to sqrt(1 / 400) = 0.05
    layer = keras.layers.Dense(8, activation="tanh",
                               kernel_initializer="kerasreg>XavierNormal")
    ```

    Reference:

    - [Glorot & Bengio, 2010](http://proceedings.mlr.press/v9/glorot10a.html)
    """

    _scale = 1.0
    _distribution = "untruncated_normal"


@register
class XavierUniform(_FixedVarianceScaling):
    """Xavier uniform initializer: same variance as `XavierNormal`.

    Draws samples from `U(-limit, limit)` with `limit = sqrt(3 / fan_in)`,
    so that the standard deviation is `sqrt(1 / fan_in)`, the same as
    `XavierNormal`. With `mode="fan_avg"`, `limit = sqrt(6 / (fan_in +
    fan_out))`, Glorot's uniform initializer. Registered name:
    `"kerasreg>XavierUniform"`.

    Args:
        mode: String. One of `"fan_in"`, `"fan_avg"`, `"fan_out"`, as in
            `XavierNormal`. Defaults to `"fan_in"`.
        seed: Integer or `keras.random.SeedGenerator`, or `None` for a
            random seed. Defaults to `None`.

    Example:

    ```python
    import keras
    import kerasreg

    init = kerasreg.initializers.XavierUniform(mode="fan_avg", seed=0)
    w = keras.ops.convert_to_numpy(init((400, 600)))
    print(w.std())  # close to sqrt(2 / (400 + 600)) ~ 0.0447
    ```

    Reference:

    - [Glorot & Bengio, 2010](http://proceedings.mlr.press/v9/glorot10a.html)
    """

    _scale = 1.0
    _distribution = "uniform"


class _FanInOnly(_FixedVarianceScaling):
    def __init__(self, seed=None):
        super().__init__(mode="fan_in", seed=seed)

    def get_config(self):
        return {"seed": super().get_config()["seed"]}


@register
class HeNormal(_FanInOnly):
    """He normal initializer: `std = sqrt(2 / fan_in)`.

    Draws samples from an (untruncated) normal distribution centred on 0
    with standard deviation `sqrt(2 / n)`, `n` being the kernel's fan-in.
    The factor 2 compensates for ReLU zeroing half of its inputs (He et al.,
    2015). Unlike `keras.initializers.HeNormal` the distribution is not
    truncated, so the standard deviation is exactly `sqrt(2 / n)`.
    Registered name: `"kerasreg>HeNormal"`.

    Args:
        seed: Integer or `keras.random.SeedGenerator`, or `None` for a
            random seed. Defaults to `None`.

    Example:

    ```python
    import keras
    import kerasreg

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(100, activation="relu",
                           kernel_initializer="kerasreg>HeNormal"),
        keras.layers.Dense(10, kernel_initializer=kerasreg.HeNormal(seed=1)),
    ])
    ```

    Reference:

    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """

    _scale = 2.0
    _distribution = "untruncated_normal"


@register
class HeUniform(_FanInOnly):
    """He uniform initializer: same variance as `HeNormal`.

    Draws samples from `U(-limit, limit)` with `limit = sqrt(6 / fan_in)`,
    whose standard deviation is `sqrt(2 / fan_in)`. Registered name:
    `"kerasreg>HeUniform"`.

    Args:
        seed: Integer or `keras.random.SeedGenerator`, or `None` for a
            random seed. Defaults to `None`.

    Example:

    ```python
    import keras
    import kerasreg

    init = kerasreg.initializers.HeUniform(seed=0)
    w = keras.ops.convert_to_numpy(init((3, 3, 16, 32)))  # conv kernel
    print(w.std())  # close to sqrt(2 / (3 * 3 * 16)) ~ 0.118
    ```

    Reference:

    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """

    _scale = 2.0
    _distribution = "uniform"


@register
class ScaledNormal(keras.initializers.RandomNormal):
    """The classic small Gaussian: `N(0, stddev**2)`, default `stddev=0.01`.

    `0.01 * np.random.randn(n_in, n_out)` is how weights were drawn before
    Xavier and He initialization; the lecture notes show that in a deep
    network its activations collapse towards zero and learning stalls. It
    is kept as a baseline for such experiments. Registered name:
    `"kerasreg>ScaledNormal"`.

    Args:
        stddev: Positive float. Standard deviation of the normal
            distribution. Defaults to `0.01`.
        seed: Integer or `keras.random.SeedGenerator`, or `None` for a
            random seed. Defaults to `None`.

    Example:

    ```python
    import keras
    import kerasreg

    init = kerasreg.initializers.ScaledNormal(stddev=0.01, seed=0)
    w = keras.ops.convert_to_numpy(init((100, 100)))
    print(w.std())  # close to 0.01
    ```
    """

    def __init__(self, stddev=0.01, seed=None):
        _checks.positive_float("stddev", stddev)
        super().__init__(mean=0.0, stddev=float(stddev), seed=seed)

    def get_config(self):
        # The seed as Keras serializes it (its own `get_config`).
        base_config = {"seed": super().get_config()["seed"]}
        config = {"stddev": self.stddev}
        return {**base_config, **config}
