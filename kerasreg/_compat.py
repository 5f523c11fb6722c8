"""The one place that touches private Keras and Keras Tuner members.

Each helper says which private member it reads and why there is no public
way; `tests/test_compat.py` checks each against the installed version.
"""


def local_oracle(tuner):
    """The `keras_tuner.Oracle` behind a tuner (or an oracle), on any process.

    On a distributed worker `tuner.oracle` is Keras Tuner's `OracleClient`, a
    gRPC proxy that answers only the oracle calls of the search protocol
    (`get_best_trials`, `create_trial`, ...) and a few attributes; the
    worker's own `Oracle` object (its `trials`, `hyperparameters.space`, a
    custom oracle's attributes) is kept in the private `OracleClient._oracle`,
    with no public accessor. Single-process tuners have the `Oracle` itself
    as `tuner.oracle`, returned as is.

    Args:
        tuner: A Keras Tuner tuner or oracle.

    Returns:
        The `Oracle` object.
    """
    oracle = getattr(tuner, "oracle", tuner)
    return getattr(oracle, "_oracle", oracle)
