"""A `DeepEnsemble` fitted on 2 devices and on 1; prints the weight gap.

Run by `tests/test_deep_ensemble.py` in a subprocess, because the devices
must be set up before the backend initializes: on tensorflow, two logical
CPU devices and `tf.distribute.MirroredStrategy`; on jax, two host devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=2`, set here before jax
is imported) and `keras.distribution.DataParallel`. Prints one JSON line:
the largest absolute difference between the two fits' weights, and the
two fits' logs (training and validation).
"""

import json
import os

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if BACKEND == "jax":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_force_host_platform_device_count=2"
    )
elif BACKEND == "tensorflow":
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )

import contextlib  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasreg  # noqa: E402


def _scope(n_devices):
    """Where the model is built and compiled: 2 replicas, or the default."""
    if n_devices == 1:
        return contextlib.nullcontext()
    if BACKEND == "tensorflow":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        return strategy.scope()
    devices = keras.distribution.list_devices()
    assert len(devices) == 2, devices
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return contextlib.nullcontext()


def build():
    # An L2 penalty: each replica adds its share of it (Keras scales it).
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu",
                           kernel_regularizer=keras.regularizers.L2(0.05)),
        keras.layers.Dense(3, activation="softmax"),
    ])


def fit(n_devices, x, y):
    with _scope(n_devices):
        ens = kerasreg.DeepEnsemble(build, n_members=2, seed=0)
        ens.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                    "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = ens.fit(x, y, batch_size=8, epochs=2, shuffle=False,
                      validation_data=(x, y), verbose=0)
    keras.distribution.set_distribution(None)
    weights = [keras.ops.convert_to_numpy(v) for v in ens.weights]
    return weights, history.history


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.integers(0, 3, size=32)
    one, logs_one = fit(1, x, y)
    two, logs_two = fit(2, x, y)
    gap = max(
        float(np.max(np.abs(a - b))) for a, b in zip(one, two, strict=True)
    )
    print(json.dumps({"weight_gap": gap, "logs_one": logs_one,
                      "logs_two": logs_two}))


if __name__ == "__main__":
    main()
