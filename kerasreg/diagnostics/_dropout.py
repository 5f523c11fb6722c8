"""Switching off the dropout-like layers of a diagnostic copy of a model."""

import keras

from kerasreg import _compat


def switch_off_dropout(model):
    """Zeroes the rate of every dropout-like layer of `model`, in place.

    Covers `keras.layers.Dropout` and its subclasses (SpatialDropout,
    `kerasreg.Dropout`, Monte-Carlo ones included: `mc` is switched off too),
    GaussianDropout, AlphaDropout, GaussianNoise, and any other layer class
    whose name ends in "Dropout" and has a `rate`. Their `call` skips the
    noise when the rate (or `stddev`) is 0, whatever `training` says.
    """
    for layer in _layers(model):
        if isinstance(layer, keras.layers.GaussianNoise):
            _compat.set_noise_stddev(layer, 0.0)
        elif isinstance(
            layer,
            (
                keras.layers.Dropout,
                keras.layers.GaussianDropout,
                keras.layers.AlphaDropout,
            ),
        ) or (
            type(layer).__name__.endswith("Dropout") and hasattr(layer, "rate")
        ):
            _compat.set_dropout_rate(layer, 0.0)
        if isinstance(getattr(layer, "mc", None), bool):
            layer.mc = False


def _layers(model):
    """Every layer reachable from `model` (itself included), depth first."""
    out, seen = [], set()

    def visit(value, depth):
        if id(value) in seen or depth > 64:
            return
        seen.add(id(value))
        if isinstance(value, (list, tuple)):
            for item in value:
                visit(item, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item, depth + 1)
        elif isinstance(value, keras.layers.Layer):
            out.append(value)
            for item in vars(value).values():
                visit(item, depth + 1)

    visit(model, 0)
    return out
