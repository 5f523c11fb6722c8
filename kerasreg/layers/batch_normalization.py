"""Batch normalization with a cumulative-average mode and a statistics reset."""

import inspect

import keras
import numpy as np
from keras import ops

from kerasreg import _checks
from kerasreg import _compat
from kerasreg._registry import register


# Keras added Batch Renormalization to its BatchNormalization in 3.14; older
# Keras rejects the three `renorm*` keywords.
_KERAS_HAS_RENORM = "renorm" in inspect.signature(
    keras.layers.BatchNormalization.__init__
).parameters


def _renorm_kwargs(renorm, renorm_clipping, renorm_momentum):
    """The `renorm*` arguments for Keras' BatchNormalization, if it has them."""
    if _KERAS_HAS_RENORM:
        return {
            "renorm": renorm,
            "renorm_clipping": renorm_clipping,
            "renorm_momentum": renorm_momentum,
        }
    if renorm:
        raise ValueError(
            "Invalid value received for argument `renorm`. renorm=True needs "
            f"Keras 3.14 or later (installed: {keras.version()}). "
            f"Received: renorm={renorm}"
        )
    return {}


def cumulative_momentum(num_batches):
    """The momentum that makes a moving average the mean of all batches.

    Keras' BatchNormalization updates its moving statistics with
    `moving = momentum * moving + (1 - momentum) * batch`. With
    `momentum = n / (n + 1)` for the batch that follows `n` others (0 for
    the first), `moving` is after every batch the equal-weight mean of the
    statistics of all batches so far: `moving * n / (n + 1) + batch / (n + 1)`.
    This is the cumulative mode of `kerasreg.BatchNormalization`
    (`momentum=None`, `n` its `num_batches_tracked`) and the rule
    `kerasreg.ensembles.recompute_batchnorm` gives every BatchNormalization
    layer (Keras' own too) for its pass.

    Args:
        num_batches: The number `n` of batches already averaged: a Python
            number or a scalar tensor.

    Returns:
        `n / (n + 1)`, of the type of `num_batches`.
    """
    return num_batches / (num_batches + 1.0)


def reset_moving_statistics(layer):
    """Resets the moving statistics of a `keras.layers.BatchNormalization`.

    Works on Keras' layer and its subclasses (`kerasreg.BatchNormalization`,
    whose `reset_statistics()` calls it): see
    `kerasreg.BatchNormalization.reset_statistics`. Does nothing on a layer
    that is not built yet.

    Args:
        layer: A `keras.layers.BatchNormalization` instance.
    """
    if not layer.built:
        return
    shape = layer.moving_mean.shape
    mean0 = layer.moving_mean_initializer(shape, dtype=layer.moving_mean.dtype)
    var0 = layer.moving_variance_initializer(
        shape, dtype=layer.moving_variance.dtype
    )
    layer.moving_mean.assign(mean0)
    layer.moving_variance.assign(var0)
    counter = getattr(layer, "num_batches_tracked", None)
    if counter is not None:
        counter.assign(0.0)
    if getattr(layer, "renorm", False):  # Keras < 3.14: no renorm
        layer.moving_stddev.assign(ops.sqrt(var0))
        layer.renorm_mean.assign(mean0)
        layer.renorm_stddev.assign(ops.sqrt(var0))


def _checked_momentum(momentum):
    if momentum is None:
        return None
    if not _checks.is_real(momentum) or not 0 <= momentum <= 1:
        raise _checks.invalid(
            "momentum", momentum, "a float value in [0, 1], or None"
        )
    return float(momentum)


@register
class BatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization, with a cumulative average and a statistics reset.

    A drop-in subclass of `keras.layers.BatchNormalization` (Ioffe & Szegedy,
    2015): every argument of the Keras layer is accepted with its default and
    config key, and `isinstance(layer, keras.layers.BatchNormalization)`
    holds.

    **In training** (`fit()`, or `training=True`) each feature is normalized
    with the mean and variance of the current mini-batch, then scaled by the
    learned `gamma` and shifted by the learned `beta`:
    `gamma * (x - mean(x)) / sqrt(var(x) + epsilon) + beta`. The variance is
    the biased one (divided by `n`, never `n - 1`), so a batch of a single
    example gives variance 0 and output `beta`, not NaN. The moving
    statistics used at inference are updated at each training call with
    `moving = momentum * moving + (1 - momentum) * batch`.

    **At inference** (`predict()`, `evaluate()`, `training=False`), and
    whenever the layer is frozen (`trainable=False`, as in Keras), it
    returns `gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) +
    beta` and changes no state.

    **Extras.** `momentum=None` replaces the exponential moving average by a
    cumulative, equal-weight one: after `k` training batches since the last
    `reset_statistics()`, `moving_mean` is the mean of the `k` batch means
    and `moving_variance` the mean of the `k` batch variances (the same
    update, with momentum `n / (n + 1)` for the batch after `n` others:
    `cumulative_momentum`). This is what re-estimating the statistics after
    averaging weights needs (as `torch.optim.swa_utils.update_bn` does):
    `kerasreg.ensembles.recompute_batchnorm` does it for every
    BatchNormalization layer of a model, or call `reset_statistics()`, set
    `momentum = None`, and run the training data through the model in
    training mode once. In that mode the layer counts the training batches
    it has seen in a non-trainable float32 variable `num_batches_tracked`
    (updated inside the compiled step, exact up to 2**24 batches). With a
    float `momentum` the layer has no counter and exactly the weights of
    `keras.layers.BatchNormalization` (`gamma`, `beta`, `moving_mean`,
    `moving_variance`, in Keras' order), so `set_weights`, `load_weights`
    and `.keras` / `.weights.h5` files move freely between the two. A built
    layer can still switch to `momentum=None` later: the counter is then
    created, at 0 (re-compile or re-trace the step function after changing
    `momentum`). Weights saved with the counter load into a layer without
    it (the counter is dropped), and weights saved without it load into a
    `momentum=None` layer (the counter starts at 0).

    The moving statistics and the counter are float32 variables under a
    mixed-precision policy (e.g. `"mixed_float16"`), and the statistics are
    computed in float32 there.

    Args:
        axis: Integer, the axis that should be normalized (typically the
            features axis). For instance, after a `Conv2D` layer with
            `data_format="channels_first"`, use `axis=1`. Defaults to `-1`.
        momentum: Float between 0 and 1, or `None`. Momentum of the moving
            average; `None` gives the cumulative average of all batches since
            the last `reset_statistics()`. Defaults to `0.99`.
        epsilon: Float greater than 0, added to the variance to avoid
            dividing by zero. Defaults to `1e-3`.
        center: If `True`, add the offset `beta` to the normalized tensor.
            Defaults to `True`.
        scale: If `True`, multiply by `gamma`. Defaults to `True`.
        beta_initializer: Initializer for the beta weight. Defaults to
            `"zeros"`.
        gamma_initializer: Initializer for the gamma weight. Defaults to
            `"ones"`.
        moving_mean_initializer: Initializer for the moving mean. Defaults to
            `"zeros"`.
        moving_variance_initializer: Initializer for the moving variance.
            Defaults to `"ones"`.
        beta_regularizer: Optional regularizer for the beta weight.
        gamma_regularizer: Optional regularizer for the gamma weight.
        beta_constraint: Optional constraint for the beta weight.
        gamma_constraint: Optional constraint for the gamma weight.
        renorm: Whether to use Batch Renormalization, as in Keras. Cannot be
            combined with `momentum=None`. Defaults to `False`.
        renorm_clipping: As in Keras; valid only if `renorm=True`.
        renorm_momentum: As in Keras; valid only if `renorm=True`. Defaults
            to `0.99`.
        synchronized: As in Keras (TensorFlow backend only). Defaults to
            `False`.
        **kwargs: Base layer keyword arguments (e.g. `name` and `dtype`).

    Call arguments:
        inputs: Input tensor (of any rank).
        training: Python boolean indicating whether the layer should behave
            in training mode (batch statistics, moving statistics updated)
            or in inference mode (moving statistics).
        mask: Binary tensor of shape broadcastable to `inputs`, with `True`
            marking the positions used for the batch mean and variance in
            training; masked positions are left out of the statistics.

    Example:

    ```python
    import numpy as np
    import kerasreg

    x = np.random.default_rng(0).normal(5.0, 2.0, (64, 3)).astype("float32")
    layer = kerasreg.BatchNormalization(momentum=None)
    for batch in np.split(x, 4):
        layer(batch, training=True)
    # moving_mean is now the mean of the 4 batch means
    print(np.asarray(layer.moving_mean))
    layer.reset_statistics()  # zeros, ones, counter 0
    ```
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        **kwargs,
    ):
        if not _checks.is_integer(axis) and not (
            _checks.is_real(axis) and float(axis).is_integer()
        ):
            raise _checks.invalid("axis", axis, "an integer")
        momentum = _checked_momentum(momentum)
        epsilon = _checks.positive_float("epsilon", epsilon)
        if momentum is None and renorm:
            raise ValueError(
                "Invalid value received for argument `momentum`. "
                "momentum=None (cumulative average) cannot be combined with "
                f"renorm=True. Received: momentum={momentum}, renorm={renorm}"
            )
        super().__init__(
            axis=axis,
            momentum=0.99 if momentum is None else momentum,
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            moving_mean_initializer=moving_mean_initializer,
            moving_variance_initializer=moving_variance_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            **_renorm_kwargs(renorm, renorm_clipping, renorm_momentum),
            synchronized=synchronized,
            **kwargs,
        )
        self.num_batches_tracked = None
        self.momentum = momentum

    @property
    def momentum(self):
        """Float in `[0, 1]`, or `None` for the cumulative average.

        Can be changed on a built layer (re-compile, or re-trace the step
        function, afterwards). Setting it to `None` on a built layer that has
        no `num_batches_tracked` yet creates that counter at 0.
        """
        return self._momentum

    @momentum.setter
    def momentum(self, value):
        value = _checked_momentum(value)
        if value is None and getattr(self, "renorm", False):
            raise ValueError(
                "Invalid value received for argument `momentum`. "
                "momentum=None (cumulative average) cannot be combined with "
                "renorm=True. Received: momentum=None, renorm=True"
            )
        self._momentum = value
        if value is None and self.built and self.num_batches_tracked is None:
            # Keras locks a layer's state once it is built.
            with _compat.unlocked_state(self):
                self._add_counter()

    def _add_counter(self):
        self.num_batches_tracked = self.add_weight(
            shape=(),
            name="num_batches_tracked",
            initializer="zeros",
            dtype="float32",
            trainable=False,
            autocast=False,
        )

    def build(self, input_shape):
        super().build(input_shape)
        if self.momentum is None:
            self._add_counter()

    def call(self, inputs, training=None, mask=None):
        updating = bool(training) and self.trainable
        if self.momentum is None and updating:
            # The cumulative average is Keras' own update with the momentum
            # `cumulative_momentum(n)` after `n` batches: Keras' call runs
            # with it (a tensor, so the compiled step is traced once).
            compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
            n = ops.cast(self.num_batches_tracked, compute_dtype)
            self._momentum = cumulative_momentum(n)
            try:
                outputs = super().call(inputs, training=training, mask=mask)
            finally:
                self._momentum = None
        else:
            outputs = super().call(inputs, training=training, mask=mask)
        if updating and self.num_batches_tracked is not None:
            self.num_batches_tracked.assign(self.num_batches_tracked + 1.0)
        return outputs

    def load_own_variables(self, store):
        # Weights saved with the batch counter (kerasreg 0.1.0 always had
        # one; a layer switched away from `momentum=None` keeps it) load into
        # a layer without it, and weights saved without it (a Keras layer)
        # load into a `momentum=None` layer, the counter at 0. The counter is
        # always the last variable.
        own = len(self.weights)
        saved = len(store.keys())
        counter = self.num_batches_tracked is not None
        if not counter and saved == own + 1:
            store = {str(i): store[str(i)] for i in range(own)}
        elif counter and saved == own - 1:
            store = {str(i): store[str(i)] for i in range(saved)}
            store[str(saved)] = np.zeros((), "float32")
        super().load_own_variables(store)

    def reset_statistics(self):
        """Resets the moving statistics and the batch counter.

        Sets `moving_mean` and `moving_variance` back to the values of
        `moving_mean_initializer` and `moving_variance_initializer` (zeros
        and ones by default) and `num_batches_tracked`, if the layer has
        one (`momentum=None`), to 0. With
        `renorm=True`, `renorm_mean`, `renorm_stddev` and `moving_stddev`
        are reset the same way (the standard deviations to the square root
        of the variance initializer). `gamma` and `beta` are not touched.
        Does nothing on a layer that is not built yet.

        On the JAX backend, inside `fit()`, call `model.jax_state_sync()`
        before and after (e.g. in `on_epoch_begin`), since Keras keeps the
        state outside the model's variables there.
        """
        reset_moving_statistics(self)
