import keras
import numpy as np
import pytest

from kerasreg import MultiHeadEnsemble


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _model(n_heads=3, combine="mean", from_logits=False):
    trunk = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6, activation="tanh")], name="trunk"
    )
    activation = None if from_logits else "softmax"
    return MultiHeadEnsemble(
        trunk,
        lambda: keras.layers.Dense(3, activation=activation),
        n_heads=n_heads,
        combine=combine,
        from_logits=from_logits,
    )


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, size=n)


def _numpy_heads(model, x):
    """Head probabilities from the weights, in numpy: (heads, N, C)."""
    wt, bt = model.trunk.get_weights()
    h = np.tanh(x @ wt + bt)
    outs = []
    for head in model.heads:
        w, b = head.get_weights()
        z = h @ w + b
        outs.append(z if model.from_logits else _softmax(z))
    return np.stack(outs), h


def test_trunk_weights_exist_once_and_heads_differ():
    model = _model(n_heads=4)
    trunk_params = 4 * 6 + 6
    head_params = 6 * 3 + 3
    assert model.count_params() == trunk_params + 4 * head_params
    ids = [id(v) for v in model.weights]
    assert len(ids) == len(set(ids)) == 2 + 4 * 2
    assert sum(v is model.trunk.weights[0] for v in model.weights) == 1
    kernels = [h.get_weights()[0] for h in model.heads]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(kernels[i], kernels[j])


@pytest.mark.parametrize("combine", ["mean", "geometric", "vote"])
def test_inference_combines_heads(combine):
    model = _model(combine=combine)
    x, _ = _data()
    p, _ = _numpy_heads(model, x)
    np.testing.assert_allclose(model.head_predictions(x), p, atol=1e-5)
    out = model.predict(x, verbose=0)
    if combine == "mean":
        np.testing.assert_allclose(out, p.mean(0), atol=1e-5)
    elif combine == "geometric":
        g = np.exp(np.log(p).mean(0))
        np.testing.assert_allclose(out, g / g.sum(-1, keepdims=True), atol=1e-5)
    else:
        votes = np.eye(3)[p.argmax(-1)].mean(0)
        np.testing.assert_allclose(out, votes, atol=1e-4)


def test_training_loss_is_sum_of_head_losses():
    model = _model(n_heads=3)
    x, y = _data()
    p, _ = _numpy_heads(model, x)
    head_nll = [-np.mean(np.log(p[i][np.arange(len(y)), y])) for i in range(3)]
    combined = p.mean(0)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(sum(head_nll), rel=1e-5)
    # Metrics see the combined prediction.
    assert history.history["accuracy"][0] == pytest.approx(
        np.mean(combined.argmax(1) == y)
    )
    out = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert out["loss"] == pytest.approx(
        -np.mean(np.log(combined[np.arange(len(y)), y])), rel=1e-5
    )


def test_training_updates_trunk_and_every_head():
    model = _model(n_heads=2)
    x, y = _data()
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        assert not np.allclose(a, b)


def test_from_logits_heads():
    model = _model(from_logits=True)
    x, y = _data()
    z, _ = _numpy_heads(model, x)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), _softmax(z).mean(0), atol=1e-5
    )
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=1, verbose=0)


def test_config_and_keras_round_trip(tmp_path):
    model = _model(n_heads=3, combine="geometric")
    x, y = _data()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    config = model.get_config()
    clone = MultiHeadEnsemble.from_config(config)
    assert clone.n_heads == 3 and clone.combine == "geometric"
    assert clone.count_params() == model.count_params()

    path = tmp_path / "multi_head.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, MultiHeadEnsemble)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-7
    )
    np.testing.assert_allclose(
        loaded.head_predictions(x), model.head_predictions(x), atol=1e-7
    )
    loaded.fit(x, y, epochs=1, verbose=0)


def test_bad_arguments():
    trunk = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])

    def head():
        return keras.layers.Dense(3, activation="softmax")

    with pytest.raises(ValueError, match="argument `n_heads`.*Received: n_heads=0"):
        MultiHeadEnsemble(trunk, head, n_heads=0)
    with pytest.raises(ValueError, match="argument `combine`"):
        MultiHeadEnsemble(trunk, head, combine="max")
    with pytest.raises(ValueError, match="argument `head_fn`"):
        MultiHeadEnsemble(trunk, "dense")
    shared = head()
    with pytest.raises(ValueError, match="argument `head_fn`.*same object"):
        MultiHeadEnsemble(trunk, lambda: shared, n_heads=2)
    with pytest.raises(ValueError, match="argument `trunk`"):
        MultiHeadEnsemble(None, head)
    with pytest.raises(ValueError, match="head 0 .*from_logits=True"):
        MultiHeadEnsemble(trunk, lambda: keras.layers.Dense(3), n_heads=2)


def test_head_fn_layer_instance_refused():
    # A layer is callable, but one instance would be one head shared n times.
    trunk = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
    layer = keras.layers.Dense(3, activation="softmax", name="one_head")
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `head_fn`\. Expected a "
        r"callable .*share its weights across all heads\. "
        r"Received: head_fn=<Dense name=one_head",
    ):
        MultiHeadEnsemble(trunk, layer, n_heads=2)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_softmax_heads_accepted_under_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _model(n_heads=3)
        x, _ = _data()
        out = keras.ops.convert_to_numpy(model(x, training=False))
        expected = _numpy_heads(model, x.astype(np.float64))[0].mean(0)
        atol = 3e-2 if policy == "mixed_bfloat16" else 4e-3
        np.testing.assert_allclose(np.asarray(out, np.float64), expected, atol=atol)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_training_loss_leaves_the_keras_mask_out():
    """Each head's training loss skips the padded steps, as a model's own
    loss does: the sum over heads of the masked mean cross-entropy."""
    keras.utils.set_random_seed(0)
    trunk = keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            keras.layers.Embedding(7, 4, mask_zero=True),
            keras.layers.Dense(6, activation="tanh"),
        ],
        name="trunk",
    )
    model = MultiHeadEnsemble(
        trunk, lambda: keras.layers.Dense(3, activation="softmax"), n_heads=2
    )
    model.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(1, 7, size=(6, 5)).astype("int32")
    x[:, 3:] = 0  # right padding
    x[0, 1:] = 0
    y = rng.integers(0, 3, size=(6, 5))
    stacked = model(x, training=True)
    loss = float(model.compute_loss(x, y, stacked, training=True))
    probs = np.asarray(keras.ops.convert_to_numpy(stacked))  # (N, heads, T, C)
    valid = x != 0
    expected = 0.0
    for i in range(2):
        p = np.take_along_axis(probs[:, i], y[..., None], axis=-1)[..., 0]
        expected += -np.log(p[valid]).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
