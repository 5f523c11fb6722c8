"""Shared test set-up: every test starts from the same seed and a clean session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.backend.clear_session(free_memory=False)  # gc.collect costs ~0.25 s a test
    keras.utils.set_random_seed(1337)
    yield


@pytest.fixture
def backend():
    return keras.backend.backend()
