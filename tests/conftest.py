"""Shared test set-up: every test starts from the same seed and a clean session."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.backend.clear_session()
    keras.utils.set_random_seed(1337)
    yield


@pytest.fixture
def backend():
    return keras.backend.backend()
