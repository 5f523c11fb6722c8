import itertools

import keras
import numpy as np
import pytest

import kerasreg
from kerasreg import MCDropout

RATE = 0.5
BN_EPS = 1e-3
STEPS = 3  # time steps of the recurrent models


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


def _layers():
    return [
        keras.layers.Dense(4),
        keras.layers.BatchNormalization(epsilon=BN_EPS),
        keras.layers.ReLU(),
        keras.layers.Dropout(RATE),
        keras.layers.Dense(3, activation="softmax"),
    ]


def _set(layers, w):
    layers[0].set_weights([w["w1"], w["b1"]])
    layers[1].set_weights(w["bn"])
    layers[4].set_weights([w["w2"], w["b2"]])


class LayerStack(keras.Model):
    """A subclassed model calling `layers` in turn."""

    def __init__(self, layers):
        super().__init__()
        self.stack = layers

    def call(self, x, training=None):
        for layer in self.stack:
            x = layer(x, training=training)
        return x


def _build(mode, layers, example):
    """`layers` in a model of kind `mode`, built on `example`'s row shape."""
    if mode == "tiled":
        model = LayerStack(layers)
        model(example)
        return model
    inp = keras.Input(example.shape[1:], dtype=str(example.dtype))
    if mode == "sequential":
        return keras.Sequential([inp] + layers)
    h = inp
    for layer in layers:
        h = layer(h)
    return keras.Model(inp, h)


def _model(mode, w):
    layers = _layers()
    model = _build(mode, layers, np.zeros((1, 3), dtype="float32"))
    _set(layers, w)
    return model


def _x(n=6, seed=1):
    return np.random.default_rng(seed).uniform(size=(n, 3)).astype("float32")


MODES = ("functional", "sequential", "tiled")


@pytest.mark.parametrize("mode", MODES)
def test_samples_are_thinned_networks_and_predict_is_their_mean(mode):
    w = _weights()
    model = _model(mode, w)
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
    split = MCDropout(_model("functional", w), n_samples=2000)
    tiled = MCDropout(_model("functional", w), n_samples=2000)
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
    # The graph runs the model's layers, each once, a new input and two
    # tiles: before the dropout, and on the skip branch.
    added = [op for op in graph.operations if op not in model.operations]
    assert len(graph.operations) == len(model.operations) + 2
    assert sorted(type(op).__name__ for op in added) == [
        "InputLayer",
        "Lambda",
        "Lambda",
    ]
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
    mc = MCDropout(_model("sequential", w), n_samples=8)
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
    mc = MCDropout(_model("functional", w), n_samples=9)
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
        MCDropout(_model("sequential", _weights()), n_samples=n_samples)


def test_no_dropout_layer_and_not_a_model():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation="softmax")]
    )
    with pytest.raises(ValueError, match="no dropout layer"):
        MCDropout(model)
    recurrent = keras.Sequential(
        [
            keras.Input((STEPS, 3)),
            keras.layers.LSTM(2),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    with pytest.raises(ValueError, match="`recurrent_dropout`.*no dropout layer"):
        MCDropout(recurrent)
    with pytest.raises(ValueError, match="argument `model`"):
        MCDropout(keras.layers.Dropout(0.5))
    inp = keras.Input((3,))
    h = keras.layers.Dropout(0.5)(inp)
    two = keras.Model(inp, [keras.layers.Softmax()(h), keras.layers.Softmax()(h)])
    with pytest.raises(ValueError, match="with one output"):
        MCDropout(two)


# ------------------------------------------------------------- Keras masks


def _padded_tokens(n=8, steps=5, vocab=6, seed=0):
    """Right-padded token ids (0 = padding), every row at least one token."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, steps))
    for row, length in zip(x, rng.integers(1, steps + 1, size=n), strict=True):
        row[length:] = 0
    return x


def _masked_layers():
    """The dropout (rate ~0) sits between the mask's source and the LSTM
    that reads it: the batch is tiled there, and the mask must follow."""
    init = keras.initializers.RandomNormal(stddev=1.5, seed=3)
    return [
        keras.layers.Embedding(6, 4, mask_zero=True, embeddings_initializer=init),
        keras.layers.Dropout(1e-7),
        keras.layers.LSTM(5, return_sequences=True, kernel_initializer=init),
        keras.layers.Dense(3, activation="softmax", kernel_initializer=init),
    ]


def _masked_model(mode):
    return _build(mode, _masked_layers(), np.ones((1, 5), dtype="int32"))


@pytest.mark.parametrize("mode", MODES)
def test_masked_passes_equal_predict_without_dropout(mode):
    model = _masked_model(mode)
    x = _padded_tokens()
    p = model.predict(x, verbose=0)
    lengths = (x != 0).sum(axis=1)
    # Keras' masked LSTM repeats its last real output over the padding.
    for row, length in enumerate(lengths):
        last = p[row, length - 1]
        np.testing.assert_allclose(
            p[row, length:], np.broadcast_to(last, (5 - length, 3)), atol=1e-6
        )
    mc = MCDropout(model, n_samples=3)
    assert mc._plan.mode == mode
    samples = mc.sample_predictions(x)
    np.testing.assert_allclose(samples, np.stack([p] * 3), atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_masked_evaluate_leaves_the_padding_out(mode):
    model = _masked_model(mode)
    x = _padded_tokens()
    y = np.random.default_rng(1).integers(0, 3, size=x.shape)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    mc = MCDropout(model, n_samples=3)
    mc.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    p = model.predict(x, verbose=0)
    keep = x != 0
    nll = -np.log(np.take_along_axis(p, y[..., None], axis=-1)[..., 0])
    expected = [nll[keep].mean(), (p.argmax(-1) == y)[keep].mean()]
    got = mc.evaluate(x, y, batch_size=8, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    keras_got = model.evaluate(x, y, batch_size=8, verbose=0)
    np.testing.assert_allclose(got, keras_got, rtol=1e-5)


# --------------------------------------------------------- recurrent dropout


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_lstm(x, kernel, recurrent, bias, input_masks, recurrent_masks):
    """Keras' LSTM (gates i, f, c, o) with one dropout mask per gate, the
    same at every step: `input_masks` (4, features), `recurrent_masks`
    (4, units), already scaled by 1 / (1 - rate). Returns the last output."""
    units = recurrent.shape[0]
    h = np.zeros((x.shape[0], units))
    c = np.zeros((x.shape[0], units))
    for t in range(x.shape[1]):
        z = [
            (x[:, t] * input_masks[k]) @ kernel[:, k * units : (k + 1) * units]
            + (h * recurrent_masks[k]) @ recurrent[:, k * units : (k + 1) * units]
            + bias[k * units : (k + 1) * units]
            for k in range(4)
        ]
        c = _sigmoid(z[1]) * c + _sigmoid(z[0]) * np.tanh(z[2])
        h = _sigmoid(z[3]) * np.tanh(c)
    return h


# dropout: one input mask shared by the 4 gates (Keras' implementation 2),
# 2 features; recurrent_dropout: one mask per gate, 1 unit.
RNN_CASES = {
    "dropout": dict(units=2, dropout=RATE),
    "recurrent_dropout": dict(units=1, recurrent_dropout=RATE),
}


def _rnn_layers(case):
    return [
        keras.layers.Dense(2),
        keras.layers.BatchNormalization(epsilon=BN_EPS),
        keras.layers.LSTM(**RNN_CASES[case]),
        keras.layers.Dense(3, activation="softmax"),
    ]


def _rnn_weights(case, seed=0):
    rng = np.random.default_rng(seed)
    units = RNN_CASES[case]["units"]
    return [
        [rng.normal(size=(3, 2)), rng.normal(size=(2,))],
        [
            rng.uniform(0.5, 1.5, size=(2,)),
            rng.normal(size=(2,)),
            rng.normal(size=(2,)),
            rng.uniform(0.5, 2.0, size=(2,)),
        ],
        [
            rng.normal(scale=2.0, size=(2, 4 * units)),
            rng.normal(scale=2.0, size=(units, 4 * units)),
            rng.normal(size=(4 * units,)),
        ],
        [rng.normal(scale=2.0, size=(units, 3)), rng.normal(size=(3,))],
    ]


def _rnn_model(case, mode):
    layers = _rnn_layers(case)
    model = _build(mode, layers, np.zeros((1, STEPS, 3), dtype="float32"))
    w = _rnn_weights(case)
    for layer, weights in zip(layers, w, strict=True):
        layer.set_weights([np.asarray(v, dtype="float32") for v in weights])
    return model, w


def _numpy_rnn_model(x, w, input_masks, recurrent_masks):
    """The model of `_rnn_layers`, BatchNorm with its moving statistics."""
    (w1, b1), (gamma, beta, mean, var), (kernel, recurrent, bias), (w2, b2) = w
    h = x @ w1 + b1
    h = (h - mean) / np.sqrt(var + BN_EPS) * gamma + beta
    h = _numpy_lstm(h, kernel, recurrent, bias, input_masks, recurrent_masks)
    return _softmax(h @ w2 + b2)


def _numpy_rnn_outputs(case, x, w):
    """The output of every thinned network, (masks, N, classes), and the
    units each mask keeps, (masks, bits)."""
    units = RNN_CASES[case]["units"]
    scale = 1.0 / (1.0 - RATE)
    if case == "dropout":
        bits = np.array(list(itertools.product([0.0, 1.0], repeat=2)))
        masks = [(np.tile(b * scale, (4, 1)), np.ones((4, units))) for b in bits]
    else:
        bits = np.array(list(itertools.product([0.0, 1.0], repeat=4 * units)))
        masks = [(np.ones((4, 2)), (b * scale).reshape(4, units)) for b in bits]
    return np.stack([_numpy_rnn_model(x, w, *m) for m in masks]), bits


@pytest.mark.parametrize(
    "case, mode",
    [
        ("dropout", "sequential"),
        ("recurrent_dropout", "functional"),
        ("dropout", "tiled"),
    ],
)
def test_lstm_dropout_samples_are_thinned_networks(case, mode):
    model, w = _rnn_model(case, mode)
    x = np.random.default_rng(1).normal(size=(4, STEPS, 3)).astype("float32")
    units = RNN_CASES[case]["units"]
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        _numpy_rnn_model(x, w, np.ones((4, 2)), np.ones((4, units))),
        atol=1e-5,
    )
    mc = MCDropout(model, n_samples=100)
    assert mc._plan.mode == mode
    assert [type(layer).__name__ for layer in mc._plan.dropouts] == ["LSTM"]
    seed = mc._plan.dropouts[0].cell.seed_generator
    state = keras.ops.convert_to_numpy(seed.state)
    samples = mc.sample_predictions(x, batch_size=4)
    assert samples.shape == (100, 4, 3)
    # Each (pass, row) is the output of one thinned LSTM (one mask for all
    # steps), BatchNorm with its moving statistics.
    outs, bits = _numpy_rnn_outputs(case, x, w)
    dist = np.abs(samples[:, None] - outs[None]).max(axis=-1)  # (S, M, N)
    assert np.all(dist.min(axis=1) < 1e-4)
    best = dist.argmin(axis=1)
    assert abs(bits[best].mean() - (1 - RATE)) < 0.06
    assert len(np.unique(best)) > len(bits) // 2
    seed.state.assign(state)
    mean = mc.predict(x, batch_size=4, verbose=0)
    np.testing.assert_allclose(mean, samples.mean(axis=0), atol=1e-6)


RECURRENT = {
    "gru": lambda: keras.layers.GRU(4, dropout=0.3, recurrent_dropout=0.5),
    "simple_rnn": lambda: keras.layers.SimpleRNN(4, recurrent_dropout=0.5),
    "bidirectional": lambda: keras.layers.Bidirectional(
        keras.layers.LSTM(4, dropout=0.5)
    ),
    "stacked_cells": lambda: keras.layers.RNN(
        [keras.layers.LSTMCell(4), keras.layers.GRUCell(4, dropout=0.5)]
    ),
}


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_recurrent_layers_with_dropout_are_sampled(kind):
    rnn = RECURRENT[kind]()
    model = keras.Sequential(
        [
            keras.Input((STEPS, 3)),
            rnn,
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    mc = MCDropout(model, n_samples=8)
    expected = (
        {rnn.forward_layer.name, rnn.backward_layer.name}
        if kind == "bidirectional"
        else {rnn.name}
    )
    assert {layer.name for layer in mc._plan.dropouts} == expected
    x = np.random.default_rng(0).normal(size=(5, STEPS, 3)).astype("float32")
    samples = mc.sample_predictions(x)
    assert samples.shape == (8, 5, 3)
    np.testing.assert_allclose(samples.sum(-1), 1.0, atol=1e-5)
    # The passes differ: each draws its own masks.
    assert np.abs(samples - samples[:1]).max() > 1e-3
