"""`DeepEnsemble`: M independently initialized networks trained in one step."""

import math

import keras
import numpy as np
from keras import ops

from kerasreg import _checks
from kerasreg import _compat
from kerasreg._cloning import clone_uncompiled
from kerasreg._registry import register
from kerasreg.ensembles.combine import FusedOutputs
from kerasreg.ensembles.combine import check_combine
from kerasreg.ensembles.ensemble import MemberPredictions
from kerasreg.ensembles.ensemble import check_probability_outputs
from kerasreg.ensembles.ensemble import deserialize_models
from kerasreg.ensembles.ensemble import serialize_models
from kerasreg.ensembles.ensemble import _io_shapes
from kerasreg.ensembles.ensemble import _symbolic

BOOTSTRAPS = (None, "poisson")

# Key prefix of the saved random-seed states (see `_seed_states`).
_SEED_KEY = "seed_state_"

# Poisson(1) is drawn by inverting its CDF on a uniform draw, over the support
# 0 .. _POISSON_MAX: P(X > 12) < 1e-10, below float32's resolution near 1.
_POISSON_MAX = 12
_POISSON_CDF = np.cumsum(
    [math.exp(-1.0) / math.factorial(k) for k in range(_POISSON_MAX)]
)


def poisson_weights(shape, seed=None, dtype=None):
    """Independent Poisson(1) draws, as floats (the online bootstrap weights).

    `keras.random` has no Poisson sampler: a uniform draw `u` is mapped to the
    smallest `k` with `CDF(k) >= u` (inversion), over the support `0..12`.

    Args:
        shape: Tuple of integers, the shape of the output.
        seed: A `keras.random.SeedGenerator`, an integer or `None`.
        dtype: Float dtype of the output. Defaults to `None` (`floatx`).

    Returns:
        A tensor of non-negative integer-valued floats with mean 1 and
        variance 1.
    """
    dtype = dtype or keras.backend.floatx()
    u = keras.random.uniform(tuple(shape), seed=seed, dtype="float32")
    cdf = ops.convert_to_tensor(_POISSON_CDF.astype("float32"))
    k = ops.sum(ops.cast(ops.expand_dims(u, -1) > cdf, "int32"), axis=-1)
    return ops.cast(k, dtype)


class _Prebuilt:
    """A `build_fn` handing out already built members (used by `from_config`)."""

    def __init__(self, models):
        self._models = iter(models)

    def __call__(self):
        return next(self._models)


def _check_bootstrap(bootstrap):
    if bootstrap not in BOOTSTRAPS:
        raise ValueError(
            "Invalid value received for argument `bootstrap`. Expected one of "
            f"{BOOTSTRAPS}. Received: bootstrap={bootstrap!r}"
        )
    return bootstrap


def _signature(model):
    """What must agree between members: classes, shapes of layers and weights."""
    layers = getattr(model, "layers", None) or []
    return (
        type(model).__name__,
        tuple(type(layer).__name__ for layer in layers),
        tuple(tuple(w.shape) for w in model.weights),
        _io_shapes(model),
    )


def _member_factory(build_fn):
    """A callable with no arguments returning a new member."""
    if isinstance(build_fn, keras.Model):
        # Same architecture, fresh weights; `build_fn` itself is untouched.
        return lambda: clone_uncompiled(build_fn)
    if isinstance(build_fn, keras.layers.Layer) or not callable(build_fn):
        raise ValueError(
            "Invalid value received for argument `build_fn`. Expected a "
            "Keras model, or a callable returning a new, uncompiled Keras "
            f"model. Received: build_fn={build_fn!r}"
        )
    return build_fn


def _build_members(build_fn, n_members, seed):
    make = _member_factory(build_fn)
    members = []
    for i in range(n_members):
        if seed is not None:
            keras.utils.set_random_seed(seed + i)
        model = make()
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Invalid value received for argument `build_fn`. Expected a "
                "callable returning a Keras model. Received: build_fn() "
                f"returned {model!r}"
            )
        if getattr(model, "compiled", False):
            raise ValueError(
                "Invalid value received for argument `build_fn`. Expected a "
                "callable returning an uncompiled Keras model (compile the "
                "`DeepEnsemble` instead). Received: build_fn() returned the "
                f"compiled model '{model.name}'"
            )
        if any(model is m for m in members):
            raise ValueError(
                "Invalid value received for argument `build_fn`. Expected a "
                "callable returning a new model on each call. Received: "
                f"build_fn() returned the same model twice (call {i})"
            )
        members.append(model)
    reference = _signature(members[0])
    for i, model in enumerate(members[1:], start=1):
        if _signature(model) != reference:
            raise ValueError(
                "Invalid value received for argument `build_fn`. Expected a "
                "callable returning the same architecture on each call. "
                f"Received: member 0 ('{members[0].name}') with layers "
                f"{list(reference[1])} and weight shapes {list(reference[2])}, "
                f"member {i} ('{model.name}') with layers "
                f"{list(_signature(model)[1])} and weight shapes "
                f"{list(_signature(model)[2])}"
            )
    shapes = _io_shapes(members[0])
    if shapes is not None and len(shapes[1]) != 1:
        raise ValueError(
            "Invalid value received for argument `build_fn`. Expected a model "
            f"with one output. Received: a model with {len(shapes[1])} outputs"
        )
    return members


@register
class DeepEnsemble(FusedOutputs, MemberPredictions, keras.Model):
    """A deep ensemble whose members are trained together, in one step.

    A deep ensemble (Lakshminarayanan et al., 2017, "Simple and scalable
    predictive uncertainty estimation using deep ensembles"; CS 182, lecture
    7) trains `n_members` copies of one architecture from different random
    initializations and averages their predicted probabilities. Here the
    members live in one `keras.Model`: `fit` trains all of them in a single
    compiled train step (one forward pass through the `n_members` branches,
    one gradient, one optimizer update), and `predict`/`evaluate` combine
    them in one compiled call, like `kerasreg.Ensemble`.

    Training is exactly that of the members trained alone: the step minimizes
    the **sum** of the members' losses (each member's compiled loss on the
    same batch, plus the regularization losses), and since the members share
    no variable, the gradient for member `i` is the gradient of its own loss.
    The optimizer keeps its slots (momentum, Adam moments) per variable, so
    it acts as one optimizer per member with the same configuration: each
    member's update equals what that optimizer would do training the member
    alone on the same batches. This holds for every per-variable optimizer
    option (`clipnorm`, `clipvalue`, `weight_decay`, `use_ema`); the
    optimizer's `global_clipnorm` would clip the members jointly and is
    refused (at the first training step). With a `LossScaleOptimizer`
    (mixed precision) a step is skipped for every member when any gradient
    overflows.

    Keras masks (`Embedding(mask_zero=True)`, `Masking`) are honoured: each
    member's loss leaves out the padding it would leave out alone, and so do
    the loss and metrics of the combined prediction. Under
    `tf.distribute.MirroredStrategy` or `keras.distribution.DataParallel`,
    the loss and its regularization are split between the replicas as Keras
    splits them, so such a fit equals the one-device fit, except where Keras'
    own layers differ per replica too (batch statistics; and under
    `MirroredStrategy` every replica draws the same random numbers, so
    dropout masks and the bootstrap weights repeat across the replicas'
    slices of the batch).

    Online bootstrap (`bootstrap="poisson"`): at every step, each member
    weighs each example by its own independent Poisson(1) draw, the online
    approximation of training each member on a bootstrap resample (Oza and
    Russell, 2001). The weights multiply the `sample_weight`/`class_weight`
    of `fit`. With `bootstrap=None` the members see the same data and differ
    by their initialization (and dropout masks), which in practice suffices.

    Logs: during `fit`, `loss` is the mean of the members' losses, and
    `loss_member_0`, `loss_member_1`, ... are the members' own losses (each
    with its own regularization losses); the compiled metrics are computed on
    the combined prediction. `evaluate` (and the `val_` entries of `fit`)
    report the loss and metrics of the combined prediction (plus the mean of
    the members' regularization losses). During training, calling the model
    with `training=True` returns the members' raw outputs stacked on axis 1.

    Args:
        build_fn: A Keras model (Sequential, functional or subclassed) with
            one output that ends in a softmax (or, for one output column, a
            sigmoid), or outputs logits with `from_logits=True`; or a
            callable with no arguments returning a new, uncompiled such model.
            A model is copied like `keras.models.clone_model` does: each
            member has its architecture and its own freshly initialized
            weights, the model given is left untouched (it may be compiled:
            the copies are not), and its weights are not used. A callable is
            called `n_members` times; every call must return the same
            architecture.
        n_members: Positive integer, the number of members. Defaults to `5`.
        bootstrap: `None` (every member sees every example) or `"poisson"`
            (online bootstrap weights, fresh at every step). Defaults to
            `None`.
        combine: String, how member probabilities are combined: `"mean"`,
            `"vote"` or `"geometric"`, as for `kerasreg.Ensemble`. Defaults to
            `"mean"`.
        seed: Optional integer. If set, member `i` is built (or copied) after
            `keras.utils.set_random_seed(seed + i)` (which sets the global
            Python, NumPy and backend seeds), so the members' initial weights
            and dropout seeds are reproducible, and the bootstrap weights are
            drawn from this seed. With `None`, members still get distinct
            random initializations. Defaults to `None`.
        from_logits: Boolean, whether the members output logits; then compile
            with a loss taking `from_logits=True`, and the members are
            combined after a softmax (sigmoid for one column). With `False`
            (default), members that visibly output logits (on a random probe
            input) are refused.
        name: String, the model name. Defaults to `None`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg import DeepEnsemble

    def build():  # a new, uncompiled model at each call
        return keras.Sequential([
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3, activation="softmax"),
        ])

    ens = DeepEnsemble(build, n_members=4, bootstrap="poisson", seed=0)
    ens.compile("adam", "sparse_categorical_crossentropy",
                metrics=["accuracy"])
    x = np.random.rand(64, 8).astype("float32")
    y = np.random.randint(0, 3, size=64)
    history = ens.fit(x, y, epochs=2, verbose=0)
    print(sorted(history.history))  # accuracy, loss, loss_member_0..3
    probs = ens.predict(x, verbose=0)           # (64, 3), members combined
    per_member = ens.member_predictions(x)      # (4, 64, 3)
    first = ens.members[0]       # a standalone copy, uncompiled
    # A model works too: its architecture, new weights for each member.
    same = DeepEnsemble(build(), n_members=4, seed=0)
    ```
    """

    def __init__(
        self,
        build_fn,
        n_members=5,
        bootstrap=None,
        combine="mean",
        seed=None,
        from_logits=False,
        name=None,
        **kwargs,
    ):
        n_members = _checks.int_at_least("n_members", n_members, 1)
        _check_bootstrap(bootstrap)
        check_combine(combine)
        if seed is not None and not _checks.is_integer(seed):
            raise _checks.invalid("seed", seed, "an integer or None")
        from_logits = _checks.boolean("from_logits", from_logits)
        prebuilt = isinstance(build_fn, _Prebuilt)
        members = _build_members(
            build_fn, n_members, None if prebuilt else seed
        )
        if not prebuilt:
            for i, m in enumerate(members):
                check_probability_outputs(m, i, from_logits, "build_fn")
        super().__init__(name=name, **kwargs)
        # The live members, trained in place (`members` hands out copies).
        self._branches = members
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.combine = combine
        self.seed = None if seed is None else int(seed)
        self.from_logits = from_logits
        self.member_loss_trackers = [
            keras.metrics.Mean(name=f"loss_member_{i}")
            for i in range(n_members)
        ]
        if bootstrap is not None:
            self.bootstrap_seed_generator = keras.random.SeedGenerator(
                seed, name="bootstrap_seed_generator"
            )
        if all(m.built for m in self._branches):
            shapes = _io_shapes(self._branches[0])
            if shapes is not None:
                self._output_rank = len(shapes[1][0]) + 1
            self.built = True

    def build(self, input_shape):
        for m in self._branches:
            if not m.built:
                out = m(_symbolic(input_shape))
                self._output_rank = len(out.shape)
        self.built = True

    # Forward pass ---------------------------------------------------------

    def _member_outputs(self, inputs, training=None):
        return [m(inputs, training=training) for m in self._branches]

    # Training -------------------------------------------------------------

    def _member_sample_weights(self, y_pred, sample_weight):
        """One sample-weight tensor (or None) per member."""
        if self.bootstrap is None:
            return [sample_weight] * self.n_members
        batch = ops.shape(y_pred)[0]
        draws = poisson_weights(
            (self.n_members, batch), seed=self.bootstrap_seed_generator
        )
        weights = []
        for i in range(self.n_members):
            w = draws[i]
            if sample_weight is not None:
                sw = ops.convert_to_tensor(sample_weight)
                w = ops.reshape(w, (-1,) + (1,) * (len(sw.shape) - 1))
                w = ops.cast(sw, w.dtype) * w
            weights.append(w)
        return weights

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        compiled_loss = _compat.compiled_loss(self)
        if compiled_loss is None:
            return super().compute_loss(
                x=x,
                y=y,
                y_pred=y_pred,
                sample_weight=sample_weight,
                training=training,
            )
        # Under `tf.distribute` each replica returns its share of the loss:
        # Keras' losses come scaled by 1 / replicas, and the regularization
        # losses are scaled here as Keras does (`_aggregate_additional_loss`).
        extra = self._regularization(self.losses)
        if extra is not None:
            extra = _compat.scale_loss_for_distribution(extra)
        if not self._is_stacked(y_pred):
            # Evaluation: the combined prediction's loss, plus the mean of
            # the members' regularization losses.
            loss = compiled_loss(y, y_pred, sample_weight)
            if extra is not None:
                extra = extra / self.n_members
                loss = extra if loss is None else loss + extra
            return loss
        self._check_optimizer()
        weights = self._member_sample_weights(y_pred, sample_weight)
        batch = ops.shape(y_pred)[0]
        member_losses = []
        for i in range(self.n_members):
            loss = compiled_loss(
                y, self._member_output(y_pred, i), weights[i]
            )
            member_losses.append(loss)
            # Logged unscaled, as Keras' own loss tracker.
            logged = _compat.unscale_loss_for_distribution(loss)
            own = self._regularization(self._branches[i].losses)
            if own is not None:
                logged = logged + own
            self.member_loss_trackers[i].update_state(
                logged, sample_weight=batch
            )
        total = ops.sum(ops.stack(member_losses))
        if extra is not None:
            total = total + extra
        # Value: the mean member loss (what `loss` logs). Gradient: that of
        # the sum, so that each member gets its own loss's gradient, unscaled.
        mean = total / self.n_members
        return total - ops.stop_gradient(total - mean)

    def _check_optimizer(self):
        optimizer = getattr(self, "optimizer", None)
        for opt in (optimizer, getattr(optimizer, "inner_optimizer", None)):
            clip = getattr(opt, "global_clipnorm", None)
            if clip is not None:
                raise ValueError(
                    "Invalid value received for argument `optimizer`. "
                    "Expected an optimizer without `global_clipnorm`: it would "
                    "clip the gradients of all members jointly, coupling "
                    "members that must train independently (use `clipnorm`, "
                    "which clips each variable). Received: "
                    f"optimizer.global_clipnorm={clip}"
                )

    @staticmethod
    def _regularization(losses):
        if not losses:
            return None
        return ops.sum(
            ops.stack(
                [ops.cast(ops.sum(v), keras.backend.floatx()) for v in losses]
            )
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # The compiled metrics see the combined prediction (weighted by the
        # user's sample weights, not the bootstrap weights).
        if self._is_stacked(y_pred):
            return super().compute_metrics(
                x, y, self._combine(y_pred), sample_weight
            )
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        # Evaluation does not run the members separately: no member losses.
        names = {t.name for t in self.member_loss_trackers}
        return {k: v for k, v in logs.items() if k not in names}

    # Members (`member_predictions`: `MemberPredictions`) ---------------------

    @property
    def members(self):
        """The members, as standalone Keras models (new copies at each access).

        Each is a new, uncompiled model with the member's architecture and its
        current state (weights, and the random-seed states of its dropout
        layers), sharing no variable with the ensemble: it does not change
        when the ensemble trains on, and can be compiled, fitted, saved
        (`.keras`), averaged (`kerasreg.ensembles.average_weights`) or
        combined (`kerasreg.Ensemble`) on its own.

        Returns:
            A list of `n_members` Keras models.
        """
        return [_standalone(m) for m in self._branches]

    def __dir__(self):
        # Keras saving walks `dir(model)` and reads every attribute: `members`
        # would make throwaway copies there (saved twice, loaded into
        # nothing). The live members are saved under `_branches`.
        return [name for name in super().__dir__() if name != "members"]

    # Serialization --------------------------------------------------------

    def _seed_states(self):
        """The random-seed states of the model: bootstrap and members' layers.

        Keras saves no `SeedGenerator` state with the weights; these are saved
        here, so that a `.keras` file or a `BackupAndRestore` checkpoint
        resumes the same dropout masks and bootstrap weights.
        """
        skip = {id(v) for v in self.weights}
        skip.update(id(v) for v in self.metrics_variables)
        return [v for v in self.variables if id(v) not in skip]

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for i, v in enumerate(self._seed_states()):
            store[f"{_SEED_KEY}{i}"] = v

    def load_own_variables(self, store):
        keys = list(store.keys())
        own = {k: store[k] for k in keys if not k.startswith(_SEED_KEY)}
        super().load_own_variables(own)
        seeds = self._seed_states()
        if all(f"{_SEED_KEY}{i}" in keys for i in range(len(seeds))):
            for i, v in enumerate(seeds):
                v.assign(store[f"{_SEED_KEY}{i}"])

    def get_config(self):
        base_config = super().get_config()
        config = {
            "members": serialize_models(self._branches),
            "bootstrap": self.bootstrap,
            "combine": self.combine,
            "seed": self.seed,
            "from_logits": self.from_logits,
        }
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        members = deserialize_models(config.pop("members"), custom_objects)
        config.pop("n_members", None)
        return cls(_Prebuilt(members), n_members=len(members), **config)


def _standalone(model):
    """A copy of `model` (architecture and state) sharing no variable."""
    copy = clone_uncompiled(model)
    for target, source in zip(copy.variables, model.variables, strict=True):
        # Through numpy: on jax, assigning the array itself would share its
        # buffer, which the ensemble's next train step donates (deletes).
        target.assign(ops.convert_to_numpy(source))
    return copy
