"""Backend-specific autodiff: gradients of a loss w.r.t. some variables.

Keras 3 has no portable gradient API (each trainer uses its backend's own:
`tf.GradientTape`, `jax.grad`, `torch.autograd`), and `ActivationHistograms`
needs gradients of the loss with respect to intermediate activations, outside
any train step. This module is the one place that branches on the backend.
"""

import keras


def value_and_grad(model, variables, x, y, loss_fn):
    """Outputs of `model(x)` and grads of `loss_fn(y, outputs[-1])`.

    Args:
        model: A `keras.Model` whose last output is the prediction.
        variables: Trainable variables of `model` to differentiate against.
        x: Input array(s).
        y: Targets.
        loss_fn: Callable `(y_true, y_pred) -> scalar tensor`.

    Returns:
        `(outputs, grads)`: the list of model outputs (tensors) and the list
        of gradients, one per variable.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            outputs = model(x, training=False)
            loss = loss_fn(y, outputs[-1])
        return outputs, tape.gradient(loss, variables)
    if backend == "jax":
        import jax

        trainable = list(model.trainable_variables)
        positions = [
            next(i for i, t in enumerate(trainable) if t is v)
            for v in variables
        ]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def f(values):
            tvals = [v.value for v in trainable]
            for i, value in zip(positions, values):
                tvals[i] = value
            outputs, _ = model.stateless_call(
                tvals, non_trainable, x, training=False
            )
            return loss_fn(y, outputs[-1]), outputs

        grad_fn = jax.value_and_grad(f, has_aux=True)
        (_, outputs), grads = grad_fn([v.value for v in variables])
        return outputs, grads
    if backend == "torch":
        import torch

        outputs = model(x, training=False)
        loss = loss_fn(y, outputs[-1])
        grads = torch.autograd.grad(loss, [v.value for v in variables])
        return outputs, list(grads)
    raise NotImplementedError(
        f"Gradients are not available on the {backend!r} backend."
    )
