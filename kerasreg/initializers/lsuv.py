"""Layer-sequential unit-variance (LSUV) initialization (Mishkin & Matas, 2016)."""

import keras
import numpy as np

from kerasreg import _checks
from kerasreg import _compat

_KERNEL_LAYERS = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


class LSUVReport:
    """What `lsuv` did, one entry per Dense/Conv layer in forward order.

    Each entry is a dict with keys `"layer"` (the layer's name),
    `"variance"` (the variance of its pre-activation output on the batch
    after the last rescaling), `"iterations"` (how many times its kernel was
    rescaled) and `"converged"` (whether `|variance - 1| < tol`).

    The report behaves like a read-only list of these dicts
    (`len(report)`, `report[0]`, iteration), and `str(report)` is a small
    table.

    Args:
        layers: List of the per-layer dicts described above.
        tol: Positive float. The tolerance the layers were initialized with.
            Defaults to `0.1`.
    """

    def __init__(self, layers, tol=0.1):
        keys = {"layer", "variance", "iterations", "converged"}
        if not isinstance(layers, (list, tuple)) or not all(
            isinstance(entry, dict) and keys <= set(entry) for entry in layers
        ):
            raise _checks.invalid(
                "layers",
                layers,
                "a list of dicts with keys 'layer', 'variance', 'iterations' "
                "and 'converged'",
            )
        self.layers = list(layers)
        self.tol = _checks.positive_float("tol", tol)

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    @property
    def converged(self):
        """`True` when every layer ended within `tol` of unit variance."""
        return all(entry["converged"] for entry in self.layers)

    def __repr__(self):
        return f"<LSUVReport layers={len(self.layers)} converged={self.converged}>"

    def __str__(self):
        width = max([len("layer")] + [len(e["layer"]) for e in self.layers])
        lines = [
            f"LSUV initialization (tol={self.tol})",
            f"{'layer':<{width}}  {'variance':>10}  {'iterations':>10}  converged",
        ]
        for e in self.layers:
            lines.append(
                f"{e['layer']:<{width}}  {e['variance']:>10.4f}  "
                f"{e['iterations']:>10d}  {'yes' if e['converged'] else 'no'}"
            )
        return "\n".join(lines)


def _kernel_layers(model):
    # Recursive so that Dense/Conv layers inside nested models are found.
    return [
        layer
        for layer in _compat.sublayers(model, include_self=False)
        if isinstance(layer, _KERNEL_LAYERS)
    ]


def _call_spy(layers, on_call):
    """Temporarily wraps each layer's `call` to record the inputs it receives."""

    def make_spy(layer):
        original = layer.call

        def spy(inputs, *args, **kwargs):
            on_call(layer, inputs)
            return original(inputs, *args, **kwargs)

        return spy

    return _compat.replaced_calls(layers, make_spy)


def _forward(model, x):
    model(x, training=False)


def _layer_input(model, layer, x):
    captured = []

    def record(_, inputs):
        if not captured:
            captured.append(inputs)

    with _call_spy([layer], record):
        _forward(model, x)
    if not captured:
        raise ValueError(
            f"Layer '{layer.name}' was not called in the forward pass of "
            "the model, so LSUV cannot measure its output."
        )
    return captured[0]


def _pre_activation_variance(layer, inputs):
    # The layer's own linear op (x @ kernel + bias, or the convolution),
    # with its activation switched off for the measurement.
    with _compat.switched_activation(layer, keras.activations.linear):
        outputs = layer(inputs, training=False)
    return float(np.var(keras.ops.convert_to_numpy(outputs).astype("float64")))


def lsuv(model, x, tol=0.1, max_iter=10, seed=None):
    """Layer-sequential unit-variance (LSUV) initialization, in place.

    Mishkin & Matas (2016): first give every Dense/Conv kernel an orthogonal
    initialization, then, layer by layer in forward order, rescale the
    kernel so that the variance of the layer's pre-activation output
    (`x @ kernel + bias`, before the layer's own activation) on the batch
    `x` is 1: while `|var - 1| >= tol` and fewer than `max_iter` rescalings
    were done, divide the kernel by `sqrt(var)`. Earlier layers are fixed
    before later ones are measured, so each layer sees the activations the
    initialized network will actually produce. Biases are left as they are.

    Works for Sequential, functional and subclassed models (Dense/Conv layers
    nested in sub-models included). A layer called several times in the
    forward pass is measured on its first call.

    Args:
        model: A built (or buildable on `x`) Keras model containing at least
            one Dense or Conv layer.
        x: A batch of inputs the model accepts (array, tensor, or the list
            or dict of them that the model takes).
        tol: Positive float. Tolerance on `|var - 1|`. Defaults to `0.1`.
        max_iter: Positive integer. Maximum number of rescalings per layer.
            Defaults to `10`.
        seed: Integer or `None`. Seed of the orthogonal initialization
            (layer `i` uses `seed + i`). Defaults to `None` (random).

    Returns:
        An `LSUVReport`: per layer, its name, final pre-activation variance,
        number of rescalings and whether it converged.

    Example:

    ```python
    import keras
    import numpy as np
    import kerasreg

    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    x = np.random.default_rng(0).normal(size=(256, 20)).astype("float32")
    report = kerasreg.lsuv(model, x, seed=0)
    print(report)
    ```

    Reference:

    - [Mishkin & Matas, 2016](https://arxiv.org/abs/1511.06422)
    """
    _checks.positive_float("tol", tol)
    _checks.int_at_least("max_iter", max_iter, 1)
    if seed is not None and not _checks.is_integer(seed):
        raise _checks.invalid("seed", seed, "an integer or None")
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value received for argument `model`. "
            f"Expected a keras.Model. Received: model={model!r}"
        )
    if x is None:
        raise _checks.invalid(
            "x", x, "a batch of inputs the model accepts (array, tensor, or "
            "their list or dict)"
        )
    if not model.built:
        _forward(model, x)
    layers = _kernel_layers(model)
    if not layers:
        names = [
            layer.name for layer in _compat.sublayers(model, include_self=False)
        ]
        raise ValueError(
            "Invalid value received for argument `model`. Expected a model "
            "with at least one Dense or Conv layer. "
            f"Received: model={model.name} with layers {names}"
        )

    # Forward order: the order in which the layers are first called.
    order = []

    def record_order(layer, _):
        if layer not in order:
            order.append(layer)

    with _call_spy(layers, record_order):
        _forward(model, x)
    order += [layer for layer in layers if layer not in order]

    for i, layer in enumerate(order):
        init = keras.initializers.Orthogonal(
            seed=None if seed is None else int(seed) + i
        )
        kernel = layer.kernel
        kernel.assign(init(tuple(kernel.shape), dtype=kernel.dtype))

    entries = []
    for layer in order:
        inputs = _layer_input(model, layer, x)
        variance = _pre_activation_variance(layer, inputs)
        iterations = 0
        while abs(variance - 1.0) >= tol and iterations < max_iter:
            if not variance > 0 or not np.isfinite(variance):
                break
            scale = 1.0 / np.sqrt(variance)
            layer.kernel.assign(layer.kernel * keras.ops.cast(scale, layer.kernel.dtype))
            iterations += 1
            variance = _pre_activation_variance(layer, inputs)
        entries.append(
            {
                "layer": layer.name,
                "variance": variance,
                "iterations": iterations,
                "converged": bool(abs(variance - 1.0) < tol),
            }
        )
    return LSUVReport(entries, tol)
