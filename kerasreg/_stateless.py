"""`inference_call`: a model's `stateless_call` in inference mode.

`Layer.__call__` passes `training` only to a `call` that declares it;
`Layer.stateless_call` passes its keyword arguments to `call` as they are,
so `training=False` fails on a subclassed model whose `call(self, inputs)`
takes no `training` (the Keras guide's `MyModel`).
"""

import inspect


def accepts_training(model):
    """Whether `model.call` takes a `training` argument (as `__call__` checks)."""
    try:
        parameters = inspect.signature(model.call).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.name == "training" or p.kind is inspect.Parameter.VAR_KEYWORD
        for p in parameters
    )


def inference_call(model, trainable, non_trainable, inputs, return_losses=False):
    """`model.stateless_call(...)`, with `training=False` where `call` takes it.

    Args:
        model: A built `keras.Model`.
        trainable: Values of `model.trainable_variables`, in order.
        non_trainable: Values of `model.non_trainable_variables`, in order.
        inputs: The model's inputs.
        return_losses: Boolean, as in `stateless_call`. Defaults to `False`.

    Returns:
        What `model.stateless_call` returns.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg._stateless import inference_call

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    outputs, _ = inference_call(
        model,
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        np.ones((1, 3), "float32"),
    )
    ```
    """
    kwargs = {"training": False} if accepts_training(model) else {}
    return model.stateless_call(
        trainable, non_trainable, inputs, return_losses=return_losses, **kwargs
    )
