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
* clones a subclassed model that defines `get_config()` through its
  config, with the compile config dropped, inside a custom-object scope
  holding every class and function reachable from the live model
  (`own_custom_objects`), so unregistered layers, initializers,
  regularizers... work too;
* rebuilds a subclassed model without its own `get_config()` (the Keras
  guide's `MyModel()`) by calling its class without arguments. Its config
  cannot be used: Keras records none of the arguments a subclassed model
  was built with (`Model.__new__` does not pass them on, so the automatic
  config holds the constructor's defaults: `MyModel(units=3)` reports
  `units=2` when 2 is the default), and `from_config` passes `name`,
  `trainable` and `dtype` to an `__init__` that may take none. The new
  model is kept only when nothing tells it apart from the source (weight
  shapes, sublayer configs, attributes named like constructor
  parameters); otherwise a `ValueError` says to define `get_config()`;
* builds the clone (`build_from_config`) when the source is built, so that
  `set_weights` can follow.
"""

import inspect
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
    if clone is None and _defines_get_config(model):
        clone = from_own_config(model, uncompiled_config(model))
    if clone is None:
        return _rebuilt_with_defaults(model)
    _build_like(clone, model)
    return clone


def _build_like(clone, model):
    # Not `model.built`: a subclassed model built by `build_from_config`
    # has its weights but `built=False` (Keras 3.15), and so do its clones.
    config = model.get_build_config() if model.built or model.weights else None
    if config and not clone.built:
        clone.build_from_config(config)


def _defines_get_config(model):
    """Whether `model`'s class, not Keras, implements `get_config`."""
    for cls in type(model).__mro__:
        if "get_config" in vars(cls):
            return not _is_keras_own(cls)
    return False


def _rebuilt_with_defaults(model):
    """`type(model)()`, built, when nothing tells it apart from `model`."""
    name = type(model).__name__
    advice = (
        "Keras records no constructor argument of a subclassed model "
        "without `get_config()`: define `get_config()` returning them (see "
        "https://keras.io/guides/serialization_and_saving/)."
    )
    try:
        clone = type(model)()
    except TypeError as error:
        raise ValueError(
            f"Cannot make a new `{name}` like the model given: `{name}()` "
            f"fails ({error}). {advice}"
        ) from error
    _build_like(clone, model)
    differences = _differences(model, clone)
    if differences:
        raise ValueError(
            f"Cannot make a new `{name}` like the model given: `{name}()` "
            f"differs from it in {', '.join(differences)}, so the model was "
            f"built with other arguments. {advice}"
        )
    return clone


# Constructor arguments that Keras' own layers take and that change no
# computation (a clone has its own name).
_NOT_ARCHITECTURE = ("self", "name", "trainable", "dtype")


def _differences(model, clone):
    """What tells `clone` apart from `model` (built alike), as phrases."""
    found = []
    shapes = [(tuple(v.shape), v.dtype) for v in model.weights]
    if shapes != [(tuple(v.shape), v.dtype) for v in clone.weights]:
        found.append("its weight shapes")
    ours = _compat.sublayers(model, include_self=False)
    theirs = _compat.sublayers(clone, include_self=False)
    if [type(layer) for layer in ours] != [type(layer) for layer in theirs]:
        found.append("its layers")
    else:
        for a, b in zip(ours, theirs):
            if not _same(_config_without_names(a), _config_without_names(b)):
                found.append(f"the config of layer `{a.name}`")
    parameters = inspect.signature(type(model).__init__).parameters
    for name in parameters:
        if name in _NOT_ARCHITECTURE:
            continue
        if name in vars(model) and not _same(
            vars(model)[name], vars(clone).get(name)
        ):
            found.append(f"`{name}`")
    return found


def _config_without_names(layer):
    try:
        config = layer.get_config()
    except NotImplementedError:
        return None

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "name"}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    return strip(config)


def _same(a, b):
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays, whose `==` is elementwise
        return repr(a) == repr(b)
