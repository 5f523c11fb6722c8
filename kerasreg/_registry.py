"""The one serialization registration helper used across kerasreg."""

import keras

register = keras.saving.register_keras_serializable(package="kerasreg")
