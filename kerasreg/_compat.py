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


# ------------------------------------------------- initializer string names
# (keras-nightly 3.16.0.dev: registered names in `keras.initializers.get`)


def add_initializer_names(*classes):
    """Lets a string identifier name each class by its registered name.

    Keras up to 3.15 resolves a string initializer identifier
    (`kernel_initializer="kerasreg>HeNormal"`) through
    `keras.saving.deserialize_keras_object`, which finds registered classes;
    keras-nightly 3.16.0.dev2026102704 looks strings up only in its table of
    built-ins, `keras.src.initializers.ALL_OBJECTS_DICT` (as
    `keras.regularizers.get` already does in 3.15), and has no public way to
    add a name to it. Adding each registered name (`"package>Class"`, never a
    built-in name) there keeps such strings working on every Keras.

    Args:
        *classes: `keras.initializers.Initializer` subclasses registered
            with `keras.saving.register_keras_serializable`.
    """
    import keras
    from keras.src import initializers

    for cls in classes:
        initializers.ALL_OBJECTS_DICT[keras.saving.get_registered_name(cls)] = cls
