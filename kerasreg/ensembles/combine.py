"""How ensembles combine their members, written once for all of them.

`Ensemble`, `MultiHeadEnsemble` and `SnapshotEnsemble` (and `report`) share:

* the combine rules, `"mean"`, `"vote"` and `"geometric"`
  (`combine_probabilities`, `combine_outputs`, `stack_probabilities`);
* the forward pass of the models that train their members in one call,
  `DeepEnsemble` and `MultiHeadEnsemble` (`FusedOutputs`: the members'
  outputs stacked while training, combined otherwise);
* the "logits probe": members that end in a softmax (or a sigmoid) are
  expected unless `from_logits=True`, and a model that visibly outputs
  logits on a random input is refused (`check_probabilities`,
  `raise_if_logits`), with a tolerance that follows the precision of the
  output's dtype (under `mixed_bfloat16` a softmax's rows sum to 1 only
  within a few 1e-3).
"""

import keras
import numpy as np
from keras import ops

from kerasreg import _masks

COMBINES = ("mean", "vote", "geometric")

# Vote output: the vote shares, moved by this much towards the tie-broken
# winner so that `argmax` of the output is the winner exactly.
VOTE_NUDGE = 1e-5
# Probabilities are clipped at this value before the log of `"geometric"`.
LOG_EPS = 1e-7
# Ties in vote shares are shares within this distance of the top share.
_TIE_TOL = 1e-6

# Unit roundoff (half the spacing of floats at 1) of the float dtypes.
_UNIT_ROUNDOFF = {
    "bfloat16": 2.0**-8,
    "float16": 2.0**-11,
    "float32": 2.0**-24,
    "float64": 2.0**-53,
}
# Probability rows may miss a sum of 1 by this many unit roundoffs of their
# dtype (measured: a 1000-class softmax under mixed precision misses by up
# to ~2.6 roundoffs), and by at least `_MIN_PROBABILITY_TOL`.
_ROUNDOFFS = 8
_MIN_PROBABILITY_TOL = 1e-3
# Combining runs in at least this precision (half-precision sums would
# lose the vote nudge, and weighted means lose digits).
_HALF = ("float16", "bfloat16")


def check_combine(combine):
    """Returns `combine` if it is one of `COMBINES`, else raises."""
    if combine not in COMBINES:
        raise ValueError(
            "Invalid value received for argument `combine`. Expected one of "
            f"{COMBINES}. Received: combine={combine!r}"
        )
    return combine


def to_probabilities(outputs, from_logits):
    """Member outputs (..., classes) -> probabilities with >= 2 columns."""
    if outputs.shape[-1] == 1:
        p = ops.sigmoid(outputs) if from_logits else outputs
        return ops.concatenate([1.0 - p, p], axis=-1)
    return ops.softmax(outputs, axis=-1) if from_logits else outputs


def combine_probabilities(stacked, combine, weights=None):
    """Combines member probabilities stacked on axis 0: (M, ..., C) -> (..., C).

    `"mean"`: weighted mean. `"geometric"`: softmax of the weighted mean of
    log-probabilities (clipped at `LOG_EPS`). `"vote"`: weighted share of the
    members whose argmax is each class; among classes tied for the top share
    the one with the highest mean probability wins, and the output is
    `(1 - VOTE_NUDGE) * shares + VOTE_NUDGE * onehot(winner)`, so that its
    argmax is that winner. Half-precision inputs (`float16`, `bfloat16`, as
    under a mixed precision policy) are combined, and returned, in
    `float32`.
    """
    stacked = ops.convert_to_tensor(stacked)
    if keras.backend.standardize_dtype(stacked.dtype) in _HALF:
        stacked = ops.cast(stacked, "float32")
    m = stacked.shape[0]
    if weights is None:
        w = np.full((m,), 1.0 / m)
    else:
        w = np.asarray(weights, dtype=np.float64)
    w = ops.convert_to_tensor(
        w.reshape((m,) + (1,) * (len(stacked.shape) - 1)), dtype=stacked.dtype
    )
    mean = ops.sum(w * stacked, axis=0)
    if combine == "mean":
        return mean
    if combine == "geometric":
        log_p = ops.log(ops.clip(stacked, LOG_EPS, 1.0))
        return ops.softmax(ops.sum(w * log_p, axis=0), axis=-1)
    classes = stacked.shape[-1]
    votes = ops.one_hot(
        ops.argmax(stacked, axis=-1), classes, dtype=stacked.dtype
    )
    shares = ops.sum(w * votes, axis=0)
    top = ops.max(shares, axis=-1, keepdims=True)
    score = ops.where(shares >= top - _TIE_TOL, mean, -1.0)
    winner = ops.one_hot(
        ops.argmax(score, axis=-1), classes, dtype=stacked.dtype
    )
    return (1.0 - VOTE_NUDGE) * shares + VOTE_NUDGE * winner


def stack_probabilities(outputs, from_logits):
    """The members' raw outputs (a list) as probabilities stacked on axis 0."""
    return ops.stack(
        [to_probabilities(o, from_logits) for o in outputs], axis=0
    )


def combine_outputs(outputs, combine, weights=None, from_logits=False):
    """Combines the members' raw outputs (a list) into one prediction.

    Each output becomes probabilities (`to_probabilities`), they are combined
    by `combine_probabilities`, and members with one sigmoid column get one
    column back (the probability of class 1).
    """
    stacked = stack_probabilities(outputs, from_logits)
    combined = combine_probabilities(stacked, combine, weights)
    if outputs[0].shape[-1] == 1:
        return combined[..., 1:]
    return combined


class FusedOutputs:
    """Mixin: the forward pass of a model training its members in one call.

    For `DeepEnsemble` and `MultiHeadEnsemble`. The model defines
    `_member_outputs(inputs, training)` (the members' raw outputs, a list)
    and the attributes `combine` and `from_logits`. While training, `call`
    returns the raw outputs stacked on axis 1 (batch first), so that
    `compute_loss` scores each member against the labels
    (`_is_stacked(y_pred)` tells the two forms apart, `_member_output`
    takes member `i` out); otherwise it returns them combined
    (`combine_outputs`, equal weights).

    Keras masks (`Embedding(mask_zero=True)`, `Masking`) travel with the
    outputs (`kerasreg._masks`): the stacked outputs carry the members'
    masks stacked on axis 1, `_member_output` returns member `i`'s output
    with its own mask, and the combined output carries the members' mask,
    so that losses and metrics leave the padding out, as they do for a
    member trained alone.
    """

    # Rank of one member's output (batch axis included), once known.
    _output_rank = None

    def _member_probabilities(self, inputs, training=None):
        outputs = self._member_outputs(inputs, training=training)
        return stack_probabilities(outputs, self.from_logits)

    def _member_output(self, stacked, i):
        """Member `i`'s output (with its mask) from the stacked outputs."""
        return _masks.take(stacked, i, axis=1)

    def _combine(self, outputs):
        """Members' raw outputs (list, or stacked on axis 1) -> combined."""
        if not isinstance(outputs, (list, tuple)):
            outputs = [
                self._member_output(outputs, i)
                for i in range(outputs.shape[1])
            ]
        combined = combine_outputs(
            outputs, self.combine, from_logits=self.from_logits
        )
        return _masks.carry_mask(combined, *outputs)

    def call(self, inputs, training=None):
        outputs = self._member_outputs(inputs, training=training)
        self._output_rank = len(outputs[0].shape)
        if training:
            return _masks.stack(outputs, axis=1)
        return self._combine(outputs)

    def _is_stacked(self, y_pred):
        return (
            self._output_rank is not None
            and len(y_pred.shape) == self._output_rank + 1
        )


# ------------------------------------------------------------ logits probe


def probe_inputs(model, rows=4):
    """Random inputs for `model`, or None when its input shapes are unknown.

    In the structure the model takes: a functional model's `input` (e.g. a
    dict keyed by input names for a model built from a dict: Keras warns
    about any other structure), else one array, or a list for several
    inputs.
    """
    try:
        specs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not specs:
        return None
    if any(d is None for spec in specs for d in spec.shape[1:]):
        return None
    if isinstance(model, keras.Function):
        structure = model.input
    else:
        structure = specs[0] if len(specs) == 1 else specs
    rng = np.random.default_rng(0)

    def draw(spec):
        shape = (rows,) + tuple(spec.shape[1:])
        dtype = keras.backend.standardize_dtype(spec.dtype)
        if "int" in dtype or dtype == "bool":
            return np.zeros(shape, dtype=dtype)
        return rng.normal(size=shape).astype(dtype)

    return keras.tree.map_structure(draw, structure)


def probe(model, fn=None):
    """`fn(x)` on random inputs `x` for `model`, or None if it cannot run.

    Args:
        model: The model whose inputs are drawn (`probe_inputs`).
        fn: Function of the inputs. Defaults to `None`
            (`model(x, training=False)`).

    Returns:
        What `fn` returns (backend tensors, kept in their dtype), or `None`
        when the input shapes are unknown or the call fails (the probe is
        best effort: a real error shows on use).
    """
    x = probe_inputs(model)
    if x is None:
        return None
    if fn is None:
        fn = lambda inputs: model(inputs, training=False)  # noqa: E731
    try:
        return fn(x)
    except Exception:
        return None


def probability_tolerance(dtype):
    """How far from 1 the rows of probabilities of `dtype` may sum.

    `_ROUNDOFFS` unit roundoffs of the dtype (`2**-8` for `bfloat16`,
    `2**-11` for `float16`), and at least `1e-3`.
    """
    try:
        dtype = keras.backend.standardize_dtype(dtype)
    except (TypeError, ValueError):
        dtype = "float32"
    roundoff = _UNIT_ROUNDOFF.get(dtype, _UNIT_ROUNDOFF["float32"])
    return max(_MIN_PROBABILITY_TOL, _ROUNDOFFS * roundoff)


def raise_if_logits(out, who, argument):
    """Raises a ValueError if `out` is not class probabilities.

    Args:
        out: The model's output, a backend tensor or numpy array; the
            tolerance follows its dtype (`probability_tolerance`).
        who: String naming the model in the message, e.g.
            `"member 0 ('dense_model')"`.
        argument: The argument the message names, e.g. `"members"`.
    """
    tol = probability_tolerance(getattr(out, "dtype", "float32"))
    out = np.asarray(ops.convert_to_numpy(out)).astype(np.float64)
    if out.ndim == 0 or out.size == 0:
        return
    negative = np.any(out < -1e-6)
    if out.shape[-1] == 1:
        bad = negative or np.any(out > 1 + 1e-6)
        what = "values outside [0, 1]"
    else:
        sums = out.sum(axis=-1).reshape(-1)
        worst = sums[np.argmax(np.abs(sums - 1.0))]
        bad = negative or np.abs(worst - 1.0) > tol
        what = "negative values" if negative else f"rows summing to {worst:.4g}"
    if bad:
        raise ValueError(
            f"Invalid value received for argument `{argument}`. Expected "
            "models that output class probabilities (softmax or sigmoid), "
            f"but {who} outputs {what}: it looks like logits. End it with a "
            "softmax, or pass `from_logits=True`."
        )


def check_probabilities(model, who, argument):
    """Refuses a model that visibly outputs logits on a random input.

    Does nothing when the model's input shapes are unknown (e.g. an unbuilt
    `Sequential`) or the probe call fails.

    Args:
        model: A Keras model.
        who: String naming the model in the message.
        argument: The argument the message names.
    """
    out = probe(model)
    if out is not None:
        raise_if_logits(out, who, argument)
