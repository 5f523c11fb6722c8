"""Keras' own Dropout and BatchNormalization tests, run against kerasreg's layers.

"Drop-in" means that Keras' test suite for `keras.layers.Dropout` and
`keras.layers.BatchNormalization` passes with our classes in their place.
The two test files ship inside the installed `keras` package
(`keras/src/layers/regularization/dropout_test.py` and
`keras/src/layers/normalization/batch_normalization_test.py`). Each is loaded
here as a fresh, private copy of the module (Keras' own module is left
untouched), its `layers` global is replaced by a view of Keras' layers in which
`Dropout` and `BatchNormalization` are kerasreg's, and its test class is
subclassed below so that pytest collects and runs every one of its tests as
part of this suite.

No test is skipped: every Keras test applies to our layers on the jax and
tensorflow backends. (Keras' own `requires_trainable_backend` marker only
excludes the numpy backend, which kerasreg's suite does not run.)
"""

import importlib.util
import os
import types

import keras
import pytest

import kerasreg

KERAS_SOURCES = os.path.join(os.path.dirname(keras.__file__), "src")
TEST_FILES = {
    "dropout": "layers/regularization/dropout_test.py",
    "batch_normalization": "layers/normalization/batch_normalization_test.py",
}
OURS = {
    "Dropout": kerasreg.Dropout,
    "BatchNormalization": kerasreg.BatchNormalization,
}

_missing = [
    path
    for path in TEST_FILES.values()
    if not os.path.exists(os.path.join(KERAS_SOURCES, path))
]
if _missing:  # a keras build without its tests (not the pip wheel)
    pytest.skip(
        f"the installed keras package does not ship {', '.join(_missing)}",
        allow_module_level=True,
    )


class _LayersWithOurs(types.ModuleType):
    """Keras' `layers` module, with kerasreg's `Dropout` and
    `BatchNormalization` in place of Keras' own."""

    def __init__(self, keras_layers):
        super().__init__(keras_layers.__name__)
        self._keras_layers = keras_layers
        self.__dict__.update(OURS)

    def __getattr__(self, name):
        return getattr(self._keras_layers, name)


def _load_with_our_layers(key):
    """A private copy of one of Keras' test modules, using our layers."""
    path = os.path.join(KERAS_SOURCES, TEST_FILES[key])
    spec = importlib.util.spec_from_file_location(
        f"kerasreg_keras_tests.{key}_test", path
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.layers = _LayersWithOurs(module.layers)
    return module


_dropout_test = _load_with_our_layers("dropout")
_batch_normalization_test = _load_with_our_layers("batch_normalization")


class KerasDropoutTest(_dropout_test.DropoutTest):
    """Keras' `DropoutTest`, every test on `kerasreg.Dropout`."""


class KerasBatchNormalizationTest(
    _batch_normalization_test.BatchNormalizationTest
):
    """Keras' `BatchNormalizationTest`, every test on
    `kerasreg.BatchNormalization`."""


def test_keras_tests_build_our_layers():
    # The swap reaches the code of Keras' tests, and Keras itself is intact.
    for module in (_dropout_test, _batch_normalization_test):
        assert module.layers.Dropout is kerasreg.Dropout
        assert module.layers.BatchNormalization is kerasreg.BatchNormalization
        assert module.layers.Masking is keras.layers.Masking
        assert type(module.layers.Dropout(0.5)) is kerasreg.Dropout
        # Keras' own `layers` module, seen by Keras' other code, is intact.
        assert module.layers._keras_layers.Dropout is keras.layers.Dropout
        assert (
            module.layers._keras_layers.BatchNormalization
            is keras.layers.BatchNormalization
        )
    assert keras.layers.Dropout is not kerasreg.Dropout


def test_every_keras_test_is_collected():
    # A floor, so a Keras upgrade that renames the classes cannot make this
    # file silently test nothing (Keras 3.15: 14 + 33 tests).
    names = lambda cls: [n for n in dir(cls) if n.startswith("test")]  # noqa: E731
    assert len(names(KerasDropoutTest)) >= 14
    assert len(names(KerasBatchNormalizationTest)) >= 30
