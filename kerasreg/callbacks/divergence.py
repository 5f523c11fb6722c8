"""`StopOnDivergence`: ends a run whose loss is NaN/Inf or blows up."""

import math

import keras

from kerasreg import _checks
from kerasreg._registry import register


@register
class StopOnDivergence(keras.callbacks.Callback):
    """Stops training when the loss is NaN/Inf or grows far above its start.

    In a coarse search many settings "blow up to infinite loss at once"
    (cs231n: "if the cost is ever > 3 * original cost, break out early"), and
    training them for the full budget wastes the search. This callback checks
    the training loss after every batch and sets `model.stop_training` when

    - the loss is NaN or infinite (checked from the first batch on), or
    - the loss exceeds `max_factor` times the reference loss: the first loss
      recorded after the warm-up, i.e. the loss logged at the end of batch
      number `max(warmup_steps, 1)` of the run (batches counted from 1 over
      all epochs of the `fit` call). Only later batches are tested against
      it.

    The loss read is `logs["loss"]`, which in Keras 3 is the running mean of
    the per-batch losses since the start of the current epoch (the loss
    tracker is reset at each epoch), not the last batch's loss. The
    reference is therefore the mean of the first `warmup_steps` batch losses
    when they lie in one epoch, far less noisy with small batches than the
    first batch's loss alone (one lucky first batch made a sound run look
    diverged). With `warmup_steps=0` the reference is the first batch's
    loss.

    The reason is kept in `stopped_reason` (`None` while training is sound),
    the batch count in `stopped_step` and the reference in `reference_loss`.
    Inside `kerasreg.CoarseToFine` the trial then ends as failed with that
    reason, and the search goes on.

    The check touches no model variables (as `keras.callbacks.TerminateOnNaN`
    it only reads the logs), so on the jax backend it needs no state sync.
    The state (reference loss, step count) is per `fit` call and is reset in
    `on_train_begin`.

    Args:
        max_factor: Float greater than 1. The run is stopped when the loss
            exceeds `max_factor` times the reference loss. Defaults to `4.0`.
        warmup_steps: Integer >= 0. The reference is the loss logged at
            batch `max(warmup_steps, 1)`; the `max_factor` test starts at the
            next batch (NaN/Inf are always caught). Defaults to `10`.

    Example:

    ```python
    import keras
    import numpy as np
    from kerasreg.callbacks import StopOnDivergence

    x = np.random.rand(256, 4).astype("float32")
    y = (x @ np.ones((4, 1))).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(10.0), loss="mse")
    stop = StopOnDivergence(max_factor=4.0, warmup_steps=2)
    model.fit(x, y, batch_size=16, epochs=5, callbacks=[stop], verbose=0)
    print(stop.stopped_reason)
    ```
    """

    def __init__(self, max_factor=4.0, warmup_steps=10):
        super().__init__()
        if not _checks.is_real(max_factor) or not 1 < max_factor < math.inf:
            raise _checks.invalid("max_factor", max_factor, "a float value > 1")
        self.max_factor = float(max_factor)
        self.warmup_steps = _checks.int_at_least("warmup_steps", warmup_steps, 0)
        self._reset()

    def _reset(self):
        self.reference_loss = None
        self.steps = 0
        self.stopped_reason = None
        self.stopped_step = None

    def on_train_begin(self, logs=None):
        self._reset()

    def on_train_batch_end(self, batch, logs=None):
        if self.stopped_reason is not None:
            return
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        self.steps += 1
        if not math.isfinite(loss):
            self._stop(f"loss is {loss} at step {self.steps}")
            return
        if self.reference_loss is None:
            if self.steps >= max(self.warmup_steps, 1):
                self.reference_loss = loss
            return
        if loss > self.max_factor * abs(self.reference_loss):
            self._stop(
                f"loss {loss:.4g} > {self.max_factor:g} x reference loss "
                f"{self.reference_loss:.4g} (step "
                f"{max(self.warmup_steps, 1)}) at step {self.steps}"
            )

    def _stop(self, reason):
        self.stopped_reason = reason
        self.stopped_step = self.steps
        self.model.stop_training = True

    @property
    def diverged(self):
        """Whether the last run was stopped for divergence."""
        return self.stopped_reason is not None

    def get_config(self):
        return {"max_factor": self.max_factor, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
