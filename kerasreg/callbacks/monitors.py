"""Callbacks that babysit training: update/weight ratios and histograms."""

import contextlib
import functools
import os
import warnings

import keras
import numpy as np
from keras import ops

from kerasreg import _backend
from kerasreg import _checks
from kerasreg.callbacks import _in_step
from kerasreg.callbacks._tensorboard import SummaryWriter


def _sync(model):
    # jax backend: during `fit` the state lives outside the model's
    # variables; bring it back (ActivationHistograms, once per capture).
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


class UpdateRatioMonitor(_in_step.InStepCallback):
    """Logs the update/weight ratio `||w_new - w_old|| / ||w_old||`.

    The cs231n notes track, for each weight tensor, the size of one update
    relative to the size of the weights: "a rough heuristic is that this
    ratio should be somewhere around 1e-3. If it is lower than this then the
    learning rate might be too low. If it is higher then the learning rate
    is likely too high."

    Every `every` training steps (the steps `s` where the optimizer's
    `iterations` is a multiple of `every` before the step), this callback
    measures, for each trainable weight tensor, the norm of the change the
    step made and the norm of the weights before it. It logs the median
    ratio over weight tensors as `update_ratio` and each tensor's ratio as
    `update_ratio/<variable path>` (e.g.
    `update_ratio/sequential/dense/kernel`) in the epoch logs (so in
    `History`; the values are those of the epoch's last measurement, or of
    the last one before when an epoch had none), in `self.records` (one
    `{"step", "median", "ratios"}` dict per measurement, `step` being
    `iterations` before the measured step), and in TensorBoard when
    `log_dir` is set. It warns once when the median stays below `low` (or
    above `high`) for `patience` consecutive measurements. Weight tensors
    whose norm is zero (biases at initialization) are left out.

    The measurement runs inside the compiled train step (see
    `kerasreg/callbacks/_in_step.py`, shared with `WeightEMA`): the step
    compares the weights it received with the weights it produced, under
    `keras.ops.cond` on `iterations`, and writes the two norms per tensor to
    a small buffer of Keras variables (tracked by the optimizer during
    `fit`, so the jax trainer threads them through its compiled state).
    Steps it does not measure cost a comparison (on jax not even that: the
    steps where none is due run a second compiled step without the
    measurement, because keeping the old weights until the comparison
    makes XLA copy every weight at every step); no weight is read back
    between steps (and on jax the training state is not synced) — the
    buffer is read once per epoch, at its end, where the records, logs,
    TensorBoard scalars and warnings are produced. The buffer keeps the
    last 128 measurements of an epoch; with more (`every` small, long
    epochs), `self.records` holds the last 128 of each epoch. The schedule
    follows the optimizer's `iterations`, so a resumed run (a second `fit`,
    `BackupAndRestore`) keeps it, also when `every` is larger than an
    epoch. Each measurement covers one optimizer step, also with
    `steps_per_execution > 1`. An unbuilt model (a `Sequential` without
    `keras.Input`) works.

    Args:
        every: Integer >= 1. Measure one step out of `every`. Defaults to
            `50`.
        low: Float > 0. Below this median ratio, the learning rate is
            probably too low. Defaults to `1e-4`.
        high: Float > `low`. Above this median ratio, the learning rate is
            probably too high. Defaults to `1e-2`.
        log_dir: Optional string. Directory for TensorBoard scalars (needs
            the `tensorboard` package, not TensorFlow). Defaults to `None`.
        patience: Integer >= 1. Consecutive measurements outside
            `[low, high]` before warning. Defaults to `3`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg.callbacks import UpdateRatioMonitor

    x = np.random.rand(256, 8).astype("float32")
    y = np.random.rand(256, 1).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    history = model.fit(x, y, epochs=2, verbose=0,
                        callbacks=[UpdateRatioMonitor(every=4)])
    print(history.history["update_ratio"])  # about 1e-3 is healthy
    ```
    """

    # Measurements the in-step buffer holds between two reads (epoch ends).
    _CAPACITY = 128

    def __init__(self, every=50, low=1e-4, high=1e-2, log_dir=None,
                 patience=3):
        super().__init__()
        self.every = _checks.int_at_least("every", every, 1)
        self.patience = _checks.int_at_least("patience", patience, 1)
        self.low = _checks.positive_float("low", low)
        if not _checks.is_real(high) or not high > low:
            raise _checks.invalid("high", high, f"a float value > low={low}")
        self.high = float(high)
        self.log_dir = log_dir
        self.records = []
        self._below = 0
        self._above = 0
        self._warned = set()
        self._writer = None
        self._latest = {}

        self._owner = None  # the model the state below belongs to
        self._measured = []  # its trainable variables, measured in order
        self._norms = None  # (capacity, 2, n): ||w_old||, ||w_new - w_old||
        self._steps = None  # (capacity,): `iterations` before each step
        self._count = None  # measurements written since the last read

    # ------------------------------------------------------------------ state

    def _strategy_scope(self):
        strategy = getattr(self._given_model, "distribute_strategy", None)
        if strategy is None:
            return contextlib.nullcontext()
        return strategy.scope()

    def _create_state(self):
        model = self._given_model
        self._measured = list(model.trainable_variables)
        # At least one column: a model without trainable weights measures
        # a zero norm, which is left out.
        width = max(len(self._measured), 1)
        capacity = self._CAPACITY
        with self._strategy_scope():
            self._norms = _in_step.state_variable(
                (capacity, 2, width), "float32", "update_ratio_norms"
            )
            self._steps = _in_step.state_variable(
                (capacity,), "int32", "update_ratio_steps"
            )
            self._count = _in_step.state_variable(
                (), "int32", "update_ratio_count"
            )
        self._owner = model

    def _state_variables(self):
        return [self._norms, self._steps, self._count]

    def _has_state(self):
        model = self._given_model
        return (
            self._owner is model
            and self._norms is not None
            and [id(v) for v in self._measured]
            == [id(v) for v in model.trainable_variables]
        )

    def _in_step_reset(self):
        """The seam closed a `fit` that raised: drop its measurements."""
        self._in_fit = False
        if self._count is not None:
            self._count.assign(0)

    @property
    def _in_step_key(self):
        return id(self._norms)

    # ------------------------------------------------------- in the step

    def _record(self, norms, steps, count, old, new, iteration):
        """Buffers after measuring one step (a pure function)."""
        old = [ops.cast(w, "float32") for w in old]
        new = [ops.cast(w, "float32") for w in new]
        row = [
            [ops.sqrt(ops.sum(ops.square(o))) for o in old],
            [ops.sqrt(ops.sum(ops.square(n - o))) for n, o in zip(new, old)],
        ]
        if not old:
            row = [[ops.zeros((), "float32")]] * 2
        row = ops.stack([ops.stack(r) for r in row])
        slot = ops.mod(count, self._CAPACITY)
        norms = ops.slice_update(norms, (slot, 0, 0), ops.expand_dims(row, 0))
        steps = ops.slice_update(
            steps, (slot,), ops.reshape(ops.cast(iteration, "int32"), (1,))
        )
        return norms, steps, count + 1

    def _due(self, iteration):
        """Whether the step is measured (`None`: every step is)."""
        if self.every == 1:
            return None
        return ops.equal(ops.mod(iteration, self.every), 0)

    def _in_step_busy(self, iteration, steps):
        """Whether one of `steps` optimizer steps from `iteration` is due."""
        return -iteration % self.every < steps

    def _functional_step(self, train_step):
        """Wraps a jax-style `train_step(state, data)`."""
        optimizer = self._given_model.optimizer
        iterations = optimizer.iterations
        if not isinstance(iterations, keras.Variable):
            # Gradient accumulation: `iterations` is computed from the
            # optimizer's own counter.
            iterations = next(
                v for v in optimizer.variables if v.name == "iteration"
            )
        positions = functools.partial(_in_step.state_positions, self._given_model)
        measured_at = positions(self._measured)
        iteration_at, *buffers_at = positions(
            [iterations, self._norms, self._steps, self._count]
        )

        def step_with_monitor(state, data):
            # The weights before the step are its inputs: nothing to copy.
            old = [_in_step.read_state(state, at) for at in measured_at]
            iteration = _in_step.read_state(state, iteration_at)
            logs, state = train_step(state, data)
            read = functools.partial(_in_step.read_state, state)
            buffers = [read(at) for at in buffers_at]
            new = [read(at) for at in measured_at]
            buffers = _in_step.when(
                self._due(iteration),
                lambda: self._record(*buffers, old, new, iteration),
                lambda: tuple(buffers),
            )
            updates = list(zip(buffers_at, buffers))
            return logs, _in_step.write_state(state, updates)

        return step_with_monitor

    def _stateful_step(self, train_step):
        """Wraps a stateful `train_step(data)` (tensorflow, torch)."""

        def step_with_monitor(data):
            # Values read before the step (the step's updates come after
            # these reads in the traced function). `ops.copy` reads: on
            # tensorflow `convert_to_tensor` returns the variable itself.
            iteration = ops.copy(self._given_model.optimizer.iterations)
            old = [ops.copy(v) for v in self._measured]
            logs = train_step(data)

            def record():
                new = [ops.copy(v) for v in self._measured]
                norms, steps, count = self._record(
                    self._norms.value, self._steps.value, self._count.value,
                    old, new, iteration,
                )
                self._norms.assign(norms)
                self._steps.assign(steps)
                self._count.assign(count)

            _in_step.when(self._due(iteration), record)
            return logs

        return step_with_monitor

    # ------------------------------------------------------ between epochs

    def _read(self):
        """Turns the buffered measurements into records (once per epoch)."""
        if not self._has_state():
            return
        _sync(self._given_model)  # jax: a no-op at an epoch's end (Keras synced)
        count = int(ops.convert_to_numpy(self._count))
        if count == 0:
            return
        norms = ops.convert_to_numpy(self._norms).astype("float64")
        steps = ops.convert_to_numpy(self._steps)
        self._count.assign(0)
        paths = [v.path for v in self._measured]
        capacity = self._CAPACITY
        for j in range(max(count - capacity, 0), count):
            slot = j % capacity
            old, diff = norms[slot]
            ratios = {
                path: float(d / o)
                for path, o, d in zip(paths, old, diff)
                if o > 0
            }
            self._report(int(steps[slot]), ratios)

    def _report(self, step, ratios):
        if not ratios:
            return
        median = float(np.median(list(ratios.values())))
        self._latest = {"update_ratio": median}
        self._latest.update({f"update_ratio/{k}": v for k, v in ratios.items()})
        self.records.append({"step": step, "median": median, "ratios": ratios})
        if self._writer is not None:
            for tag, value in self._latest.items():
                self._writer.scalar(tag, value, step)
            self._writer.flush()
        self._check(median)

    def _check(self, median):
        below = median < self.low
        above = not median <= self.high  # NaN counts as too high
        self._below = self._below + 1 if below else 0
        self._above = self._above + 1 if above else 0
        for count, direction, bound in (
            (self._below, "low", self.low),
            (self._above, "high", self.high),
        ):
            if count >= self.patience and direction not in self._warned:
                self._warned.add(direction)
                warnings.warn(
                    "UpdateRatioMonitor: the median update/weight ratio has "
                    f"stayed {'below' if direction == 'low' else 'above'} "
                    f"{direction}={bound:g} for {count} measurements (last: "
                    f"{median:.3g}): the learning rate is probably too "
                    f"{direction} (rule of thumb: a ratio of about 1e-3).",
                    stacklevel=2,
                )

    # -------------------------------------------------------------- hooks

    def on_train_begin(self, logs=None):
        self._begin_fit()
        if self.log_dir is not None and self._writer is None:
            self._writer = SummaryWriter(self.log_dir)
        _in_step.begin(self._given_model)

    def on_epoch_end(self, epoch, logs=None):
        self._read()
        if logs is not None:
            logs.update(self._latest)

    def on_train_end(self, logs=None):
        self._read()
        self._end_fit()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _Perturb(keras.layers.Layer):
    """Adds a zero variable to its input: d loss / d eps = d loss / d input."""

    def __init__(self, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = batch_size

    def build(self, input_shape):
        self.eps = self.add_weight(
            shape=(self.batch_size,) + tuple(input_shape[1:]),
            initializer="zeros",
            trainable=True,
            name="eps",
        )

    def call(self, x):
        return x + keras.ops.cast(self.eps, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def _activation_name(layer):
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", None)


def _n_examples(x):
    """Rows of an array-like `x` (examples on axis 0); 0 if not an array."""
    try:
        shape = np.shape(x)
    except (TypeError, ValueError):  # e.g. a ragged list
        return 0
    if x is None or isinstance(x, (str, bytes)) or len(shape) < 1:
        return 0
    return int(shape[0])


class ActivationHistograms(keras.callbacks.Callback):
    """Histograms of each layer's activations (and their gradients).

    The cs231n notes diagnose bad initialization by plotting "activation /
    gradient histograms for all layers of the network": tanh units should
    spread over [-1, 1], not all sit at 0 or saturate at -1 and 1. The fish
    book shows the same per-layer histograms for a 5-layer, 100-unit network
    with weights of std 1 (sigmoid outputs piled at 0 and 1: vanishing
    gradients), 0.01 (all at 0.5: no expressive power) and Xavier (spread).

    On a fixed sample, at the start of training and every `every_epochs`
    epochs, this callback records every layer's outputs and, when
    `gradients`, the gradient of the mean loss over the sample with respect
    to them (this needs labels: pass `x_sample=(x, y)`). It writes them as
    TensorBoard histograms (`log_dir`) and/or a PNG grid per epoch
    (`png_dir`, needs matplotlib: `pip install kerasreg[plot]`), and warns,
    naming the layer, when tanh/sigmoid outputs are piled at their bounds
    (more than `saturation_threshold` of them within `bound_margin` of a
    bound) or when more than `dead_threshold` of a ReLU layer's units are
    zero on the whole sample. Flags are kept in `self.flags`, the last
    arrays in `self.activations` and `self.gradients` (dicts keyed by layer
    name). `capture()` does the same outside `fit`.

    Works with Sequential and Functional models; the gradients use the
    tensorflow, jax or torch backend's autodiff.

    Args:
        x_sample: Array (inputs) or tuple `(x, y)` (inputs and labels).
        every_epochs: Integer >= 1. Defaults to `1`.
        log_dir: Optional string, TensorBoard directory. Defaults to `None`.
        png_dir: Optional string, directory for
            `activations_epoch_<n>.png`. Defaults to `None`.
        gradients: Boolean. Whether to record the gradients too (when labels
            are given). Defaults to `True`.
        saturation_threshold: Float between 0 and 1. Defaults to `0.5`.
        dead_threshold: Float between 0 and 1. Defaults to `0.5`.
        bound_margin: Float > 0: how close to a bound counts as saturated
            (sigmoid in (0, 1), tanh in (-1, 1)). Defaults to `0.05`.
        bins: Integer >= 1, histogram bins. Defaults to `30`.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg.callbacks import ActivationHistograms

    x = np.random.randn(200, 100).astype("float32")
    y = np.random.randint(0, 10, size=(200,))
    init = keras.initializers.RandomNormal(stddev=1.0)  # too large
    model = keras.Sequential(
        [keras.Input((100,))]
        + [keras.layers.Dense(100, activation="tanh",
                              kernel_initializer=init) for _ in range(5)]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    hist = ActivationHistograms((x[:100], y[:100]))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[hist])
    print(hist.flags)  # the tanh layers are saturated
    ```
    """

    def __init__(
        self,
        x_sample,
        every_epochs=1,
        log_dir=None,
        png_dir=None,
        gradients=True,
        saturation_threshold=0.5,
        dead_threshold=0.5,
        bound_margin=0.05,
        bins=30,
    ):
        super().__init__()
        if isinstance(x_sample, tuple):
            if len(x_sample) != 2:
                raise ValueError(
                    "Invalid value received for argument `x_sample`. "
                    "Expected an array or a tuple `(x, y)`. "
                    f"Received: a tuple of length {len(x_sample)}"
                )
            self.x_sample, self.y_sample = x_sample
        else:
            self.x_sample, self.y_sample = x_sample, None
        if _n_examples(self.x_sample) < 1:
            raise _checks.invalid(
                "x_sample",
                x_sample,
                "an array of at least one example (examples on the first "
                "axis), or a tuple `(x, y)` of such arrays",
            )
        self.every_epochs = _checks.int_at_least("every_epochs", every_epochs, 1)
        self.bins = _checks.int_at_least("bins", bins, 1)
        self.saturation_threshold = _checks.float_between(
            "saturation_threshold", saturation_threshold, 0, 1, closed=(True, False)
        )
        self.dead_threshold = _checks.float_between(
            "dead_threshold", dead_threshold, 0, 1, closed=(True, False)
        )
        self.bound_margin = _checks.positive_float("bound_margin", bound_margin)
        self.log_dir = log_dir
        self.png_dir = png_dir
        self.gradients_enabled = bool(gradients)
        self.flags = []
        self.activations = {}
        self.gradients = {}
        self._probe = None
        self._probe_model = None
        self._writer = None
        self._warned = set()
        self._grad_note = False

    # -- probe model -------------------------------------------------------
    def _layers(self):
        return [
            layer
            for layer in self.model.layers
            if not isinstance(layer, keras.layers.InputLayer)
        ]

    def _build_probe(self):
        model = self.model
        if model.outputs is None or len(model.outputs) != 1:
            raise ValueError(
                "ActivationHistograms needs a built Sequential or Functional "
                f"model with one output. Received: model={model.name!r}"
            )
        functional = keras.Model(model.inputs, model.outputs)
        targets = {id(layer) for layer in self._layers()}
        batch = len(self.x_sample)
        probes = []

        def call_function(layer, *args, **kwargs):
            out = layer(*args, **kwargs)
            if id(layer) in targets and isinstance(out, keras.KerasTensor):
                perturb = _Perturb(batch, name=f"probe_{layer.name}")
                out = perturb(out)
                probes.append((layer, perturb, out))
            return out

        body = keras.models.clone_model(
            functional, clone_function=lambda layer: layer,
            call_function=call_function,
        )
        self._probe = probes
        inputs = body.inputs[0] if len(body.inputs) == 1 else body.inputs
        self._probe_model = keras.Model(
            inputs, [p[2] for p in probes] + list(body.outputs)
        )

    def _loss_fn(self):
        loss = self.model.loss
        if isinstance(loss, str):
            loss = keras.losses.get(loss)
        if not callable(loss):
            return None
        return lambda y, p: keras.ops.mean(loss(y, p))

    # -- recording ---------------------------------------------------------
    def _outputs_and_gradients(self, x, loss_fn):
        """Probe outputs and the loss gradients w.r.t. each layer's output.

        Each probed layer's output has a zero variable `eps` added to it, so
        the gradient with respect to `eps` is the gradient with respect to
        the layer's output.
        """
        model = self._probe_model
        trainable = list(model.trainable_variables)
        eps = [p[1].eps for p in self._probe]
        positions = [
            next(i for i, t in enumerate(trainable) if t is v) for v in eps
        ]
        non_trainable = [v.value for v in model.non_trainable_variables]
        y = self.y_sample

        def loss_and_outputs(values):
            current = [v.value for v in trainable]
            for i, value in zip(positions, values):
                current[i] = value
            outputs, _ = model.stateless_call(
                current, non_trainable, x, training=False
            )
            return loss_fn(y, outputs[-1]), outputs

        (_, outputs), grads = _backend.value_and_grad(
            loss_and_outputs, [v.value for v in eps], has_aux=True
        )
        return outputs, grads

    def capture(self, step=0):
        """Records, writes and checks the histograms now; returns the flags.

        Args:
            step: Integer, the step (epoch) the files are labelled with.

        Returns:
            List of `(layer_name, kind, fraction)` flags raised this time.
        """
        if self.model is None:
            raise ValueError("Call `set_model(model)` before `capture()`.")
        _sync(self.model)
        if self._probe_model is None:
            self._build_probe()
        x = self.x_sample
        loss_fn = self._loss_fn()
        grads = None
        if (
            self.gradients_enabled
            and self.y_sample is not None
            and loss_fn is not None
        ):
            outputs, grads = self._outputs_and_gradients(x, loss_fn)
        else:
            if self.gradients_enabled and not self._grad_note:
                self._grad_note = True
                warnings.warn(
                    "ActivationHistograms: gradients need labels and a "
                    "compiled loss: pass x_sample=(x, y) and compile the "
                    "model; recording activations only.",
                    stacklevel=2,
                )
            outputs = self._probe_model(x, training=False)
        self.activations = {}
        self.gradients = {}
        for i, (layer, _, _) in enumerate(self._probe):
            self.activations[layer.name] = keras.ops.convert_to_numpy(
                outputs[i]
            )
            if grads is not None:
                self.gradients[layer.name] = keras.ops.convert_to_numpy(
                    grads[i]
                )
        flags = self._check_saturation(step)
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = SummaryWriter(self.log_dir)
            for name, values in self.activations.items():
                self._writer.histogram(
                    f"activations/{name}", values, step, self.bins
                )
            for name, values in self.gradients.items():
                self._writer.histogram(
                    f"gradients/{name}", values, step, self.bins
                )
            self._writer.flush()
        if self.png_dir is not None:
            self._write_png(step)
        return flags

    def _check_saturation(self, step):
        flags = []
        for layer, _, _ in self._probe:
            a = self.activations[layer.name].astype("float64")
            kind = _activation_name(layer)
            fraction = None
            if kind == "tanh":
                fraction = float(np.mean(np.abs(a) > 1 - self.bound_margin))
                bad = fraction > self.saturation_threshold
                what = "saturated (outputs piled at -1 and 1)"
            elif kind == "sigmoid":
                m = self.bound_margin
                fraction = float(np.mean((a < m) | (a > 1 - m)))
                bad = fraction > self.saturation_threshold
                what = "saturated (outputs piled at 0 and 1)"
            elif kind == "relu":
                units = a.reshape(-1, a.shape[-1])
                fraction = float(np.mean(np.all(units <= 0, axis=0)))
                bad = fraction > self.dead_threshold
                what = "dead (units zero on the whole sample)"
            else:
                continue
            if bad:
                flag = (layer.name, "dead" if kind == "relu" else "saturated",
                        fraction)
                flags.append(flag)
                self.flags.append((step,) + flag)
                if (layer.name, flag[1]) not in self._warned:
                    self._warned.add((layer.name, flag[1]))
                    warnings.warn(
                        f"ActivationHistograms: layer '{layer.name}' ({kind}) "
                        f"is {what}: {fraction:.0%} at step {step}. Check the "
                        "weight initialization (Xavier for tanh/sigmoid, He "
                        "for ReLU) and the learning rate.",
                        stacklevel=2,
                    )
        return flags

    def _write_png(self, step):
        try:
            from matplotlib.figure import Figure
        except ImportError as e:  # pragma: no cover - depends on the env
            raise ImportError(
                "ActivationHistograms(png_dir=...) needs matplotlib: "
                "`pip install kerasreg[plot]`."
            ) from e
        names = list(self.activations)
        rows = 2 if self.gradients else 1
        fig = Figure(figsize=(2.6 * len(names), 2.4 * rows))
        axes = fig.subplots(rows, len(names), squeeze=False)
        for j, name in enumerate(names):
            ax = axes[0][j]
            ax.hist(self.activations[name].ravel(), bins=self.bins)
            ax.set_title(name, fontsize=8)
            ax.tick_params(labelsize=6)
            if rows == 2:
                ax = axes[1][j]
                ax.hist(self.gradients[name].ravel(), bins=self.bins,
                        color="tab:orange")
                ax.tick_params(labelsize=6)
        axes[0][0].set_ylabel("activations", fontsize=8)
        if rows == 2:
            axes[1][0].set_ylabel("gradients", fontsize=8)
        fig.suptitle(f"step {step}", fontsize=9)
        fig.tight_layout()
        os.makedirs(self.png_dir, exist_ok=True)
        path = os.path.join(self.png_dir, f"activations_epoch_{step:03d}.png")
        fig.savefig(path, dpi=80)
        return path

    # -- callback hooks ----------------------------------------------------
    def on_train_begin(self, logs=None):
        self.capture(step=0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            self.capture(step=epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
