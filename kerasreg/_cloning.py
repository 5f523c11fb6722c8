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
  (`_compat.marked_uncompiled`), so nothing is compiled and the compile config (losses,
  metrics) is never deserialized;
* clones any other (subclassed) model through its config, with the compile
  config dropped, inside a custom-object scope holding every class and
  function reachable from the live model (`own_custom_objects`), so
  unregistered layers, initializers, regularizers... work too;
* builds the clone (`build_from_config`) when the source is built, so that
  `set_weights` can follow.
"""

import types

import keras

from kerasreg import _compat

# The message of `clone_model` for a model that is neither Sequential nor
# functional (a subclassed model) when `clone_function` is given.
_NOT_A_GRAPH_MODEL = "only supported for Sequential models or Functional"


def _clone_layer(layer):
    return layer.__class__.from_config(layer.get_config())


_SAVEABLE_TYPES = (
    keras.layers.Layer,
    keras.initializers.Initializer,
    keras.regularizers.Regularizer,
    keras.constraints.Constraint,
    keras.losses.Loss,
    keras.optimizers.schedules.LearningRateSchedule,
)


def _is_keras_own(obj):
    module = getattr(obj, "__module__", None) or ""
    return module == "keras" or module.startswith("keras.")


def own_custom_objects(model):
    """The model's own classes and functions, by the names Keras saves them.

    An unregistered custom layer (or initializer, regularizer, constraint,
    activation function, subclassed model) is saved under its Python name
    and cannot be found again when the config is loaded. Every such object
    reachable from the live model is collected here, so that loading the
    config inside `keras.saving.custom_object_scope(...)` finds it.
    """
    found = {}
    seen = set()

    def add(name, obj):
        if name and not name.startswith("<") and not _is_keras_own(obj):
            found.setdefault(name, obj)

    def visit(value, depth):
        if id(value) in seen or depth > 64:
            return
        seen.add(id(value))
        if isinstance(value, (list, tuple, set)):
            for item in value:
                visit(item, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item, depth + 1)
        elif isinstance(value, _SAVEABLE_TYPES):
            add(type(value).__name__, type(value))
            try:
                attributes = vars(value)
            except TypeError:
                return
            for item in attributes.values():
                visit(item, depth + 1)
        elif isinstance(value, types.FunctionType):
            add(value.__name__, value)

    visit(model, 0)
    return found


def uncompiled_config(model):
    """`model`'s serialized config without its compile config."""
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    return config


def from_own_config(model, config):
    """Deserializes `config` (of `model`) finding `model`'s own classes."""
    with keras.saving.custom_object_scope(own_custom_objects(model)):
        return keras.saving.deserialize_keras_object(config)


def clone_uncompiled(model):
    """A new, uncompiled model with `model`'s architecture and fresh weights.

    Args:
        model: A `keras.Model` (Sequential, functional or subclassed).

    Returns:
        A new `keras.Model`, built when `model` is built, not compiled.
    """
    with _compat.marked_uncompiled(model):
        try:
            clone = keras.models.clone_model(
                model, clone_function=_clone_layer, recursive=True
            )
        except ValueError as error:
            if _NOT_A_GRAPH_MODEL not in str(error):
                raise
            clone = None
    if clone is None:
        clone = from_own_config(model, uncompiled_config(model))
    if model.built and not clone.built:
        clone.build_from_config(model.get_build_config())
    return clone
