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
