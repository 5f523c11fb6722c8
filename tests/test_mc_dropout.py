import itertools

import keras
import numpy as np
import pytest

import kerasreg
from kerasreg import MCDropout

RATE = 0.5
BN_EPS = 1e-3


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _weights(features=3, hidden=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.uniform(0.1, 1.0, size=(features, hidden)).astype("float32"),
        "b1": rng.normal(size=(hidden,)).astype("float32"),
        # BatchNorm: gamma, beta, moving mean, moving variance.
        "bn": [
            rng.uniform(0.5, 1.5, size=(hidden,)).astype("float32"),
            np.full((hidden,), 3.0, dtype="float32"),  # keeps relu inputs > 0
            rng.normal(size=(hidden,)).astype("float32"),
            rng.uniform(0.5, 2.0, size=(hidden,)).astype("float32"),
        ],
        "w2": rng.normal(scale=2.0, size=(hidden, classes)).astype("float32"),
        "b2": rng.normal(size=(classes,)).astype("float32"),
    }


def _numpy_hidden(x, w):
    """The deterministic part, BatchNorm with its moving statistics."""
    gamma, beta, mean, var = w["bn"]
    z = x @ w["w1"] + w["b1"]
    z = (z - mean) / np.sqrt(var + BN_EPS) * gamma + beta
    return np.maximum(z, 0.0)


def _all_mask_outputs(x, w):
    """Output of every thinned network: (masks, N, classes), and the masks."""
    h = _numpy_hidden(x, w)
    hidden = h.shape[1]
    masks = np.array(list(itertools.product([0.0, 1.0], repeat=hidden)))
    outs = np.stack(
        [_softmax((h * m / (1 - RATE)) @ w["w2"] + w["b2"]) for m in masks]
    )
    return outs, masks


def _layers(w, dropout):
    return [
        keras.layers.Dense(4),
        keras.layers.BatchNormalization(epsilon=BN_EPS),
        keras.layers.ReLU(),
        dropout,
        keras.layers.Dense(3, activation="softmax"),
    ]


def _set(layers, w):
    layers[0].set_weights([w["w1"], w["b1"]])
    layers[1].set_weights(w["bn"])
    layers[4].set_weights([w["w2"], w["b2"]])


def _sequential(w, dropout=None):
    layers = _layers(w, dropout or keras.layers.Dropout(RATE))
    model = keras.Sequential([keras.Input((3,))] + layers)
    _set(layers, w)
    return model


def _functional(w, dropout=None):
    layers = _layers(w, dropout or keras.layers.Dropout(RATE))
    inp = keras.Input((3,))
    h = inp
    for layer in layers:
        h = layer(h)
    model = keras.Model(inp, h)
    _set(layers, w)
    return model


class SubclassedNet(keras.Model):
    def __init__(self, w):
        super().__init__()
        self.stack = _layers(w, keras.layers.Dropout(RATE))

    def call(self, x, training=None):
        for layer in self.stack:
            x = layer(x, training=training)
        return x


def _subclassed(w):
    model = SubclassedNet(w)
    model(np.zeros((1, 3), dtype="float32"))
    _set(model.stack, w)
    return model


def _x(n=6, seed=1):
    return np.random.default_rng(seed).uniform(size=(n, 3)).astype("float32")


BUILDERS = {
    "sequential": _sequential,
    "functional": _functional,
    "tiled": _subclassed,
}


@pytest.mark.parametrize("mode", sorted(BUILDERS))
def test_samples_are_thinned_networks_and_predict_is_their_mean(mode):
    w = _weights()
    model = BUILDERS[mode](w)
    x = _x()
    before = model.predict(x, verbose=0)
    mc = MCDropout(model, n_samples=64)
    assert mc._plan.mode == mode
    dropout = mc._plan.dropouts[0]
    state = keras.ops.convert_to_numpy(dropout.seed_generator.state)
    samples = mc.sample_predictions(x, batch_size=6)
    assert samples.shape == (64, 6, 3)
    outs, masks = _all_mask_outputs(x, w)
    # Each (pass, row) is the output of one thinned network, with the
    # BatchNorm moving statistics: find its mask.
    dist = np.abs(samples[:, None] - outs[None]).max(axis=-1)  # (S, M, N)
    best = dist.argmin(axis=1)
    assert np.all(dist.min(axis=1) < 1e-4)
    kept = masks[best]  # (S, N, hidden)
    # Masks are drawn independently: the keep rate is 1 - rate, passes
    # differ, and so do the rows of one pass.
    assert abs(kept.mean() - (1 - RATE)) < 0.05
    assert samples.var(axis=0).max() > 0
    assert len({tuple(b) for b in best}) > 32
    # `predict` is the mean of the passes (same masks: same RNG state).
    dropout.seed_generator.state.assign(state)
    mean = mc.predict(x, batch_size=6, verbose=0)
    np.testing.assert_allclose(mean, samples.mean(axis=0), atol=1e-6)
    # Sample predictions feed the ensemble metrics.
    assert 0 < kerasreg.metrics.disagreement(samples) <= 1
    # The wrapped model is left as it was: inference is deterministic.
    assert "call" not in vars(dropout)
    np.testing.assert_allclose(model.predict(x, verbose=0), before, atol=1e-6)


def test_split_and_tiled_paths_have_the_same_distribution():
    w = _weights()
    x = _x(4)
    outs, _ = _all_mask_outputs(x, w)
    exact = outs.mean(axis=0)  # every mask equally likely at rate 0.5
    split = MCDropout(_functional(w), n_samples=2000)
    tiled = MCDropout(_functional(w), n_samples=2000)
    tiled._plan.mode = "tiled"
    assert split._plan.mode == "functional"
    a = split.sample_predictions(x, batch_size=4)
    b = tiled.sample_predictions(x, batch_size=4)
    np.testing.assert_allclose(a.mean(0), exact, atol=0.03)
    np.testing.assert_allclose(b.mean(0), exact, atol=0.03)
    np.testing.assert_allclose(a.std(0), b.std(0), atol=0.03)


def test_split_graph_runs_the_prefix_once_and_tiles_side_branches():
    inp = keras.Input((5,))
    h = keras.layers.Dense(8, activation="relu", name="prefix")(inp)
    d = keras.layers.Dropout(0.3)(h)
    skip = keras.layers.Dense(8, name="skip")(h)
    out = keras.layers.Dense(
        2, activation="softmax", name="head"
    )(keras.layers.Add()([d, skip]))
    model = keras.Model(inp, out)
    mc = MCDropout(model, n_samples=7)
    graph = mc._plan.graph
    tiles = [op for op in graph.operations if type(op).__name__ == "Tile"]
    assert len(tiles) == 2  # before the dropout, and on the skip branch
    x = np.random.default_rng(0).normal(size=(9, 5)).astype("float32")
    samples = mc.sample_predictions(x)
    assert samples.shape == (7, 9, 2)
    np.testing.assert_allclose(samples.sum(-1), 1.0, atol=1e-5)
    # Without dropout the graph gives the model's output in every pass.
    p = model.predict(x, verbose=0)
    rate, model.layers[2].rate = model.layers[2].rate, 0.0
    try:
        np.testing.assert_allclose(
            MCDropout(model, 3).sample_predictions(x), np.stack([p] * 3), atol=1e-6
        )
    finally:
        model.layers[2].rate = rate


def test_nested_block_and_kerasreg_mc_dropout():
    block = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(6), kerasreg.Dropout(0.5, mc=True)]
    )
    inp = keras.Input((4,))
    out = keras.layers.Dense(3, activation="softmax")(
        block(keras.layers.Dense(6)(inp))
    )
    model = keras.Model(inp, out)
    mc = MCDropout(model, n_samples=5)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    samples = mc.sample_predictions(x)
    assert samples.shape == (5, 3, 3)
    assert samples.var(axis=0).max() > 0


def test_evaluate_after_compile():
    w = _weights()
    mc = MCDropout(_sequential(w), n_samples=8)
    mc.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = _x(12)
    y = np.arange(12) % 3
    dropout = mc._plan.dropouts[0]
    state = keras.ops.convert_to_numpy(dropout.seed_generator.state)
    p = mc.predict(x, batch_size=12, verbose=0)
    dropout.seed_generator.state.assign(state)
    loss, accuracy = mc.evaluate(x, y, batch_size=12, verbose=0)
    expected = -np.mean(np.log(p[np.arange(12), y]))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(accuracy, np.mean(p.argmax(1) == y), atol=1e-6)


def test_from_logits_softmax_per_pass():
    inp = keras.Input((3,))
    h = keras.layers.Dense(8, activation="relu")(inp)
    d = keras.layers.Dropout(0.5)(h)
    logits = keras.layers.Dense(3)(d)
    logit_model = keras.Model(inp, logits)
    prob_model = keras.Model(inp, keras.layers.Softmax()(logits))
    with pytest.raises(ValueError, match="from_logits=True"):
        MCDropout(logit_model)
    a = MCDropout(logit_model, n_samples=6, from_logits=True)
    b = MCDropout(prob_model, n_samples=6)
    x = _x(5)
    dropout = a._plan.dropouts[0]
    state = keras.ops.convert_to_numpy(dropout.seed_generator.state)
    sa = a.sample_predictions(x, batch_size=5)
    dropout.seed_generator.state.assign(state)
    sb = b.sample_predictions(x, batch_size=5)
    np.testing.assert_allclose(sa, sb, atol=1e-6)
    dropout.seed_generator.state.assign(state)
    np.testing.assert_allclose(
        a.predict(x, batch_size=5, verbose=0), sa.mean(0), atol=1e-6
    )


def test_sigmoid_output_keeps_one_column():
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    mc = MCDropout(model, n_samples=4)
    x = _x(7)
    p = mc.predict(x, verbose=0)
    assert p.shape == (7, 1)
    assert np.all((p >= 0) & (p <= 1))


def test_keras_round_trip(tmp_path):
    w = _weights()
    mc = MCDropout(_functional(w), n_samples=9)
    x = _x(5)
    path = tmp_path / "mc.keras"
    mc.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, MCDropout)
    assert loaded.n_samples == 9 and loaded.from_logits is False
    assert loaded._plan.mode == "functional"
    for a, b in zip(mc.model.get_weights(), loaded.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    samples = loaded.sample_predictions(x)
    assert samples.shape == (9, 5, 3)
    outs, _ = _all_mask_outputs(x, w)
    dist = np.abs(samples[:, None] - outs[None]).max(axis=-1)
    assert np.all(dist.min(axis=1) < 1e-4)
    config = mc.get_config()
    assert config["n_samples"] == 9
    assert MCDropout.from_config(config).n_samples == 9


@pytest.mark.parametrize("n_samples", [0, -3, 2.5, True, "10"])
def test_bad_n_samples(n_samples):
    with pytest.raises(ValueError, match="argument `n_samples`"):
        MCDropout(_sequential(_weights()), n_samples=n_samples)


def test_no_dropout_layer_and_not_a_model():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation="softmax")]
    )
    with pytest.raises(ValueError, match="no dropout layer"):
        MCDropout(model)
    with pytest.raises(ValueError, match="argument `model`"):
        MCDropout(keras.layers.Dropout(0.5))
    inp = keras.Input((3,))
    h = keras.layers.Dropout(0.5)(inp)
    two = keras.Model(inp, [keras.layers.Softmax()(h), keras.layers.Softmax()(h)])
    with pytest.raises(ValueError, match="with one output"):
        MCDropout(two)
