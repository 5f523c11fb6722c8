"""Keras masks carried through the models that wrap other models.

Keras attaches a mask (`Embedding(mask_zero=True)`, `Masking`, an RNN with
`return_sequences=True` after them) to the tensor it belongs to; losses and
metrics read it from `y_pred` and leave the masked steps out. An op makes a
new tensor without it: a wrapper that averages, rescales, stacks or tiles
its members' outputs would hand Keras an unmasked prediction, and the
padding would be trained on and scored. Keras' own layers carry masks with
`compute_mask`; here each op runs inside a `keras.layers.Lambda` whose
`mask` callable computes the output's mask from the inputs' masks, so the
mask travels by Keras' public mechanism, on every backend.

Each function takes the tensors and returns the op's result with its mask
(or none when the inputs had none).
"""

import keras
from keras import ops


def _masked_op(fn, inputs, mask_fn):
    """`fn(inputs)`, with the mask `mask_fn(masks of inputs)`.

    `mask_fn` receives the masks in the structure of `inputs` (None for a
    tensor without one) and returns the output's mask or None. The layer
    does not autocast, so a float32 prediction stays float32 under a
    mixed precision policy.
    """
    layer = keras.layers.Lambda(
        fn,
        mask=lambda _, masks: None if masks is None else mask_fn(masks),
        autocast=False,
    )
    return layer(inputs)


def _merged(masks):
    """Keras' merge rule (`keras.layers.Average`): the masks' OR, or None
    when any input has none."""
    if not masks or any(m is None for m in masks):
        return None
    merged = masks[0]
    for m in masks[1:]:
        merged = ops.logical_or(merged, m)
    return merged


def carry_mask(target, *sources):
    """`target` with the mask of `sources` (their OR, as Keras' merge
    layers combine masks; none when any source has none)."""
    return _masked_op(
        lambda t: t[-1], [*sources, target], lambda m: _merged(m[:-1])
    )


def stack(tensors, axis):
    """`ops.stack(tensors, axis)`, their masks stacked on the same axis."""
    return _masked_op(
        lambda t: ops.stack(t, axis=axis),
        list(tensors),
        lambda m: None
        if any(x is None for x in m)
        else ops.stack(m, axis=axis),
    )


def take(stacked, index, axis):
    """`ops.take(stacked, index, axis)` (a scalar index), and of its mask."""
    return _masked_op(
        lambda t: ops.take(t, index, axis=axis),
        stacked,
        lambda m: ops.take(m, index, axis=axis),
    )


def tile_batch(x, n):
    """`n` copies of `x` along the batch axis, `(n * B, ...)`, and of its
    mask."""

    def tile(t):
        return ops.tile(t, (n,) + (1,) * (len(t.shape) - 1))

    return _masked_op(tile, x, tile)


def mean_of_passes(x, n):
    """The mean of `n` passes stacked along the batch axis (as `tile_batch`
    makes them): `(n * B, ...)` to `(B, ...)`; the mask is the OR of the
    passes' masks (as `keras.layers.Average` merges masks)."""

    def passes(t):
        return ops.reshape(t, (n, -1) + tuple(ops.shape(t)[1:]))

    return _masked_op(
        lambda t: ops.mean(passes(t), axis=0),
        x,
        lambda m: ops.any(passes(m), axis=0),
    )
