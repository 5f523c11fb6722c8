"""The one place in kerasreg that talks to a backend directly.

Keras 3 has no portable "gradient of a function" op: each backend trainer
computes gradients with its own machinery (`jax.value_and_grad`,
`tf.GradientTape`, `torch.autograd`). The gradient check and
`ActivationHistograms` (gradients of the loss with respect to intermediate
activations) need exactly that, outside a training step. Backends are
imported lazily, inside the functions, so `import kerasreg` needs only keras
and numpy.

It also holds `float64_scope`, which makes float64 numerics real on jax:

1. jax keeps float64 arrays only with `jax_enable_x64` on; without it every
   "float64" array is silently float32. The scope turns it on for its
   duration (thread-locally, `jax.enable_x64(True)`).
2. Even then, Keras' type promotion (`keras.backend.result_type`) maps
   float64 to float32 on every backend but TensorFlow (a table in Keras'
   internals, "to be aligned with JAX's default"), so ops that promote
   through it, such as `keras.ops.tanh`, return float32 for float64
   inputs and a correct tanh/softmax network fails the check at ~1e-4.
   Keras has no switch for this, so the scope maps float64 to itself in
   that table for its duration and restores it on exit
   (`_compat.float64_promotion_kept`).

The scope also sets Keras' `floatx` and global dtype policy to float64, so
losses built inside it compute in float64, and so do layers that a rebuilt
subclassed model or custom layer creates without naming a dtype.
"""

import contextlib

import keras
import numpy as np

from kerasreg import _compat


def _backend():
    return keras.backend.backend()


def _unsupported():
    return NotImplementedError(
        "Gradients outside a train step are available on the 'jax' and "
        "'tensorflow' backends. "
        f"Received: backend={_backend()}"
    )


@contextlib.contextmanager
def float64_scope():
    """Compute in true float64 while inside (see the module docstring)."""
    previous_floatx = keras.config.floatx()
    with contextlib.ExitStack() as stack:
        if _backend() == "jax":
            import jax

            if hasattr(jax, "enable_x64"):
                stack.enter_context(jax.enable_x64(True))
            else:  # older jax (0.6, used with Keras 3.10) has it only here
                from jax.experimental import enable_x64

                stack.enter_context(enable_x64(True))
            stack.enter_context(_compat.float64_promotion_kept())
        previous_policy = keras.config.dtype_policy()
        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy("float64")
        try:
            yield
        finally:
            keras.config.set_dtype_policy(previous_policy)
            keras.config.set_floatx(previous_floatx)


def compile_function(fn):
    """Jit-compiles `fn(list_of_arrays) -> scalar` for repeated calls."""
    backend = _backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(fn, reduce_retracing=True)
        return lambda params: compiled([tf.constant(p) for p in params])
    raise _unsupported()


def value_and_grad(fn, params, has_aux=False):
    """Value of `fn(params)` and its gradient w.r.t. each array in `params`.

    Args:
        fn: Function of a list of arrays returning a scalar tensor, or
            `(scalar, aux)` when `has_aux`.
        params: List of arrays (numpy arrays or backend tensors).
        has_aux: Boolean. Whether `fn` also returns auxiliary outputs,
            passed back untouched. Defaults to `False`.

    Returns:
        `(value, grads)`, or `((value, aux), grads)` when `has_aux`: `value`
        a Python float and `grads` a list of numpy float64 arrays (zeros for
        a parameter the value does not depend on).
    """
    backend = _backend()
    aux = None
    if backend == "jax":
        import jax

        params = [jax.numpy.asarray(p) for p in params]
        result, grads = jax.value_and_grad(fn, has_aux=has_aux)(params)
        value, aux = result if has_aux else (result, None)
    elif backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(p) for p in params]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            result = fn(tensors)
        value, aux = result if has_aux else (result, None)
        grads = tape.gradient(value, tensors)
        grads = [
            tf.zeros_like(t) if g is None else tf.convert_to_tensor(g)
            for g, t in zip(grads, tensors)
        ]
    else:
        raise _unsupported()
    grads = [
        np.asarray(keras.ops.convert_to_numpy(g), dtype="float64") for g in grads
    ]
    value = float(keras.ops.convert_to_numpy(value))
    return ((value, aux) if has_aux else value), grads
