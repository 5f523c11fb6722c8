"""The arguments shared by `ExponentialDecay` and `InverseTimeDecay`.

Both take either the notes' decay constant `k` or Keras' `decay_steps`,
`decay_rate` and `staircase`, with Keras' positional order
`(initial_learning_rate, decay_steps, decay_rate, staircase, name)`. The
earlier kerasreg form `(initial_learning_rate, k[, name])`, one or two
positional arguments after the rate, keeps its meaning: a single positional
argument after `initial_learning_rate` is `k` unless `decay_rate` is given
(Keras always needs both `decay_steps` and `decay_rate`, so the two readings
never overlap).
"""

from keras.optimizers.schedules import LearningRateSchedule

from kerasreg import _checks


def _decay_steps(value):
    # Keras' own wording for this argument.
    if not _checks.is_real(value) or not 0 < value < float("inf"):
        raise ValueError(
            f"Argument `decay_steps` must be > 0. Received: decay_steps={value!r}"
        )
    return int(value) if _checks.is_integer(value) else float(value)


class DecaySchedule(LearningRateSchedule):
    """Base of the two-form decay schedules; subclasses set the formulas."""

    # Set by each subclass: pure functions of `t` from `_math`.
    k_formula = None
    keras_formula = None

    def __init__(
        self,
        initial_learning_rate,
        *args,
        k=None,
        decay_steps=None,
        decay_rate=None,
        staircase=False,
        name=None,
    ):
        super().__init__()
        cls = type(self).__name__
        if len(args) > 4:
            raise TypeError(
                f"{cls}() takes at most 5 positional arguments "
                "(initial_learning_rate, decay_steps, decay_rate, staircase, "
                f"name). Received: {1 + len(args)}"
            )
        legacy = (len(args) == 1 and decay_rate is None) or (
            len(args) == 2 and isinstance(args[1], str)
        )
        if legacy:  # (initial_learning_rate, k[, name])
            names = ("k", "name")
        else:  # Keras' order
            names = ("decay_steps", "decay_rate", "staircase", "name")
        given = {
            "k": k,
            "decay_steps": decay_steps,
            "decay_rate": decay_rate,
            "staircase": staircase,
            "name": name,
        }
        defaults = {"staircase": False}
        for arg_name, value in zip(names, args):
            if given[arg_name] is not defaults.get(arg_name):
                raise TypeError(
                    f"{cls}() got multiple values for argument `{arg_name}`"
                )
            given[arg_name] = value
        k = given["k"]
        decay_steps, decay_rate = given["decay_steps"], given["decay_rate"]
        staircase = given["staircase"]

        self.initial_learning_rate = _checks.positive_float(
            "initial_learning_rate", initial_learning_rate
        )
        keras_form = decay_steps is not None or decay_rate is not None
        if k is not None and (keras_form or staircase):
            conflicting = ", ".join(
                f"{n}={given[n]!r}"
                for n in ("decay_steps", "decay_rate", "staircase")
                if given[n] is not None and given[n] is not False
            )
            raise ValueError(
                f"Invalid combination of arguments for {cls}: `k` (the "
                "notes' form) cannot be combined with `decay_steps`, "
                "`decay_rate` or `staircase` (Keras' form). Pass one form. "
                f"Received: k={k!r}, {conflicting}"
            )
        if k is None and not keras_form:
            raise TypeError(
                f"{cls}() needs its decay: either `k` (the notes' form) or "
                "`decay_steps` and `decay_rate` (Keras' form)."
            )
        if keras_form and (decay_steps is None or decay_rate is None):
            missing = "decay_rate" if decay_rate is None else "decay_steps"
            raise TypeError(
                f"{cls}() missing argument `{missing}`: Keras' form needs "
                "both `decay_steps` and `decay_rate`. Received: "
                f"decay_steps={decay_steps!r}, decay_rate={decay_rate!r}"
            )
        if keras_form:
            self.k = None
            self.decay_steps = _decay_steps(decay_steps)
            self.decay_rate = _checks.non_negative_float("decay_rate", decay_rate)
            self.staircase = _checks.boolean("staircase", staircase)
        else:
            self.k = _checks.non_negative_float("k", k)
            self.decay_steps = None
            self.decay_rate = None
            self.staircase = False
        self.name = given["name"]

    def __call__(self, step):
        if self.k is not None:
            return self.k_formula(step, self.initial_learning_rate, self.k)
        return self.keras_formula(
            step,
            self.initial_learning_rate,
            self.decay_steps,
            self.decay_rate,
            self.staircase,
        )

    def get_config(self):
        if self.k is not None:
            return {
                "initial_learning_rate": self.initial_learning_rate,
                "k": self.k,
                "name": self.name,
            }
        # Keras' config keys: a Keras schedule's config loads into ours.
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }
