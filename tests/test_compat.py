"""The private Keras Tuner members `kerasreg._compat` relies on still exist."""

import keras_tuner
import pytest

from kerasreg._compat import local_oracle


def test_local_oracle_of_a_single_process_tuner(tmp_path):
    tuner = keras_tuner.RandomSearch(
        lambda hp: None, objective="val_loss", max_trials=1,
        directory=str(tmp_path), project_name="p",
    )
    assert local_oracle(tuner) is tuner.oracle
    assert local_oracle(tuner.oracle) is tuner.oracle


def test_local_oracle_unwraps_the_oracle_client_of_a_worker(monkeypatch):
    # A distributed worker's `tuner.oracle` is Keras Tuner's OracleClient,
    # which keeps the worker's Oracle in the private `_oracle`.
    pytest.importorskip("grpc")
    from keras_tuner.src.distribute.oracle_client import OracleClient

    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "1")  # never connected to
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=3)
    client = OracleClient(oracle)
    with pytest.raises(AttributeError):
        client.trials  # no public way to the worker's Oracle
    assert local_oracle(client) is oracle

    class Worker:
        pass

    worker = Worker()
    worker.oracle = client
    assert local_oracle(worker) is oracle


# ------------------------------------------------- initializer string names
# (keras-nightly 3.16.0.dev: registered names in `keras.initializers.get`)


def test_add_initializer_names():
    # Regression: keras-nightly 3.16.0.dev2026102704's `keras.initializers.get`
    # looks strings up only in `keras.src.initializers.ALL_OBJECTS_DICT`, so
    # `kernel_initializer="kerasreg>HeNormal"` failed there.
    import keras
    from keras.src import initializers

    import kerasreg
    from kerasreg import _compat

    assert isinstance(getattr(initializers, "ALL_OBJECTS_DICT", None), dict), (
        f"Keras {keras.version()}: `keras.src.initializers.ALL_OBJECTS_DICT` "
        "is gone; update kerasreg/_compat.py."
    )
    assert initializers.ALL_OBJECTS_DICT["kerasreg>HeNormal"] is kerasreg.HeNormal
    assert isinstance(keras.initializers.get("kerasreg>HeNormal"), kerasreg.HeNormal)
    assert isinstance(keras.initializers.get("he_normal"), keras.initializers.HeNormal)

    @keras.saving.register_keras_serializable(package="kerasreg_test")
    class Halves(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return keras.ops.full(shape, 0.5, dtype=dtype)

    try:
        _compat.add_initializer_names(Halves)
        layer = keras.layers.Dense(2, kernel_initializer="kerasreg_test>Halves")
        layer.build((None, 3))
        assert keras.ops.convert_to_numpy(layer.kernel).tolist() == [[0.5] * 2] * 3
        # Still serialized as a registered (not built-in) object.
        config = keras.saving.serialize_keras_object(layer.kernel_initializer)
        assert config["registered_name"] == "kerasreg_test>Halves"
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is Halves
    finally:
        initializers.ALL_OBJECTS_DICT.pop("kerasreg_test>Halves", None)
        keras.saving.get_custom_objects().pop("kerasreg_test>Halves", None)
