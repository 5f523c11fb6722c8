"""Parameter averaging (SWA-style) and BatchNorm statistics re-estimation."""

import warnings

import keras
import numpy as np
from keras import ops

from kerasreg import _checks
from kerasreg import _compat
from kerasreg._cloning import clone_uncompiled
from kerasreg.layers.batch_normalization import cumulative_momentum
from kerasreg.layers.batch_normalization import reset_moving_statistics


def average_weights(models, weights=None):
    """A new model whose float weights are the (weighted) mean of `models`.

    "Simply averaging their parameters works surprisingly well" (snapshot
    ensembles, Polyak/SWA averaging): models that share one training run
    (snapshots of the same model, checkpoints along one trajectory) can be
    merged into a single model at no inference cost. Non-float variables
    (counters, seed states) are copied from the first model. BatchNorm moving
    statistics are averaged as well, but averaged weights do not match any
    model's statistics: call `recompute_batchnorm` on the result.

    Args:
        models: List of models of the same architecture (same weight shapes,
            in the same order).
        weights: Optional list of non-negative floats, one per model (not
            all zero), normalised to sum to one. Defaults to `None`
            (equal weights).

    Returns:
        A new model with the architecture of `models[0]` (cloned without
        compiling it, so a model compiled with an unregistered loss or
        holding unregistered custom layers works), not compiled, holding the
        averaged weights.

    Example:

    ```python
    import keras
    import kerasreg

    def make():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])

    a, b = make(), make()
    mean_model = kerasreg.ensembles.average_weights([a, b])
    ```
    """
    if not isinstance(models, (list, tuple)) or len(models) == 0:
        raise ValueError(
            "Invalid value received for argument `models`. Expected a "
            f"non-empty list of models. Received: models={models!r}"
        )
    for i, model in enumerate(models):
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Invalid value received for argument `models`. Expected a "
                f"list of `keras.Model` instances. Received: models[{i}]="
                f"{model!r}"
            )
    if weights is None:
        coefficients = np.full(len(models), 1.0 / len(models))
    else:
        coefficients = np.asarray(weights, dtype="float64")
        if (
            coefficients.shape != (len(models),)
            or not np.all(np.isfinite(coefficients))
            or np.any(coefficients < 0)
            or coefficients.sum() <= 0
        ):
            raise ValueError(
                "Invalid value received for argument `weights`. Expected "
                f"{len(models)} non-negative floats, not all zero (one per "
                f"model). Received: weights={weights}"
            )
        coefficients = coefficients / coefficients.sum()

    reference = models[0].weights
    for m, model in enumerate(models[1:], start=1):
        other = model.weights
        if len(other) != len(reference):
            raise ValueError(
                "Models have different architectures: model 0 has "
                f"{len(reference)} weights, model {m} has {len(other)}."
            )
        for i, (a, b) in enumerate(zip(reference, other)):
            if tuple(a.shape) != tuple(b.shape):
                raise ValueError(
                    "Models have different architectures: weight "
                    f"{i} (`{a.path}`) has shape {tuple(a.shape)} in model 0 "
                    f"but `{b.path}` has shape {tuple(b.shape)} in model {m}."
                )

    values = []
    for i, variable in enumerate(reference):
        if not keras.backend.is_float_dtype(variable.dtype):
            values.append(ops.convert_to_numpy(variable))
            continue
        total = np.zeros(tuple(variable.shape), dtype="float64")
        for c, model in zip(coefficients, models):
            total += c * ops.convert_to_numpy(model.weights[i]).astype(
                "float64"
            )
        values.append(total.astype(ops.convert_to_numpy(variable).dtype))
    averaged = clone_uncompiled(models[0])
    averaged.set_weights(values)
    return averaged


def _batchnorm_layers(model):
    return [
        layer
        for layer in _compat.sublayers(model)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.built
    ]


def _is_array_input(x):
    leaves = keras.tree.flatten(x)
    return bool(leaves) and all(
        hasattr(leaf, "shape") and hasattr(leaf, "__getitem__")
        and not hasattr(leaf, "element_spec")
        for leaf in leaves
    )


def _batches(x, batch_size):
    if _is_array_input(x):
        leaves = keras.tree.flatten(x)
        n = int(leaves[0].shape[0])
        for start in range(0, n, batch_size):
            yield keras.tree.map_structure(
                lambda a: a[start : start + batch_size], x
            )
        return
    for element in x:
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(element)
        yield keras.tree.map_structure(np.asarray, inputs)


def recompute_batchnorm(model, x, batch_size=128, steps=None):
    """Re-estimates the moving statistics of every BatchNormalization layer.

    After weight averaging (`average_weights`, `WeightEMA`), the BatchNorm
    moving mean and variance no longer match the activations the averaged
    weights produce. This makes one pass over `x` with the model in training
    mode (PyTorch `torch.optim.swa_utils.update_bn` semantics) and sets each
    layer's moving mean and variance to the **equal-weight average over
    batches** of the batch mean and batch variance of the layer's inputs:
    every batch counts the same, a last partial batch too (as in PyTorch).
    The variance is the biased batch variance, as Keras' BatchNormalization
    uses for its moving variance (PyTorch stores the unbiased one).

    Every `keras.layers.BatchNormalization` (subclasses included, e.g.
    `kerasreg.BatchNormalization`, in nested models too) is re-estimated the
    way `kerasreg.BatchNormalization(momentum=None)` averages: its moving
    statistics are reset (`reset_statistics()`), then the batch after `n`
    others is applied with the momentum
    `kerasreg.layers.batch_normalization.cumulative_momentum(n)`
    `= n / (n + 1)`. With `renorm=True` the moving standard deviation is
    averaged and the variance derived from it, as Keras' renorm does. Each
    layer's `momentum` is restored afterwards and no variable is added (a
    `kerasreg.BatchNormalization` in cumulative mode keeps its
    `num_batches_tracked`, which ends at the number of batches); all other
    variables of the model are left as they were. If the pass fails, the
    statistics are restored too.

    Args:
        model: A built Keras model.
        x: Input data: an array (or a list/dict of arrays for several
            inputs), a `tf.data.Dataset`, or a generator / iterable of
            batches (`x` or `(x, y[, sample_weight])` tuples).
        batch_size: Integer. Batch size when `x` is an array. Defaults to
            `128`.
        steps: Optional integer. Number of batches to use. Defaults to
            `None` (the whole data).

    Returns:
        The model (updated in place).

    Example:

    ```python
    import numpy as np
    import keras
    import kerasreg

    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(1),
    ])
    x = np.random.rand(256, 4).astype("float32")
    kerasreg.ensembles.recompute_batchnorm(model, x, batch_size=64)
    ```
    """
    _checks.int_at_least("batch_size", batch_size, 1)
    if steps is not None:
        _checks.int_at_least("steps", steps, 1)
    layers = _batchnorm_layers(model)
    if not layers:
        warnings.warn(
            "recompute_batchnorm: the model has no built BatchNormalization "
            "layer; it is returned unchanged.",
            stacklevel=2,
        )
        return model

    statistics = [
        v
        for layer in layers
        for v in (
            layer.moving_mean,
            layer.moving_variance,
            getattr(layer, "moving_stddev", None),
            getattr(layer, "num_batches_tracked", None),
        )
        if v is not None
    ]
    ids = {id(v) for v in statistics}
    others = [v for v in model.variables if id(v) not in ids]
    saved_statistics = [ops.copy(v.value) for v in statistics]
    saved_others = [ops.copy(v.value) for v in others]
    saved_momentum = [layer.momentum for layer in layers]
    seen = 0
    try:
        for layer in layers:
            reset_moving_statistics(layer)
        for batch in _batches(x, batch_size):
            if steps is not None and seen >= steps:
                break
            for layer in layers:
                _compat.set_batchnorm_momentum(layer, cumulative_momentum(seen))
            model(batch, training=True)
            seen += 1
        if seen == 0:
            raise ValueError(
                "Invalid value received for argument `x`. Expected at least "
                f"one batch of data. Received an empty input: x={x!r}"
            )
    except BaseException:
        for variable, value in zip(statistics, saved_statistics):
            variable.assign(value)
        raise
    finally:
        for layer, momentum in zip(layers, saved_momentum):
            _compat.set_batchnorm_momentum(layer, momentum)
        for variable, value in zip(others, saved_others):
            variable.assign(value)
    return model
