import warnings

import keras
import numpy as np
import pytest

from kerasreg import DeepEnsemble
from kerasreg import Ensemble
from kerasreg import MCDropout
from kerasreg import SnapshotEnsemble
from kerasreg.calibration import TemperatureScaling
from kerasreg.ensembles.combine import probability_tolerance
from kerasreg.ensembles.combine import probe_inputs
from kerasreg.ensembles.combine import raise_if_logits
from kerasreg.ensembles.combine import VOTE_NUDGE


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _dense_member(features, classes, seed, activation="softmax"):
    """A one-layer member with random weights, and its numpy twin."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(features, classes)).astype("float32")
    b = rng.normal(size=(classes,)).astype("float32")
    model = keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(classes, activation=activation)]
    )
    model.set_weights([w, b])
    return model, (lambda x: x @ w + b)


def _fixed_members(n_members=3, features=4, classes=3):
    pairs = [_dense_member(features, classes, seed) for seed in range(n_members)]
    return [m for m, _ in pairs], [f for _, f in pairs]


def _x(n=17, features=4, seed=42):
    return np.random.default_rng(seed).normal(size=(n, features)).astype("float32")


def _slice_members(n_members, classes):
    """Members whose probabilities are given by the input: x[:, i] = log p_i."""
    members = []
    for i in range(n_members):
        inp = keras.Input((n_members, classes))
        out = keras.layers.Lambda(
            lambda t, i=i: keras.ops.softmax(t[:, i], axis=-1)
        )(inp)
        members.append(keras.Model(inp, out))
    return members


def test_mean_weighted_and_geometric_against_numpy():
    members, logits = _fixed_members()
    x = _x()
    p = np.stack([_softmax(f(x)) for f in logits])  # (M, N, C)
    np.testing.assert_allclose(
        Ensemble(members).predict(x, verbose=0), p.mean(0), atol=1e-6
    )
    w = np.array([1.0, 3.0, 0.0])
    np.testing.assert_allclose(
        Ensemble(members, weights=w).predict(x, verbose=0),
        np.tensordot(w / w.sum(), p, axes=1),
        atol=1e-6,
    )
    geo = np.exp(np.log(p).mean(0))
    geo /= geo.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        Ensemble(members, combine="geometric").predict(x, verbose=0),
        geo,
        atol=1e-5,
    )


def test_member_predictions_are_the_members():
    members, logits = _fixed_members()
    x = _x()
    ens = Ensemble(members)
    mp = ens.member_predictions(x, batch_size=5)
    assert mp.shape == (3, 17, 3)
    for i, f in enumerate(logits):
        np.testing.assert_allclose(mp[i], _softmax(f(x)), atol=1e-6)


def test_vote_shares_and_exact_tie_break():
    # Rows of (member, class) probabilities.
    probs = np.array(
        [
            # votes 0, 0, 1, 1: tie; class 1 has the larger mean (0.45 > 0.40)
            [[0.5, 0.4, 0.1], [0.5, 0.3, 0.2], [0.3, 0.6, 0.1], [0.3, 0.5, 0.2]],
            # votes 0, 0, 1, 1 again, now class 0 has the larger mean
            [[0.9, 0.1, 0.0], [0.8, 0.1, 0.1], [0.3, 0.4, 0.3], [0.3, 0.4, 0.3]],
            # votes 2, 2, 2, 0: no tie
            [[0.2, 0.1, 0.7], [0.1, 0.1, 0.8], [0.3, 0.2, 0.5], [0.6, 0.2, 0.2]],
        ]
    )
    x = np.log(np.clip(probs, 1e-12, 1)).astype("float32")
    ens = Ensemble(_slice_members(4, 3), combine="vote")
    out = ens.predict(x, verbose=0)
    shares = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.25, 0.0, 0.75]])
    np.testing.assert_allclose(out, shares, atol=VOTE_NUDGE + 1e-6)
    np.testing.assert_array_equal(out.argmax(1), [1, 0, 2])
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-6)

    # Weighted vote: weights 3, 1, 1, 1 on votes 0, 1, 1, 2.
    probs = np.array(
        [[[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]]
    )
    x = np.log(probs).astype("float32")
    ens = Ensemble(_slice_members(4, 3), combine="vote", weights=[3, 1, 1, 1])
    np.testing.assert_allclose(
        ens.predict(x, verbose=0), [[0.5, 1 / 3, 1 / 6]], atol=VOTE_NUDGE + 1e-6
    )


def test_from_logits_applies_softmax():
    pairs = [_dense_member(4, 3, seed, activation=None) for seed in range(2)]
    x = _x()
    ens = Ensemble([m for m, _ in pairs], from_logits=True)
    expected = np.mean([_softmax(f(x)) for _, f in pairs], axis=0)
    np.testing.assert_allclose(ens.predict(x, verbose=0), expected, atol=1e-6)


def test_logits_refused_without_from_logits():
    logit_member, _ = _dense_member(4, 3, 0, activation=None)
    members, _ = _fixed_members(2)
    with pytest.raises(ValueError, match="member 1 .*from_logits=True"):
        Ensemble([members[0], logit_member])


def test_binary_sigmoid_members():
    pairs = [_dense_member(4, 1, seed, activation="sigmoid") for seed in range(3)]
    x = _x()
    p = np.stack([1 / (1 + np.exp(-f(x))) for _, f in pairs])  # (M, N, 1)
    out = Ensemble([m for m, _ in pairs]).predict(x, verbose=0)
    assert out.shape == (17, 1)
    np.testing.assert_allclose(out, p.mean(0), atol=1e-6)
    vote = Ensemble([m for m, _ in pairs], combine="vote").predict(x, verbose=0)
    np.testing.assert_allclose(vote, (p > 0.5).mean(0), atol=VOTE_NUDGE + 1e-6)


def test_compile_evaluate_on_combined_output():
    members, logits = _fixed_members()
    x = _x(40)
    y = np.random.default_rng(1).integers(0, 3, size=40)
    p = np.mean([_softmax(f(x)) for f in logits], axis=0)
    ens = Ensemble(members)
    ens.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    out = ens.evaluate(x, y, batch_size=40, verbose=0, return_dict=True)
    assert out["loss"] == pytest.approx(-np.mean(np.log(p[np.arange(40), y])), abs=1e-5)
    assert out["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y))


def test_get_config_from_config_round_trip():
    members, _ = _fixed_members()
    x = _x()
    ens = Ensemble(members, combine="geometric", weights=[1, 2, 1], name="ens")
    config = ens.get_config()
    assert config["combine"] == "geometric"
    assert config["weights"] == pytest.approx([0.25, 0.5, 0.25])
    clone = Ensemble.from_config(config)
    assert clone.name == "ens" and len(clone.members) == 3
    clone.set_weights(ens.get_weights())
    np.testing.assert_allclose(
        clone.predict(x, verbose=0), ens.predict(x, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize("combine", ["mean", "vote", "geometric"])
def test_keras_save_load_round_trip(tmp_path, combine):
    members, _ = _fixed_members()
    x = _x()
    ens = Ensemble(members, combine=combine, weights=[2, 1, 1])
    ens.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    path = tmp_path / "ensemble.keras"
    ens.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Ensemble)
    assert loaded.combine == combine and len(loaded.members) == 3
    for a, b in zip(loaded.members, members):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), ens.predict(x, verbose=0), atol=1e-7
    )


def test_members_with_the_same_name_round_trip(tmp_path):
    # Members built in separate sessions often share a name ("sequential").
    members = []
    for seed in range(2):
        keras.backend.clear_session()
        members.append(_dense_member(4, 3, seed)[0])
    assert members[0].name == members[1].name
    ens = Ensemble(members)
    ens.save(tmp_path / "e.keras")
    loaded = keras.saving.load_model(tmp_path / "e.keras")
    x = _x()
    np.testing.assert_allclose(
        loaded.member_predictions(x), ens.member_predictions(x), atol=1e-7
    )


def _run(model, x):
    """A direct call (no compiled predict loop: faster here), as numpy."""
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


# Members sharing one model `m`: Keras saves its weights once.
SHARED_MODEL_MEMBERS = {
    "wrapped_then_plain": lambda m: [TemperatureScaling(m, 2.0), m],
    "two_wrappers": lambda m: [TemperatureScaling(m, 2.0), TemperatureScaling(m, 3.0)],
    "mc_dropout_then_plain": lambda m: [MCDropout(m, n_samples=2), m],
    "plain_twice": lambda m: [m, m],
    "plain_then_wrapped": lambda m: [m, TemperatureScaling(m, 2.0)],
}


@pytest.mark.parametrize("case", list(SHARED_MODEL_MEMBERS))
def test_members_sharing_a_model_save_and_load(tmp_path, case):
    m = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    ens = Ensemble(SHARED_MODEL_MEMBERS[case](m))
    ens.save(tmp_path / "shared.keras")
    loaded = keras.saving.load_model(tmp_path / "shared.keras")

    def inner(member):  # the model a wrapper wraps
        return getattr(member, "model", member)

    # One model again, shared by both members, holding m's weights.
    shared = inner(loaded.members[0])
    assert shared is inner(loaded.members[1])
    for a, b in zip(shared.get_weights(), m.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Each member predicts as before (an MCDropout: its model's pass).
    x = _x()
    for before, after in zip(ens.members, loaded.members, strict=True):
        if isinstance(before, MCDropout):
            before, after = before.model, after.model
        np.testing.assert_allclose(_run(after, x), _run(before, x), atol=1e-7)


def _dict_input_model(activation="softmax"):
    """A functional model built from (and called with) a dict of inputs."""
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.Concatenate()([a, b])
    h = keras.layers.Dropout(0.2)(keras.layers.Dense(4, activation="relu")(h))
    out = keras.layers.Dense(3, activation=activation)(h)
    return keras.Model({"a": a, "b": b}, out)


DICT_INPUT_WRAPPERS = {
    "Ensemble": lambda build: Ensemble([build()]),
    "MCDropout": lambda build: MCDropout(build(), n_samples=2),
    "DeepEnsemble": lambda build: DeepEnsemble(build, n_members=2),
}


@pytest.mark.parametrize("wrapper", list(DICT_INPUT_WRAPPERS))
def test_the_logits_probe_feeds_a_dict_input_model_a_dict(wrapper):
    make = DICT_INPUT_WRAPPERS[wrapper]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make(_dict_input_model)
    # Keras warns when a model gets another structure than it was built with.
    assert [str(w.message) for w in caught if w.category is UserWarning] == []
    x = probe_inputs(_dict_input_model())
    assert {k: v.shape for k, v in x.items()} == {"a": (4, 3), "b": (4, 2)}
    with pytest.raises(ValueError, match="looks like logits"):
        make(lambda: _dict_input_model(activation=None))


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"combine": "median"}, "combine"),
        ({"weights": [1, 1]}, "weights"),
        ({"weights": [1, -1, 1]}, "weights"),
        ({"weights": [0, 0, 0]}, "weights"),
        ({"weights": [1, float("nan"), 1]}, "weights"),
    ],
)
def test_bad_arguments(kwargs, argument):
    members, _ = _fixed_members()
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        Ensemble(members, **kwargs)


def test_bad_members():
    with pytest.raises(ValueError, match="argument `members`.*at least one"):
        Ensemble([])
    with pytest.raises(ValueError, match="argument `members`"):
        Ensemble("model")
    a, _ = _dense_member(4, 3, 0)
    b, _ = _dense_member(5, 3, 1)
    c, _ = _dense_member(4, 2, 2)
    with pytest.raises(ValueError, match=r"input shape \(None, 4\).*input shape \(None, 5\)"):
        Ensemble([a, b])
    with pytest.raises(ValueError, match=r"output shape \(None, 3\).*output shape \(None, 2\)"):
        Ensemble([a, c])


def _tiny_search(tmp_path):
    keras_tuner = pytest.importorskip("keras_tuner")

    def build(hp):
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(hp.Choice("units", [4, 8, 16]), activation="relu"),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = keras_tuner.RandomSearch(
        build,
        objective="val_accuracy",
        max_trials=2,
        seed=0,
        directory=str(tmp_path),
        project_name="search",
    )
    x = _x(32)
    y = np.random.default_rng(3).integers(0, 3, size=32)
    tuner.search(x, y, epochs=1, validation_data=(x, y), verbose=0)
    return tuner, x


@pytest.mark.slow
def test_from_tuner(tmp_path):
    tuner, x = _tiny_search(tmp_path)
    ens = Ensemble.from_tuner(tuner, k=2, combine="mean")
    assert len(ens.members) == 2
    best = tuner.get_best_models(num_models=2)
    expected = np.mean([m.predict(x, verbose=0) for m in best], axis=0)
    np.testing.assert_allclose(ens.predict(x, verbose=0), expected, atol=1e-6)
    with pytest.raises(ValueError, match="argument `k`"):
        Ensemble.from_tuner(tuner, k=0)
    # More than the search completed: the completed ones, and a warning.
    with pytest.warns(UserWarning, match="k=10 requested, but only 2 of the 2"):
        assert len(Ensemble.from_tuner(tuner, k=10).members) == 2


def _search_with_failures(tmp_path, kinds, max_trials):
    """A real RandomSearch; `kinds` are the values of the `kind` choice:
    "small"/"wide" train well, "diverging" (SGD at 1e30) is stopped by
    StopOnDivergence with a NaN loss, "broken" raises in the model builder."""
    keras_tuner = pytest.importorskip("keras_tuner")
    from kerasreg import StopOnDivergence

    def build(hp):
        kind = hp.Choice("kind", kinds)
        if kind == "broken":
            raise ValueError("simulated bug in the model builder")
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(16 if kind == "wide" else 8, activation="relu"),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
        lr = 1e30 if kind == "diverging" else 1e-2
        model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy")
        return model

    tuner = keras_tuner.RandomSearch(
        build,
        objective="val_loss",
        max_trials=max_trials,
        seed=0,
        directory=str(tmp_path),
        project_name="failures",
    )
    x = _x(32)
    y = np.random.default_rng(3).integers(0, 3, size=32)
    tuner.search(
        x, y, epochs=1, batch_size=8, validation_data=(x, y), verbose=0,
        callbacks=[StopOnDivergence(warmup_steps=1)],
    )
    return tuner, x


def _numpy_forward(model, x):
    w1, b1, w2, b2 = model.get_weights()
    return _softmax(np.maximum(x @ w1 + b1, 0.0) @ w2 + b2)


@pytest.mark.slow
def test_from_tuner_takes_only_completed_trials(tmp_path):
    tuner, x = _search_with_failures(
        tmp_path, ["small", "wide", "diverging", "broken"], max_trials=4
    )
    trials = tuner.oracle.trials.values()
    status = {t.hyperparameters.values["kind"]: t.status for t in trials}
    assert status == {
        "small": "COMPLETED", "wide": "COMPLETED",
        "diverging": "FAILED", "broken": "FAILED",
    }
    # Keras Tuner pads get_best_models(4) with the two failed trials.
    with pytest.raises(Exception):
        tuner.get_best_models(num_models=4)

    with pytest.warns(UserWarning, match=r"k=4 requested, but only 2 of the 4 "
                      r"trials.*2 FAILED left out.*has 2 members"):
        ens = Ensemble.from_tuner(tuner, k=4)
    assert len(ens.members) == 2
    # The two completed trials, best (lowest val_loss) first.
    completed = sorted(
        (t for t in trials if t.status == "COMPLETED"), key=lambda t: t.score
    )
    widths = {"small": 8, "wide": 16}
    assert [m.layers[0].units for m in ens.members] == [
        widths[t.hyperparameters.values["kind"]] for t in completed
    ]
    expected = np.mean([_numpy_forward(m, x) for m in ens.members], axis=0)
    out = ens.predict(x, verbose=0)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, atol=1e-5)

    # k within the completed trials: the best one, no warning.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        best = Ensemble.from_tuner(tuner, k=1)
    assert best.members[0].layers[0].units == ens.members[0].layers[0].units


@pytest.mark.slow
def test_from_tuner_without_completed_trials(tmp_path):
    tuner, _ = _search_with_failures(tmp_path, ["diverging", "broken"], max_trials=2)
    assert {t.status for t in tuner.oracle.trials.values()} == {"FAILED"}
    with pytest.raises(
        ValueError, match=r"argument `tuner`.*2 trials, none completed \(2 FAILED\)"
    ):
        Ensemble.from_tuner(tuner, k=3)


def test_from_tuner_rejects_a_non_tuner():
    with pytest.raises(TypeError, match=r"argument `tuner`.*Received: tuner='x'"):
        Ensemble.from_tuner("x")


@pytest.fixture(params=["mixed_bfloat16", "mixed_float16"])
def mixed_policy(request):
    """A mixed precision global policy, reset to float32 after the test."""
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_softmax_members_accepted_under_mixed_precision(mixed_policy):
    # Under mixed_bfloat16 a softmax's rows sum to 1 only within ~4e-3.
    pairs = [_dense_member(6, 10, seed) for seed in range(3)]
    members = [m for m, _ in pairs]
    assert keras.backend.standardize_dtype(members[0].outputs[0].dtype) == (
        "bfloat16" if mixed_policy == "mixed_bfloat16" else "float16"
    )
    x = _x(40, features=6)
    ens = Ensemble(members)

    out = _run(ens, x)
    expected = np.mean([_softmax(f(x.astype(np.float64))) for _, f in pairs], axis=0)
    # Half-precision matmul and softmax: a few roundoffs of the dtype.
    atol = 3e-2 if mixed_policy == "mixed_bfloat16" else 4e-3
    np.testing.assert_allclose(out.astype(np.float64), expected, atol=atol)
    # The vote's tie-break nudge (1e-5) survives: the ensemble combines in
    # float32, not in the members' half precision.
    vote = _run(Ensemble(members, combine="vote"), x)
    assert vote.dtype == np.float32
    mp = np.stack([_run(m, x).astype(np.float64) for m in members])  # (3, 40, 10)
    shares = np.eye(10)[mp.argmax(-1)].mean(0)
    tied = shares >= shares.max(-1, keepdims=True) - 1e-6
    assert np.any(tied.sum(-1) > 1)  # some rows are ties
    winner = np.where(tied, mp.mean(0), -1.0).argmax(-1)
    np.testing.assert_array_equal(vote.argmax(1), winner)
    # SnapshotEnsemble runs the same probe.
    SnapshotEnsemble(members[0], n_snapshots=2)
    # Logits are still refused.
    logit_member, _ = _dense_member(6, 10, 7, activation=None)
    with pytest.raises(ValueError, match="member 1 .*looks like logits"):
        Ensemble([members[0], logit_member])
    with pytest.raises(ValueError, match="argument `model`.*looks like logits"):
        SnapshotEnsemble(logit_member)


@pytest.mark.parametrize(
    "dtype, tol", [("bfloat16", 2.0**-8 * 8), ("float16", 2.0**-11 * 8), ("float32", 1e-3)]
)
def test_probability_tolerance_follows_the_dtype(dtype, tol):
    assert probability_tolerance(dtype) == tol
    # Rows summing to 1 + tol / 2 (after rounding to the dtype) pass, rows
    # summing to 1 + 2 * tol are refused.
    for excess, ok in ((tol / 2, True), (2 * tol, False)):
        rows = keras.ops.convert_to_tensor(
            np.array([[0.25, 0.75 + excess]]), dtype=dtype
        )
        actual = float(np.asarray(keras.ops.convert_to_numpy(rows), np.float64).sum())
        assert (abs(actual - 1) <= tol) == ok
        if ok:
            raise_if_logits(rows, "member 0", "members")
        else:
            with pytest.raises(ValueError, match="rows summing to"):
                raise_if_logits(rows, "member 0", "members")


# ------------------------------------------------------------- Keras masks


def masked_sequences(n=24, steps=6, vocab=10, classes=3, seed=0):
    """Right-padded integer sequences (0 = padding) and per-step labels."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, steps))
    lengths = rng.integers(1, steps + 1, size=n)
    x[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    return x.astype("int32"), rng.integers(0, classes, size=(n, steps))


def masked_lstm(seed, steps=6, vocab=10, classes=3):
    """Embedding(mask_zero=True) -> LSTM(return_sequences=True) -> softmax."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((steps,), dtype="int32")
    h = keras.layers.Embedding(vocab, 4, mask_zero=True)(inp)
    h = keras.layers.LSTM(5, return_sequences=True)(h)
    return keras.Model(inp, keras.layers.Dense(classes, activation="softmax")(h))


def masked_scores(p, y, mask):
    """Numpy: the sparse cross-entropy and accuracy over the unmasked steps."""
    p, y = p[mask], y[mask]
    return {
        "loss": -np.mean(np.log(p[np.arange(len(y)), y])),
        "accuracy": np.mean(p.argmax(-1) == y),
    }


def _evaluate(model, x, y):
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)


def test_keras_mask_flows_through_the_combination():
    x, y = masked_sequences()
    mask = x != 0
    members = [masked_lstm(seed) for seed in range(2)]
    # One member: exactly the member's own masked scores.
    alone = _evaluate(members[0], x, y)
    one = _evaluate(Ensemble(members[:1]), x, y)
    assert one["loss"] == pytest.approx(alone["loss"], abs=1e-6)
    assert one["accuracy"] == pytest.approx(alone["accuracy"], abs=1e-6)
    # Two members: the mean's scores over the unpadded steps only.
    ens = Ensemble(members)
    p = ens.member_predictions(x).mean(0)
    expected = masked_scores(p, y, mask)
    # (Scoring the padded steps too would give another accuracy.)
    unmasked = masked_scores(p, y, np.ones_like(mask))
    assert expected["accuracy"] != pytest.approx(unmasked["accuracy"])
    out = _evaluate(ens, x, y)
    assert out["loss"] == pytest.approx(expected["loss"], abs=1e-5)
    assert out["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)


# ----------------------------------------------------- batch-dependent model


def batch_normalized_member(features=4, classes=3, seed=0, scale=1.0):
    """A softmax model whose inputs are scaled to a unit L2 norm along the
    batch axis (its predictions follow the batch size), and its numpy twin:
    the logits `f(x, batch_size)`."""
    rng = np.random.default_rng(seed)
    w = scale * rng.normal(size=(features, classes)).astype("float32")
    b = rng.normal(size=(classes,)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.UnitNormalization(axis=0),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.set_weights([w, b])

    def logits(x, batch_size):
        x = x.astype(np.float64)
        batches = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
        return np.concatenate(
            [t / np.linalg.norm(t, axis=0) @ w + b for t in batches]
        )

    return model, logits
