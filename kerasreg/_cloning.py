"""`clone_uncompiled`: a new model with another's architecture, not compiled.

`keras.models.clone_model` compiles the clone from the source's compile
config whenever the source is compiled (keras/src/models/cloning.py), which
fails with "Could not locate function" for a model compiled with an ordinary
(unregistered) Python loss or metric, and gives a compiled clone where
kerasreg promises an uncompiled one. It also rebuilds nested models through
the serialization registry unless `recursive=True`.

`clone_uncompiled` therefore:

* clones `Sequential` and functional models with `clone_model(...,
  clone_function=..., recursive=True)`, where each layer is rebuilt as
  `layer.__class__.from_config(layer.get_config())`: through the class
  itself, so unregistered custom layers work. `clone_model` reads the
  source's public `compiled` attribute to decide whether to compile the
  clone; it is set to `False` for the duration of the call and restored
  (`finally`), so nothing is compiled and the compile config (losses,
  metrics) is never deserialized;
* clones any other (subclassed) model through its config, with the compile
  config dropped and the classes of the model and of its layers passed as
  `custom_objects`, so unregistered classes reachable from `model.layers`
  work too;
* builds the clone (`build_from_config`) when the source is built, so that
  `set_weights` can follow.
"""

import keras

# The message of `clone_model` for a model that is neither Sequential nor
# functional (a subclassed model) when `clone_function` is given.
_NOT_A_GRAPH_MODEL = "only supported for Sequential models or Functional"


def _clone_layer(layer):
    return layer.__class__.from_config(layer.get_config())


def _classes(model):
    """`{class name: class}` of `model` and every layer reachable from it."""
    classes = {}
    stack = [model]
    seen = set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        classes.setdefault(layer.__class__.__name__, layer.__class__)
        stack.extend(getattr(layer, "layers", None) or [])
    return classes


def _clone_through_config(model):
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    return keras.saving.deserialize_keras_object(
        config, custom_objects=_classes(model)
    )


def clone_uncompiled(model):
    """A new, uncompiled model with `model`'s architecture and fresh weights.

    Args:
        model: A `keras.Model` (Sequential, functional or subclassed).

    Returns:
        A new `keras.Model`, built when `model` is built, not compiled.
    """
    compiled = getattr(model, "compiled", False)
    try:
        model.compiled = False
        try:
            clone = keras.models.clone_model(
                model, clone_function=_clone_layer, recursive=True
            )
        except ValueError as error:
            if _NOT_A_GRAPH_MODEL not in str(error):
                raise
            clone = None
    finally:
        model.compiled = compiled
    if clone is None:
        clone = _clone_through_config(model)
    if model.built and not clone.built:
        clone.build_from_config(model.get_build_config())
    return clone
