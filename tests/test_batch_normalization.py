"""Tests for kerasreg.layers.BatchNormalization: numpy references, Keras harness."""

import re

import keras
import numpy as np
import pytest
from keras.src import testing

import kerasreg
from kerasreg.layers import BatchNormalization
from kerasreg.layers.batch_normalization import _KERAS_HAS_RENORM


class BatchNormalizationLayerTest(testing.TestCase):
    # Keras' own harness cases for the default momentum (exactly Keras'
    # weights) run in tests/test_keras_layer_tests.py; here the extra mode.
    def test_keras_harness_cumulative_image_regularized(self):
        self.run_layer_test(
            BatchNormalization,
            init_kwargs={
                "momentum": None,
                "beta_regularizer": "l2",
                "gamma_regularizer": "l2",
            },
            call_kwargs={"training": True},
            input_shape=(2, 4, 4, 3),
            expected_output_shape=(2, 4, 4, 3),
            expected_num_trainable_weights=2,
            expected_num_non_trainable_weights=3,  # + num_batches_tracked
            expected_num_seed_generators=0,
            expected_num_losses=2,
            supports_masking=True,
        )


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _reference(x, mean, var, gamma, beta, eps, axis):
    """gamma * (x - mean) / sqrt(var + eps) + beta, broadcast along `axis`."""
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    r = lambda v: np.reshape(v, shape)  # noqa: E731
    return r(gamma) * (x - r(mean)) / np.sqrt(r(var) + eps) + r(beta)


@pytest.mark.parametrize(
    "shape, axis",
    [((32, 4), -1), ((16, 5, 3), -1), ((8, 3, 4, 4), 1), ((8, 4, 4, 3), -1)],
)
def test_training_output_is_standardized_per_feature(shape, axis):
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, shape).astype("float32")
    y = _np(BatchNormalization(axis=axis, epsilon=1e-5)(x, training=True))
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.var(axis=axes), var / (var + 1e-5), rtol=1e-4)
    np.testing.assert_allclose(
        y, _reference(x, mean, var, np.ones(mean.shape), np.zeros(mean.shape), 1e-5, axis),
        rtol=1e-4, atol=1e-4,
    )


def test_moving_average_recurrence():
    rng = np.random.default_rng(1)
    layer = BatchNormalization(momentum=0.9)
    moving_mean, moving_var = np.zeros(3), np.ones(3)
    for k in range(4):
        x = rng.normal(k, 1.0 + k, (20, 3)).astype("float32")
        layer(x, training=True)
        moving_mean = 0.9 * moving_mean + 0.1 * x.mean(axis=0)
        moving_var = 0.9 * moving_var + 0.1 * x.var(axis=0)  # biased variance
    np.testing.assert_allclose(_np(layer.moving_mean), moving_mean, rtol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_variance), moving_var, rtol=1e-5)
    assert layer.num_batches_tracked is None  # only momentum=None counts


def test_inference_formula():
    rng = np.random.default_rng(2)
    layer = BatchNormalization(epsilon=0.01)
    x = rng.normal(size=(10, 6, 4)).astype("float32")
    layer.build(x.shape)
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    mean, var = rng.normal(size=4), rng.uniform(0.5, 2.0, 4)
    for variable, value in zip(
        (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance),
        (gamma, beta, mean, var), strict=True
    ):
        variable.assign(value.astype("float32"))
    expected = _reference(x, mean, var, gamma, beta, 0.01, -1)
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(layer(x, training=False)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_mean), mean, rtol=1e-6)  # unchanged
    # Frozen layer: inference behaviour even with training=True, no update.
    layer.trainable = False
    np.testing.assert_allclose(_np(layer(x, training=True)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_mean), mean, rtol=1e-6)
    frozen = BatchNormalization(momentum=None, trainable=False)
    frozen(x, training=True)
    assert float(_np(frozen.num_batches_tracked)) == 0.0  # frozen: no count


def test_cumulative_mode_is_mean_of_batch_statistics():
    rng = np.random.default_rng(3)
    batches = [rng.normal(3.0 * k, 1.0 + k, (8, 2, 3)).astype("float32") for k in range(5)]
    layer = BatchNormalization(momentum=None)
    for b in batches:
        layer(b, training=True)
    means = [b.mean(axis=(0, 1)) for b in batches]
    variances = [b.var(axis=(0, 1)) for b in batches]
    np.testing.assert_allclose(_np(layer.moving_mean), np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(layer.moving_variance), np.mean(variances, axis=0), rtol=1e-5)
    assert float(_np(layer.num_batches_tracked)) == 5.0


def test_reset_statistics_then_reestimate_after_switching_to_cumulative():
    rng = np.random.default_rng(4)
    layer = BatchNormalization(momentum=0.5, moving_variance_initializer="ones")
    for _ in range(3):
        layer(rng.normal(7.0, 2.0, (16, 4)).astype("float32"), training=True)
    layer.gamma.assign(np.full(4, 2.0, "float32"))
    layer.reset_statistics()
    np.testing.assert_array_equal(_np(layer.moving_mean), np.zeros(4))
    np.testing.assert_array_equal(_np(layer.moving_variance), np.ones(4))
    assert layer.num_batches_tracked is None and len(layer.weights) == 4
    np.testing.assert_array_equal(_np(layer.gamma), np.full(4, 2.0))  # untouched
    layer.momentum = None  # re-estimate, e.g. after weight averaging
    assert float(_np(layer.num_batches_tracked)) == 0.0  # created, at 0
    assert layer.non_trainable_weights[-1] is layer.num_batches_tracked
    new = [rng.normal(-1.0, 0.5, (16, 4)).astype("float32") for _ in range(3)]
    for b in new:
        layer(b, training=True)
    np.testing.assert_allclose(
        _np(layer.moving_mean), np.mean([b.mean(axis=0) for b in new], axis=0), rtol=1e-5
    )
    assert float(_np(layer.num_batches_tracked)) == 3.0
    layer.reset_statistics()
    assert float(_np(layer.num_batches_tracked)) == 0.0


def test_cumulative_momentum_gives_the_equal_weight_mean():
    from kerasreg.layers.batch_normalization import cumulative_momentum

    values = np.random.default_rng(8).normal(size=(6, 3))
    moving = np.full(3, np.nan)  # the first batch has momentum 0
    for n, value in enumerate(values):
        m = cumulative_momentum(n)
        moving = value if n == 0 else m * moving + (1 - m) * value
        np.testing.assert_allclose(moving, values[: n + 1].mean(0), rtol=1e-12)
    assert cumulative_momentum(0) == 0.0 and cumulative_momentum(3) == 0.75


def test_keras_layer_with_cumulative_momentum_matches_cumulative_mode():
    # One rule: Keras' layer with momentum n / (n + 1) before batch n + 1 and
    # ours with momentum=None (its counter giving n) give the same averages.
    from kerasreg.layers.batch_normalization import cumulative_momentum

    rng = np.random.default_rng(9)
    batches = [rng.normal(k, 1.0 + k, (6, 3)).astype("float32") for k in range(4)]
    ours = BatchNormalization(momentum=None)
    theirs = keras.layers.BatchNormalization()
    for n, b in enumerate(batches):
        ours(b, training=True)
        theirs.momentum = cumulative_momentum(n)
        theirs(b, training=True)
    for a, b in ((ours.moving_mean, theirs.moving_mean),
                 (ours.moving_variance, theirs.moving_variance)):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        _np(theirs.moving_variance), np.mean([b.var(0) for b in batches], 0), rtol=1e-5
    )


def test_reset_moving_statistics_works_on_keras_layer():
    from kerasreg.layers.batch_normalization import reset_moving_statistics

    layer = keras.layers.BatchNormalization(moving_variance_initializer="zeros")
    reset_moving_statistics(layer)  # not built: nothing to do
    layer(np.full((4, 2), 3.0, "float32"), training=True)
    reset_moving_statistics(layer)
    np.testing.assert_array_equal(_np(layer.moving_mean), np.zeros(2))
    np.testing.assert_array_equal(_np(layer.moving_variance), np.zeros(2))
    assert len(layer.weights) == 4


def test_reset_statistics_uses_initializers_and_unbuilt_is_noop():
    layer = BatchNormalization(moving_mean_initializer="ones", moving_variance_initializer="zeros")
    layer.reset_statistics()  # not built: nothing to do
    layer(np.ones((4, 2), "float32") * 3, training=True)
    layer.reset_statistics()
    np.testing.assert_array_equal(_np(layer.moving_mean), np.ones(2))
    np.testing.assert_array_equal(_np(layer.moving_variance), np.zeros(2))


@pytest.mark.slow
def test_cumulative_mode_inside_jit_compiled_fit():
    rng = np.random.default_rng(5)
    x = rng.normal(2.0, 3.0, (48, 5)).astype("float32")
    y = rng.normal(size=(48, 1)).astype("float32")
    inputs = keras.Input((5,))
    h = BatchNormalization(momentum=None)(inputs)
    outputs = keras.layers.Dense(1)(h)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse", jit_compile=True)
    model.fit(x, y, batch_size=12, epochs=2, shuffle=False, verbose=0)
    layer = model.layers[1]
    batches = np.split(x, 4)
    # 8 steps over the same 4 batches: the mean of all 8 batch statistics.
    np.testing.assert_allclose(
        _np(layer.moving_mean), np.mean([b.mean(axis=0) for b in batches], axis=0),
        rtol=1e-5, atol=1e-6,
    )
    np.testing.assert_allclose(
        _np(layer.moving_variance), np.mean([b.var(axis=0) for b in batches], axis=0),
        rtol=1e-5,
    )
    assert float(_np(layer.num_batches_tracked)) == 8.0


def test_batch_of_one_gives_no_nan():
    x = np.array([[1e4, -3.0, 0.5]], "float32")
    layer = BatchNormalization(momentum=0.9, beta_initializer="ones")
    y = _np(layer(x, training=True))
    np.testing.assert_allclose(y, np.ones((1, 3)), atol=1e-6)  # variance 0 -> beta
    np.testing.assert_allclose(_np(layer.moving_variance), 0.9 * np.ones(3), rtol=1e-6)
    cumulative = BatchNormalization(momentum=None)
    cumulative(x, training=True)
    np.testing.assert_array_equal(_np(cumulative.moving_variance), np.zeros(3))
    np.testing.assert_allclose(_np(cumulative.moving_mean), x[0], rtol=1e-6)
    # Gradients are finite too (fit with batches of one example).
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(BatchNormalization(momentum=None)(inputs)))
    model.compile("sgd", "mse")
    history = model.fit(np.ones((3, 3), "float32"), np.ones((3, 1)), batch_size=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(_np(w)).all() for w in model.weights)


@pytest.mark.parametrize("momentum", [0.0, None])
def test_mask_leaves_masked_steps_out_of_statistics(momentum):
    x = np.array(
        [[[1.0, 5.0], [3.0, 7.0], [0.0, 0.0]], [[2.0, 6.0], [0.0, 0.0], [0.0, 0.0]]],
        "float32",
    )
    masked = keras.layers.Masking(0.0)(x)
    layer = BatchNormalization(momentum=momentum, epsilon=1e-3)
    y = _np(layer(masked, training=True))
    kept = x[[0, 0, 1], [0, 1, 0]]
    mean, var = kept.mean(axis=0), kept.var(axis=0)
    np.testing.assert_allclose(_np(layer.moving_mean), mean, rtol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_variance), var, rtol=1e-4)
    expected = _reference(x, mean, var, np.ones(2), np.zeros(2), 1e-3, -1)
    np.testing.assert_allclose(y[0, :2], expected[0, :2], rtol=1e-4, atol=1e-4)


def test_mixed_precision_keeps_statistics_float32():
    layer = BatchNormalization(momentum=None, dtype="mixed_float16")
    x = np.random.default_rng(6).normal(100.0, 10.0, (16, 3)).astype("float16")
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    for v in (layer.moving_mean, layer.moving_variance, layer.num_batches_tracked):
        assert keras.backend.standardize_dtype(v.dtype) == "float32"
    x32 = x.astype("float32")
    np.testing.assert_allclose(_np(layer.moving_mean), x32.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(_np(layer.moving_variance), x32.var(axis=0), rtol=1e-3)


def test_config_round_trip_and_drop_in():
    layer = BatchNormalization(axis=1, momentum=None, epsilon=1e-4, center=False, name="bn")
    assert isinstance(layer, keras.layers.BatchNormalization)
    config = layer.get_config()
    keras_config = keras.layers.BatchNormalization(axis=1, name="bn").get_config()
    assert set(config) == set(keras_config)
    assert config["momentum"] is None and config["epsilon"] == 1e-4
    assert BatchNormalization.from_config(config).get_config() == config
    defaults = BatchNormalization().get_config()
    keras_defaults = keras.layers.BatchNormalization().get_config()
    for key in keras_defaults:
        if key != "name":
            assert defaults[key] == keras_defaults[key], key
    # A Keras layer's config loads into ours.
    assert BatchNormalization.from_config(keras_config).momentum == 0.99


def test_keras_save_load_in_model(tmp_path):
    rng = np.random.default_rng(7)
    inputs = keras.Input((4, 4, 2))
    h = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    h = kerasreg.BatchNormalization(momentum=None)(h)
    outputs = kerasreg.Dropout(0.3)(h)
    model = keras.Model(inputs, outputs)
    for _ in range(3):
        model(rng.normal(size=(5, 4, 4, 2)).astype("float32"), training=True)
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    bn = loaded.layers[2]
    assert type(bn) is BatchNormalization and bn.momentum is None
    assert float(_np(bn.num_batches_tracked)) == 3.0
    x = rng.normal(size=(6, 4, 4, 2)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("momentum", [1.5, -0.1, "fast"])
def test_bad_momentum(momentum):
    with pytest.raises(
        ValueError,
        match=(
            r"Invalid value received for argument `momentum`\. Expected a float "
            rf"value in \[0, 1\], or None\. Received: momentum={momentum!r}"
        ),
    ):
        BatchNormalization(momentum=momentum)


@pytest.mark.parametrize("epsilon", [0, -1e-3])
def test_bad_epsilon(epsilon):
    with pytest.raises(
        ValueError,
        match=(
            r"Invalid value received for argument `epsilon`. Expected a float "
            rf"value > 0\. Received: epsilon={epsilon}"
        ),
    ):
        BatchNormalization(epsilon=epsilon)


def test_cumulative_with_renorm_is_rejected():
    with pytest.raises(ValueError, match=r"argument `momentum`.*renorm=True"):
        BatchNormalization(momentum=None, renorm=True)


def test_momentum_bounds_are_accepted():
    assert BatchNormalization(momentum=0).momentum == 0.0
    assert BatchNormalization(momentum=1).momentum == 1.0


def _bn_model(layer_cls, momentum="default", seed=0):
    """Conv -> BN -> Dense with fixed layer names (the files key weights by name)."""
    kwargs = {} if momentum == "default" else {"momentum": momentum}
    return keras.Sequential(
        [
            keras.Input((4, 4, 2)),
            keras.layers.Conv2D(3, 3, padding="same", name="conv"),
            layer_cls(name="bn", **kwargs),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(2, name="head"),
        ]
    )


def _train_a_little(model, seed):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        model(rng.normal(2.0, 3.0, (6, 4, 4, 2)).astype("float32"), training=True)
    return model


def test_default_momentum_has_exactly_keras_weights():
    ours = BatchNormalization()
    theirs = keras.layers.BatchNormalization()
    for layer in (ours, theirs):
        layer.build((None, 5, 3))
    describe = lambda layer: [  # noqa: E731
        (v.name, tuple(v.shape), v.dtype, v.trainable) for v in layer.weights
    ]
    assert describe(ours) == describe(theirs)
    assert [v.name for v in ours.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert len(ours.trainable_weights) == 2 and len(ours.non_trainable_weights) == 2
    if _KERAS_HAS_RENORM:  # Keras >= 3.14
        renorm = BatchNormalization(renorm=True)
        keras_renorm = keras.layers.BatchNormalization(renorm=True)
        for layer in (renorm, keras_renorm):
            layer.build((None, 3))
        assert describe(renorm) == describe(keras_renorm)
    # The same training steps give the same values, weight by weight.
    x = np.random.default_rng(8).normal(1.0, 2.0, (3, 8, 5, 3)).astype("float32")
    for batch in x:
        ours(batch, training=True)
        theirs(batch, training=True)
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-6)
    # Only the cumulative mode adds the counter, last.
    cumulative = BatchNormalization(momentum=None)
    cumulative.build((None, 3))
    assert [v.name for v in cumulative.weights][-1] == "num_batches_tracked"
    assert len(cumulative.weights) == 5


@pytest.mark.parametrize("direction", ["keras_to_ours", "ours_to_keras"])
def test_weights_move_between_keras_and_ours(direction, tmp_path):
    source_cls, target_cls = (
        (keras.layers.BatchNormalization, BatchNormalization)
        if direction == "keras_to_ours"
        else (BatchNormalization, keras.layers.BatchNormalization)
    )
    source = _train_a_little(_bn_model(source_cls), seed=9)
    moving_mean = _np(source.get_layer("bn").moving_mean)
    assert np.abs(moving_mean).max() > 0.01  # trained: not the initial zeros
    x = np.random.default_rng(10).normal(size=(5, 4, 4, 2)).astype("float32")
    expected = _np(source(x, training=False))

    # set_weights / get_weights
    target = _bn_model(target_cls)
    target.set_weights(source.get_weights())
    np.testing.assert_allclose(_np(target(x, training=False)), expected, rtol=1e-6)

    # save_weights / load_weights (.weights.h5)
    source.save_weights(tmp_path / "m.weights.h5")
    target = _bn_model(target_cls)
    target.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_allclose(_np(target.get_layer("bn").moving_mean), moving_mean, rtol=1e-6)
    np.testing.assert_allclose(_np(target(x, training=False)), expected, rtol=1e-6)

    # a whole-model checkpoint (.keras) loads as weights into the other model
    source.save(tmp_path / "m.keras")
    target = _bn_model(target_cls)
    target.load_weights(tmp_path / "m.keras")
    np.testing.assert_allclose(_np(target(x, training=False)), expected, rtol=1e-6)


def test_weights_with_and_without_counter_load_into_each_other(tmp_path):
    # Saved with the counter (kerasreg 0.1.0 always saved one; momentum=None
    # saves one) -> a default-momentum layer drops it.
    cumulative = _train_a_little(_bn_model(BatchNormalization, momentum=None), seed=11)
    assert float(_np(cumulative.get_layer("bn").num_batches_tracked)) == 3.0
    cumulative.save_weights(tmp_path / "c.weights.h5")
    x = np.random.default_rng(12).normal(size=(5, 4, 4, 2)).astype("float32")
    expected = _np(cumulative(x, training=False))
    target = _bn_model(BatchNormalization)
    target.load_weights(tmp_path / "c.weights.h5")
    assert target.get_layer("bn").num_batches_tracked is None
    np.testing.assert_allclose(_np(target(x, training=False)), expected, rtol=1e-6)
    # Saved without the counter (a Keras layer) -> a momentum=None layer,
    # whose counter starts at 0: its first batch replaces the statistics.
    plain = _train_a_little(_bn_model(keras.layers.BatchNormalization), seed=13)
    plain.save_weights(tmp_path / "p.weights.h5")
    target = _bn_model(BatchNormalization, momentum=None)
    target.get_layer("bn").num_batches_tracked.assign(7.0)
    target.load_weights(tmp_path / "p.weights.h5")
    bn = target.get_layer("bn")
    assert float(_np(bn.num_batches_tracked)) == 0.0
    np.testing.assert_allclose(
        _np(bn.moving_mean), _np(plain.get_layer("bn").moving_mean), rtol=1e-6
    )


@pytest.mark.slow
def test_switch_to_cumulative_on_a_built_model_inside_fit():
    # A model built with the default momentum, then switched: the counter is
    # created at 0 and runs inside the re-compiled train step.
    rng = np.random.default_rng(14)
    x = rng.normal(-2.0, 0.5, (40, 3)).astype("float32")
    y = rng.normal(size=(40, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), BatchNormalization(), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    layer = model.layers[0]
    assert len(model.weights) == 6
    layer.reset_statistics()
    layer.momentum = None
    assert len(model.weights) == 7 and len(model.non_trainable_weights) == 3
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    batches = np.split(x, 4)
    assert float(_np(layer.num_batches_tracked)) == 4.0
    np.testing.assert_allclose(
        _np(layer.moving_mean), np.mean([b.mean(axis=0) for b in batches], axis=0),
        rtol=1e-5, atol=1e-6,
    )


@pytest.mark.parametrize("axis", ["x", None, 1.5, True, [1, 2]])
def test_bad_axis(axis):
    with pytest.raises(
        ValueError,
        match=(
            r"Invalid value received for argument `axis`\. Expected an integer\. "
            rf"Received: axis={re.escape(repr(axis))}"
        ),
    ):
        BatchNormalization(axis=axis)


def test_axis_accepts_what_keras_accepts():
    assert BatchNormalization(axis=np.int64(1)).axis == 1
    assert BatchNormalization(axis=2.0).axis == 2  # Keras: int(axis)


def test_bad_momentum_assigned_later():
    layer = BatchNormalization()
    with pytest.raises(ValueError, match=r"argument `momentum`.*Received: momentum=2"):
        layer.momentum = 2
    if _KERAS_HAS_RENORM:  # Keras >= 3.14
        renorm = BatchNormalization(renorm=True)
        with pytest.raises(ValueError, match=r"argument `momentum`.*renorm=True"):
            renorm.momentum = None


@pytest.mark.skipif(_KERAS_HAS_RENORM, reason="this Keras has renorm")
def test_renorm_needs_keras_3_14():
    assert BatchNormalization(renorm=False).get_config()["momentum"] == 0.99
    with pytest.raises(ValueError, match=r"argument `renorm`.*Keras 3.14"):
        BatchNormalization(renorm=True)
