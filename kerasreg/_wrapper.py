"""`ModelWrapper`: the config round trip of a model that wraps one model."""

import keras


class ModelWrapper:
    """Mixin for a `keras.Model` built as `cls(model, **config)`.

    Like `keras.layers.Wrapper` for layers: `get_config` stores the wrapped
    model under the key `"model"` (serialized), and `from_config`
    deserializes it and passes the other keys to the constructor. Used by
    `TemperatureScaling`, `MCDropout` and `SnapshotEnsemble`.
    """

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(
            config.pop("model"), custom_objects=custom_objects
        )
        return cls(model, **config)
