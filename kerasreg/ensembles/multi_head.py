"""`MultiHeadEnsemble`: one shared trunk, several independently initialized heads."""


import keras

from kerasreg import _checks
from kerasreg import _compat
from kerasreg._registry import register
from kerasreg.ensembles.combine import FusedOutputs
from kerasreg.ensembles.combine import check_combine
from kerasreg.ensembles.combine import probe
from kerasreg.ensembles.combine import raise_if_logits
from kerasreg.ensembles.ensemble import deserialize_models
from kerasreg.ensembles.ensemble import serialize_models
from kerasreg.ensembles.ensemble import stacked_predict
from kerasreg.ensembles.ensemble import _io_shapes
from kerasreg.ensembles.ensemble import _symbolic


@register
class MultiHeadEnsemble(FusedOutputs, keras.Model):
    """A shared-trunk ensemble: one feature extractor, `n_heads` heads.

    When a full ensemble of independent networks costs too much, share the
    expensive part: one trunk computes features once, and `n_heads`
    independently initialized heads (built by calling `head_fn()` once per
    head) each predict the classes from them (CS 182, lecture 7: multi-head
    ensembles). The trunk's weights exist once.

    Training sums the heads' losses, each head against the true labels: with
    `compile(loss=...)` the compiled loss is applied to every head and the
    results are added (regularization losses are added once). At inference
    (`predict`, `evaluate`, or calling the model) the heads' probabilities are
    combined like `Ensemble` does. The metrics of `compile` always see the
    combined prediction; so does the loss reported by `evaluate` (and
    `val_loss`), whereas the training `loss` is the sum over heads.

    Args:
        trunk: A Keras model or layer, the shared feature extractor.
        head_fn: Callable with no arguments returning a new Keras layer or
            model (a head ending in a softmax, or producing logits with
            `from_logits=True`). Called `n_heads` times.
        n_heads: Positive integer, the number of heads. Defaults to `5`.
        combine: String, `"mean"`, `"vote"` or `"geometric"`, as for
            `Ensemble`. Defaults to `"mean"`.
        from_logits: Boolean, whether the heads output logits (then compile
            with a loss taking `from_logits=True`). Defaults to `False`.
        name: String, the model name. Defaults to `None`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg import MultiHeadEnsemble

    trunk = keras.Sequential([
        keras.Input((8,)), keras.layers.Dense(32, activation="relu")
    ])
    model = MultiHeadEnsemble(
        trunk,
        lambda: keras.layers.Dense(3, activation="softmax"),
        n_heads=4,
    )
    model.compile("adam", "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.rand(64, 8).astype("float32")
    y = np.random.randint(0, 3, size=64)
    model.fit(x, y, epochs=1, verbose=0)
    probs = model.predict(x, verbose=0)         # (64, 3), heads combined
    per_head = model.head_predictions(x)        # (4, 64, 3)
    ```
    """

    def __init__(
        self,
        trunk,
        head_fn,
        n_heads=5,
        combine="mean",
        from_logits=False,
        name=None,
        **kwargs,
    ):
        _checks.int_at_least("n_heads", n_heads, 1)
        check_combine(combine)
        if not isinstance(trunk, keras.layers.Layer):
            raise ValueError(
                "Invalid value received for argument `trunk`. Expected a Keras "
                f"model or layer. Received: trunk={trunk!r}"
            )
        if isinstance(head_fn, keras.layers.Layer):
            raise ValueError(
                "Invalid value received for argument `head_fn`. Expected a "
                "callable with no arguments returning a new Keras layer or "
                "model on each call (e.g. `lambda: keras.layers.Dense(10, "
                "activation=\"softmax\")`), not a layer: one layer instance "
                "would share its weights across all heads. Received: "
                f"head_fn={head_fn!r}"
            )
        if not callable(head_fn):
            raise ValueError(
                "Invalid value received for argument `head_fn`. Expected a "
                "callable returning a new Keras layer. Received: "
                f"head_fn={head_fn!r}"
            )
        heads = []
        for i in range(int(n_heads)):
            head = head_fn()
            if not isinstance(head, keras.layers.Layer):
                raise ValueError(
                    "Invalid value received for argument `head_fn`. Expected "
                    "a callable returning a Keras layer or model. Received: "
                    f"head_fn() returned {head!r}"
                )
            if head is trunk or any(head is h for h in heads):
                raise ValueError(
                    "Invalid value received for argument `head_fn`. Expected "
                    "a callable returning a new layer on each call. Received: "
                    f"head_fn() returned the same object twice (call {i})"
                )
            heads.append(head)
        super().__init__(name=name, **kwargs)
        self.trunk = trunk
        self.heads = heads
        self.n_heads = int(n_heads)
        self.combine = combine
        self.from_logits = bool(from_logits)
        shapes = _io_shapes(trunk)
        if shapes is not None and len(shapes[0]) == 1:
            self.build((None,) + shapes[0][0])
            self._check_heads()

    def build(self, input_shape):
        features = self.trunk(_symbolic(input_shape))
        for head in self.heads:
            out = head(features)
        self._output_rank = len(out.shape)
        self.built = True

    def _check_heads(self):
        if self.from_logits:
            return

        def heads(x):
            features = self.trunk(x, training=False)
            return [h(features, training=False) for h in self.heads]

        outs = probe(self.trunk, heads)
        for i, out in enumerate(outs or []):
            raise_if_logits(
                out, f"head {i} ('{self.heads[i].name}')", "head_fn"
            )

    def _member_outputs(self, inputs, training=None):
        """The heads' raw outputs (a list), for `FusedOutputs`."""
        features = self.trunk(inputs, training=training)
        return [h(features, training=training) for h in self.heads]

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if not self._is_stacked(y_pred):
            return super().compute_loss(
                x=x,
                y=y,
                y_pred=y_pred,
                sample_weight=sample_weight,
                training=training,
            )
        # Head 0 through the standard path (which also adds the
        # regularization losses, once), the other heads through the same
        # compiled loss; each head's output with its Keras mask.
        total = super().compute_loss(
            x=x,
            y=y,
            y_pred=self._member_output(y_pred, 0),
            sample_weight=sample_weight,
            training=training,
        )
        compiled_loss = _compat.compiled_loss(self)
        if compiled_loss is not None:
            for i in range(1, self.n_heads):
                loss = compiled_loss(
                    y, self._member_output(y_pred, i), sample_weight
                )
                if loss is not None:
                    total = total + loss
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self._is_stacked(y_pred):
            y_pred = self._combine(y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def head_predictions(self, x, batch_size=None, verbose=0):
        """Each head's class probabilities, computed in one fused pass.

        Args:
            x: Input data, as for `predict`.
            batch_size: Integer, rows per batch. Defaults to `None` (32).
            verbose: Verbosity of the prediction loop. Defaults to `0`.

        Returns:
            A numpy array of shape `(n_heads, N, classes)`.
        """
        return stacked_predict(
            self, "_member_probabilities", x, batch_size, verbose
        )

    def get_config(self):
        base_config = super().get_config()
        config = {
            "trunk": keras.saving.serialize_keras_object(self.trunk),
            "heads": serialize_models(self.heads),
            "combine": self.combine,
            "from_logits": self.from_logits,
        }
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        trunk = keras.saving.deserialize_keras_object(
            config.pop("trunk"), custom_objects=custom_objects
        )
        heads = deserialize_models(config.pop("heads"), custom_objects)
        config.pop("n_heads", None)
        remaining = iter(heads)
        return cls(
            trunk, lambda: next(remaining), n_heads=len(heads), **config
        )
