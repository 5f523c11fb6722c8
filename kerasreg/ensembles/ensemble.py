"""`Ensemble`: several trained classifiers combined in one Keras model."""

import types
import warnings
import weakref

import keras
import numpy as np
from keras import ops

from kerasreg import _checks
from kerasreg._masks import carry_mask
from kerasreg._registry import register
from kerasreg._trials import ranked_trials

# The combine rules and the logits probe live in `combine.py`; these names
# stay importable from here.
from kerasreg.ensembles.combine import check_combine
from kerasreg.ensembles.combine import check_probabilities
from kerasreg.ensembles.combine import combine_outputs
from kerasreg.ensembles.combine import stack_probabilities


def normalize_weights(weights, n_members):
    """Validates member weights; returns them as floats summing to 1, or None."""
    if weights is None:
        return None
    try:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(
            "Invalid value received for argument `weights`. Expected a list of "
            f"non-negative numbers. Received: weights={weights!r}"
        )
    if w.shape[0] != n_members:
        raise ValueError(
            "Invalid value received for argument `weights`. Expected one weight "
            f"per member ({n_members} members). Received: weights={weights!r} "
            f"({w.shape[0]} values)"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(
            "Invalid value received for argument `weights`. Expected finite, "
            f"non-negative numbers. Received: weights={weights!r}"
        )
    if w.sum() <= 0:
        raise ValueError(
            "Invalid value received for argument `weights`. Expected at least "
            f"one positive weight. Received: weights={weights!r}"
        )
    return [float(v) for v in w / w.sum()]


def _shape_of(tensors):
    if tensors is None:
        return None
    return tuple(tuple(t.shape[1:]) for t in tensors)


def _io_shapes(model):
    """(input shapes, output shapes) without the batch axis, or None."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return None
    if not inputs or not outputs:
        return None
    return _shape_of(inputs), _shape_of(outputs)


def check_probability_outputs(model, index, from_logits, argument="members"):
    """Raises if member `index` visibly outputs logits while from_logits is False."""
    if not from_logits:
        who = f"member {index} ('{model.name}')"
        check_probabilities(model, who, argument)


def _repeated_layers(models):
    """The layers reached more than once from `models` (a list), through
    `Model.layers`, in the order first reached.

    The layers of a graph (`keras.Sequential`, a functional model) are not
    walked: its config addresses them by their nodes, and on loading it
    cannot take in a layer that already exists.
    """
    counts = {}
    layers = []

    def visit(layer):
        if id(layer) in counts:
            counts[id(layer)] += 1
            return
        counts[id(layer)] = 1
        layers.append(layer)
        graph = isinstance(layer, (keras.Sequential, keras.Function))
        if isinstance(layer, keras.Model) and not graph:
            for sublayer in layer.layers:
                visit(sublayer)

    for model in models:
        visit(model)
    return [layer for layer in layers if counts[id(layer)] > 1]


def serialize_models(models):
    """The configs of `models` (a list), for a `get_config`.

    Models may share a model: `[TemperatureScaling(m), m]`,
    `[MCDropout(m), m]`, two wrappers of `m`. Inside `model.save`, Keras
    marks the repeated serializations of an object, and the first one, as
    shared (`shared_object_id`), so that `load_model` rebuilds one object,
    which loads the weights saved once; but a wrapper copies its inner
    model's config into its own as soon as it is serialized, so a first
    serialization inside a wrapper keeps no mark, and the file would load
    two objects, one of them without weights. Each repeated layer is
    therefore serialized once ahead, that config discarded: each one kept
    is a repeat, marked when made. (Outside `model.save`, where nothing is
    marked, this costs one more serialization of each repeated layer.)
    """
    for layer in _repeated_layers(models):
        keras.saving.serialize_keras_object(layer)
    return [keras.saving.serialize_keras_object(m) for m in models]


def deserialize_models(configs, custom_objects=None):
    """The models of `serialize_models` (a list), for a `from_config`."""
    return [
        keras.saving.deserialize_keras_object(c, custom_objects=custom_objects)
        for c in configs
    ]


def _check_members(members):
    if isinstance(members, keras.layers.Layer) or not isinstance(
        members, (list, tuple)
    ):
        raise ValueError(
            "Invalid value received for argument `members`. Expected a list "
            f"of Keras models. Received: members={members!r}"
        )
    if len(members) < 1:
        raise ValueError(
            "Invalid value received for argument `members`. Expected at least "
            "one model. Received: members=[]"
        )
    for i, m in enumerate(members):
        if not isinstance(m, keras.layers.Layer):
            raise ValueError(
                "Invalid value received for argument `members`. Expected Keras "
                f"models. Received: member {i} of type {type(m).__name__}"
            )
    shapes = [_io_shapes(m) for m in members]
    for i, s in enumerate(shapes):
        if s is not None and len(s[1]) != 1:
            raise ValueError(
                "Invalid value received for argument `members`. Expected "
                f"models with one output. Received: member {i} "
                f"('{members[i].name}') with {len(s[1])} outputs"
            )
    known = [(i, s) for i, s in enumerate(shapes) if s is not None]
    for i, s in known[1:]:
        j, ref = known[0]
        if s != ref:
            raise ValueError(
                "Invalid value received for argument `members`. Expected "
                "models with the same input and output shapes. Received: "
                f"member {j} ('{members[j].name}') with input shape "
                f"{_fmt(ref[0])} and output shape {_fmt(ref[1])}, member {i} "
                f"('{members[i].name}') with input shape {_fmt(s[0])} and "
                f"output shape {_fmt(s[1])}"
            )


def _fmt(shapes):
    shapes = [(None,) + s for s in shapes]
    return shapes[0] if len(shapes) == 1 else shapes


class MemberPredictions:
    """Mixin: `member_predictions`, for a model whose
    `_member_probabilities(inputs)` stacks its members' probabilities on
    axis 0 (`Ensemble`, `DeepEnsemble`)."""

    def member_predictions(self, x, batch_size=None, verbose=0):
        """Each member's class probabilities, computed in one fused pass.

        Args:
            x: Input data, as for `predict`.
            batch_size: Integer, rows per batch. Defaults to `None` (32).
            verbose: Verbosity of the prediction loop. Defaults to `0`.

        Returns:
            A numpy array of shape `(members, N, classes)` (two columns,
            `[1 - p, p]`, for members with one sigmoid output).
        """
        return stacked_predict(
            self, "_member_probabilities", x, batch_size, verbose
        )


class StackedPredictions(keras.Model):
    """Batch-first stack of `owner.<method>(inputs)` (axis 0 = models).

    Not registered nor saved: it only lends `predict`'s batching and compiled
    loop to `member_predictions` / `head_predictions`.
    """

    def __init__(self, owner, method):
        super().__init__(name=f"{owner.name}_{method.strip('_')}")
        self._source = types.SimpleNamespace(owner=owner, method=method)

    def call(self, inputs):
        fn = getattr(self._source.owner, self._source.method)
        return ops.moveaxis(fn(inputs), 0, 1)


# owner -> {method name: StackedPredictions}, outside the owners' attributes
# so that Keras neither tracks nor saves them.
_STACKED = weakref.WeakKeyDictionary()


def stacked_predict(owner, method, x, batch_size=None, verbose=0):
    """`owner.<method>(x)` (models stacked on axis 0) through `predict`.

    The stacked model is made once per owner and method, so `predict`'s
    compiled loop is reused by later calls.

    Returns:
        A numpy array of shape `(models, N, ...)`.
    """
    models = _STACKED.setdefault(owner, {})
    stacked = models.get(method)
    if stacked is None:
        stacked = models[method] = StackedPredictions(owner, method)
        # Built when the owner is: else `predict` first runs it eagerly to
        # build it, which on jax compiles every op on its own.
        stacked.built = owner.built
    out = stacked.predict(x, batch_size=batch_size, verbose=verbose)
    return np.moveaxis(np.asarray(out), 1, 0)


@register
class Ensemble(MemberPredictions, keras.Model):
    """An ensemble of classifiers, combined in one Keras model.

    Train several models and average their predicted probabilities: the
    errors of models trained from different random initializations (or on
    bootstrap resamples of the data) are partly independent, so their average
    is more accurate and better calibrated than each of them (CS 182, lecture
    7; cs231n "model ensembles": a few percent for free). Averaging
    probabilities usually works better than a majority vote.

    `Ensemble` is a `keras.Model` whose `call` runs every member on the input
    and combines their outputs, so that `predict` and `evaluate` run all
    members in one compiled call, not a Python loop of `member.predict`.
    The members' Keras mask (`Embedding(mask_zero=True)`, `Masking`) stays
    on the combined output, so losses and metrics leave padded steps out,
    as for the members themselves. Members may share a model (e.g.
    `[TemperatureScaling(m), m]`): a `.keras` file loads it shared again.

    Args:
        members: List of Keras models with the same input and output shapes,
            each ending in a softmax (or, for one output column, a sigmoid).
        combine: String, how member probabilities are combined: `"mean"` (the
            weighted mean), `"vote"` (the weighted share of members voting for
            each class, as a probability vector; ties are broken by the mean
            probability, and the winner is moved up by `1e-5` so that
            `argmax` gives it), or `"geometric"` (softmax of the weighted mean
            of log-probabilities, i.e. the normalized geometric mean).
            Defaults to `"mean"`.
        weights: Optional list of non-negative member weights, normalized to
            sum to 1. Defaults to `None` (equal weights).
        from_logits: Boolean, whether members output logits; if `True` a
            softmax (sigmoid for one column) is applied to each member's
            output before combining. With `False` (default), members that
            visibly output logits (on a random probe input) are refused.
        name: String, the model name. Defaults to `None`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg import Ensemble

    def build():
        return keras.Sequential([
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ])

    x = np.random.rand(64, 8).astype("float32")
    y = np.random.randint(0, 3, size=64)
    members = []
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        m = build()
        m.compile("adam", "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=1, verbose=0)
        members.append(m)
    ens = Ensemble(members, combine="mean")
    ens.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    probs = ens.predict(x, verbose=0)               # (64, 3)
    per_member = ens.member_predictions(x)          # (3, 64, 3)
    ```
    """

    def __init__(
        self,
        members,
        combine="mean",
        weights=None,
        from_logits=False,
        name=None,
        **kwargs,
    ):
        _check_members(members)
        check_combine(combine)
        member_weights = normalize_weights(weights, len(members))
        for i, m in enumerate(members):
            check_probability_outputs(m, i, from_logits)
        super().__init__(name=name, **kwargs)
        self.members = list(members)
        self.combine = combine
        self.member_weights = member_weights
        self.from_logits = bool(from_logits)
        if all(m.built for m in self.members):
            self.built = True

    def build(self, input_shape):
        for m in self.members:
            if not m.built:
                m(_symbolic(input_shape))
        self.built = True

    def _member_probabilities(self, inputs, training=None):
        outputs = [m(inputs, training=training) for m in self.members]
        return stack_probabilities(outputs, self.from_logits)

    def call(self, inputs, training=None):
        outputs = [m(inputs, training=training) for m in self.members]
        combined = combine_outputs(
            outputs, self.combine, self.member_weights, self.from_logits
        )
        # The members' Keras mask (e.g. padded steps), for losses and metrics.
        return carry_mask(combined, *outputs)

    @classmethod
    def from_tuner(cls, tuner, k=5, combine="mean", **kwargs):
        """The top `k` models of a finished Keras Tuner search, as an ensemble.

        cs231n: "top models discovered during cross-validation" make a cheap
        ensemble that needs no retraining.

        Only trials that completed with a finite score become members, in the
        order of the tuner's oracle (`get_best_trials`), each loaded from its
        best checkpoint (`tuner.load_model`). Keras Tuner's own
        `get_best_models(k)` pads its answer with failed trials when fewer
        than `k` completed (a diverged trial's NaN weights would make the
        ensemble predict NaN; a trial whose model could not be built would
        raise again): here, when fewer than `k` trials completed, the
        ensemble has the completed ones and a warning says how many.

        Args:
            tuner: A `keras_tuner` tuner whose search has run (e.g.
                `keras_tuner.RandomSearch` or `kerasreg.CoarseToFine`).
            k: Positive integer, how many of the best models to use.
                Defaults to `5`.
            combine: String, as for `Ensemble`. Defaults to `"mean"`.
            **kwargs: Other `Ensemble` arguments (`weights`, `from_logits`,
                `name`).

        Returns:
            An `Ensemble` of `min(k, completed trials)` members.

        Raises:
            TypeError: If `tuner` is not a Keras Tuner tuner.
            ValueError: If no trial of the search completed with a finite
                score.
        """
        if not all(
            hasattr(tuner, attr)
            for attr in ("oracle", "load_model", "get_best_models")
        ):
            raise TypeError(
                "Invalid value received for argument `tuner`. Expected a "
                "Keras Tuner tuner whose search has run (e.g. "
                "`keras_tuner.RandomSearch` or `kerasreg.CoarseToFine`). "
                f"Received: tuner={tuner!r} of type {type(tuner).__name__}"
            )
        _checks.int_at_least("k", k, 1)
        check_combine(combine)
        completed, others = ranked_trials(tuner)
        n_trials = len(completed) + len(others)
        if not completed:
            raise ValueError(
                "Invalid value received for argument `tuner`. Expected a "
                "search with at least one trial completed with a finite "
                f"score. Received: a tuner with {n_trials} trials, none "
                f"completed ({_statuses(others)})"
            )
        if len(completed) < k:
            skipped = f" ({_statuses(others)} left out)" if others else ""
            warnings.warn(
                f"Ensemble.from_tuner: k={k} requested, but only "
                f"{len(completed)} of the {n_trials} trials of the search "
                f"completed with a finite score{skipped}: the ensemble has "
                f"{len(completed)} members.",
                stacklevel=2,
            )
        models = [tuner.load_model(trial) for trial in completed[: int(k)]]
        return cls(models, combine=combine, **kwargs)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "members": serialize_models(self.members),
            "combine": self.combine,
            "weights": (
                None
                if self.member_weights is None
                else list(self.member_weights)
            ),
            "from_logits": self.from_logits,
        }
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        members = deserialize_models(config.pop("members"), custom_objects)
        return cls(members, **config)


def _statuses(trials):
    """E.g. `"2 FAILED, 1 COMPLETED with a NaN/Inf score"`."""
    counts = {}
    for trial in trials:
        status = str(trial.status)
        if status == "COMPLETED":
            status = "COMPLETED with a NaN/Inf or no score"
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _symbolic(input_shape):
    if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(
        input_shape[0], (list, tuple)
    ):
        return [keras.KerasTensor(tuple(s)) for s in input_shape]
    return keras.KerasTensor(tuple(input_shape))
