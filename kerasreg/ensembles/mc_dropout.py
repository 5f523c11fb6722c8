"""`MCDropout`: Monte-Carlo dropout, all passes in one compiled call.

Design notes
------------
* Dropout on, everything else in inference mode: while `MCDropout` traces
  its forward pass, every dropout layer of the wrapped model and every
  recurrent layer whose cells have `dropout` or `recurrent_dropout` (found
  among all the layers it tracks, at any depth: inside nested models,
  `Bidirectional` and custom layers too) has its `call` replaced, on the
  instance and for the duration of the trace only, by one that passes
  `training=True` (a recurrent layer hands it to its cells, which then draw
  their masks); the model itself is run with `training=False`, so
  BatchNormalization uses its moving statistics. The compiled function
  keeps the dropout ops; the model is left untouched afterwards.
* Keras masks (`Embedding(mask_zero=True)`, `Masking`) follow the batch:
  the tiling and the mean over the passes run through `kerasreg._masks`, so
  the layers after the tiling read the mask and `evaluate`'s loss and
  metrics leave the padded steps out, as for the wrapped model.
* One call, `n_samples` passes: the batch is tiled `n_samples` times along
  the batch axis, so that every pass draws its own dropout mask in a single
  dropout call, and the result is reshaped to `(n_samples, batch, ...)`.
* Deterministic prefix run once: tiling the input alone makes the cost
  `n_samples` full forward passes, which a compute-bound backend does not
  hide. The layers that do not depend on any dropout output give the same
  result in every pass, so they run once and the batch is tiled right
  before the first layer that does. For a `Sequential` model this is the
  first layer in `model.layers` that is or holds a sampled layer; for a
  functional model the
  forward graph is rebuilt once (`keras.models.clone_model` with the same
  layers and a `call_function`) with the tiling inserted on every tensor
  that enters the dropout-dependent sub-graph. Models that cannot be split
  this way (subclassed models) fall back to tiling the input.
"""

import types

import keras
from keras import ops

from kerasreg import _checks
from kerasreg import _compat
from kerasreg import _masks
from kerasreg._registry import register
from kerasreg._wrapper import ModelWrapper
from kerasreg.ensembles.combine import check_probabilities
from kerasreg.ensembles.ensemble import stacked_predict

# The dropout layers kept active: Keras' Dropout and its subclasses
# (kerasreg's Dropout, SpatialDropout1D/2D/3D) and Keras' other dropout
# layers. Recurrent layers (`keras.layers.RNN`: LSTM, GRU, SimpleRNN,
# ConvLSTM, also inside `Bidirectional`) are kept active when one of their
# cells has `dropout` or `recurrent_dropout`.
DROPOUT_TYPES = (
    keras.layers.Dropout,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)


def _cells(cell):
    """`cell` and the cells it stacks (`keras.layers.StackedRNNCells`)."""
    found = [cell]
    for sub in getattr(cell, "cells", None) or []:
        found.extend(_cells(sub))
    return found


def _is_sampled(layer):
    """Whether `layer` draws dropout noise of its own when training."""
    if isinstance(layer, DROPOUT_TYPES):
        return True
    return isinstance(layer, keras.layers.RNN) and any(
        getattr(c, "dropout", 0) or getattr(c, "recurrent_dropout", 0)
        for c in _cells(layer.cell)
    )


def _sampled_layers(layer):
    """The layers in `layer` (itself included, at any depth) that
    `MCDropout` keeps active; none for an op that is not a layer."""
    if not isinstance(layer, keras.layers.Layer):
        return []
    return [s for s in _compat.sublayers(layer) if _is_sampled(s)]


def _dropout_active(layers):
    """Makes `layers` drop whatever `training` they are called with."""

    def active_call(layer):
        method = type(layer).call

        def call(*args, training=None, **kwargs):
            return method(layer, *args, training=True, **kwargs)

        return call

    return _compat.replaced_calls(layers, active_call)


def _tile_structure(inputs, n):
    """Each tensor of `inputs` tiled `n` times along the batch axis, its
    Keras mask too."""
    return keras.tree.map_structure(
        lambda t: _masks.tile_batch(ops.convert_to_tensor(t), n), inputs
    )


def _split_functional(model, n):
    """`model`'s graph, same layers, with the batch tiled `n` times right
    before the dropout-dependent sub-graph; None when it cannot be rebuilt.
    """
    tiled = {}  # id -> tensor (kept alive, so that ids are not reused)

    def tile_if_needed(t):
        if isinstance(t, keras.KerasTensor) and id(t) not in tiled:
            t = _masks.tile_batch(t, n)
            tiled[id(t)] = t
        return t

    def call_function(layer, *args, **kwargs):
        tensors = [
            t
            for t in keras.tree.flatten((args, kwargs))
            if isinstance(t, keras.KerasTensor)
        ]
        if not (_sampled_layers(layer) or any(id(t) in tiled for t in tensors)):
            return layer(*args, **kwargs)
        args, kwargs = keras.tree.map_structure(tile_if_needed, (args, kwargs))
        outputs = layer(*args, **kwargs)
        for t in keras.tree.flatten(outputs):
            if isinstance(t, keras.KerasTensor):
                tiled[id(t)] = t
        return outputs

    try:
        graph = keras.models.clone_model(
            model, clone_function=lambda layer: layer, call_function=call_function
        )
    except (ValueError, TypeError, NotImplementedError):
        return None
    outputs = keras.tree.map_structure(tile_if_needed, graph.outputs)
    return keras.Model(graph.inputs, outputs, name=f"{model.name}_mc_graph")


@register
class MCDropout(ModelWrapper, keras.Model):
    """Monte-Carlo dropout: `n_samples` stochastic passes in one call.

    Gal & Ghahramani (2016): a network trained with dropout, run with dropout
    still on at inference, samples the ensemble of thinned networks that
    dropout trains; the mean of the sampled probabilities is a cheap ensemble
    prediction, better calibrated than the single deterministic pass, and
    the spread of the samples measures the model's uncertainty.

    `MCDropout` wraps a trained model into a `keras.Model` whose `predict`
    (and `evaluate`, after `compile`) runs the `n_samples` passes in one
    compiled call and returns their mean probabilities. In those passes the
    dropout layers (`keras.layers.Dropout` and its subclasses, such as
    `kerasreg.Dropout` and `SpatialDropout2D`, `GaussianDropout` and
    `AlphaDropout`) and the `dropout` / `recurrent_dropout` of recurrent
    layers (`LSTM`, `GRU`, `SimpleRNN`, `ConvLSTM2D`, `keras.layers.RNN`
    cells, also inside `Bidirectional`) drop, each pass with its own masks,
    while every other layer runs in inference mode (BatchNormalization uses
    its moving statistics), whether or not the dropout layers were built
    with `mc=True`. Noise that a custom layer draws itself (not through one
    of these layers) stays off. For `Sequential` and functional models the
    layers before the first dropout, which give the same result in every
    pass, run once; only the rest runs `n_samples` times. The model's Keras
    mask (`Embedding(mask_zero=True)`, `Masking`) is carried through the
    passes and onto the mean, so `evaluate` leaves padded steps out.

    Args:
        model: A trained Keras model with at least one dropout layer (or
            recurrent layer with `dropout` or `recurrent_dropout`), ending
            in a softmax (or a sigmoid for one output column), or in logits
            with `from_logits=True`.
        n_samples: Integer >= 1, the number of stochastic passes. Defaults
            to `30`.
        from_logits: Boolean, whether `model` outputs logits; if `True` a
            softmax (sigmoid for one column) is applied to each pass before
            averaging. With `False` (default), a model that visibly outputs
            logits (on a random probe input) is refused.
        name: String, the model name. Defaults to `None`.

    Example:

    ```python
    import numpy as np
    import keras
    import kerasreg

    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(32, activation="relu"),
        kerasreg.Dropout(0.3),
        keras.layers.Dense(3, activation="softmax"),
    ])
    x = np.random.rand(64, 8).astype("float32")
    y = np.random.randint(0, 3, size=64)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)

    mc = kerasreg.MCDropout(model, n_samples=20)
    probs = mc.predict(x, verbose=0)              # (64, 3), mean of 20 passes
    samples = mc.sample_predictions(x)            # (20, 64, 3)
    spread = samples.std(axis=0)                  # per-class uncertainty
    mc.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = mc.evaluate(x, y, verbose=0)
    ```
    """

    def __init__(self, model, n_samples=30, from_logits=False, name=None, **kwargs):
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Invalid value received for argument `model`. Expected a "
                f"Keras model. Received: model={model!r}"
            )
        n_samples = _checks.int_at_least("n_samples", n_samples, 1)
        from_logits = _checks.boolean("from_logits", from_logits)
        outputs = getattr(model, "outputs", None)
        if outputs and len(outputs) != 1:
            raise ValueError(
                "Invalid value received for argument `model`. Expected a "
                f"model with one output. Received: model='{model.name}' with "
                f"{len(outputs)} outputs"
            )
        dropouts = _sampled_layers(model)
        if not dropouts:
            raise ValueError(
                "Invalid value received for argument `model`. Expected a "
                "model with at least one dropout layer (keras.layers.Dropout, "
                "kerasreg.Dropout, ...) or recurrent layer with `dropout` or "
                "`recurrent_dropout` (keras.layers.LSTM, ...): without one "
                "every pass is the same. Received: model="
                f"'{model.name}' with no dropout layer"
            )
        if not from_logits:
            check_probabilities(model, f"model '{model.name}'", "model")
        super().__init__(name=name, **kwargs)
        self.model = model
        self.n_samples = n_samples
        self.from_logits = from_logits
        # Untracked: the graph reuses `model`'s layers and variables.
        self._plan = types.SimpleNamespace(
            dropouts=dropouts, graph=None, mode="tiled"
        )
        if isinstance(model, keras.Sequential):
            self._plan.mode = "sequential"
        elif getattr(model, "inputs", None) and getattr(model, "outputs", None):
            graph = _split_functional(model, n_samples)
            if graph is not None:
                self._plan.graph = graph
                self._plan.mode = "functional"
        if model.built:
            self.built = True

    def build(self, input_shape):
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def _forward(self, inputs):
        """The `n_samples` passes, stacked along the batch axis."""
        n = self.n_samples
        mode = self._plan.mode
        if mode == "functional":
            return self._plan.graph(inputs, training=False)
        if mode == "sequential":
            x, tiled = inputs, False
            for layer in self.model.layers:
                if not tiled and _sampled_layers(layer):
                    x, tiled = _tile_structure(x, n), True
                x = layer(x, training=False)
            return x if tiled else _tile_structure(x, n)
        return self.model(_tile_structure(inputs, n), training=False)

    def _passes(self, inputs):
        """The per-pass probabilities, stacked along the batch axis
        `(n_samples * batch, ...)`, with the model's output mask."""
        with _dropout_active(self._plan.dropouts):
            out = self._forward(inputs)
        if not self.from_logits:
            return out
        if out.shape[-1] == 1:
            return _masks.carry_mask(ops.sigmoid(out), out)
        return _masks.carry_mask(ops.softmax(out, axis=-1), out)

    def _sample_probabilities(self, inputs):
        """Per-pass probabilities, shape `(n_samples, batch, ...)`."""
        out = self._passes(inputs)
        return ops.reshape(out, (self.n_samples, -1) + tuple(ops.shape(out)[1:]))

    def call(self, inputs, training=None):
        return _masks.mean_of_passes(self._passes(inputs), self.n_samples)

    def sample_predictions(self, x, batch_size=None, verbose=0):
        """The probabilities of each stochastic pass, in one fused call.

        Args:
            x: Input data, as for `predict`.
            batch_size: Integer, rows per batch. Defaults to `None` (32).
            verbose: Verbosity of the prediction loop. Defaults to `0`.

        Returns:
            A numpy array of shape `(n_samples, N) + output_shape`; its mean
            over axis 0 is what `predict` returns for the same masks.
        """
        return stacked_predict(
            self, "_sample_probabilities", x, batch_size, verbose
        )

    def get_config(self):
        base_config = super().get_config()
        config = {
            "model": keras.saving.serialize_keras_object(self.model),
            "n_samples": self.n_samples,
            "from_logits": self.from_logits,
        }
        return {**base_config, **config}
