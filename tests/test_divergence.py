import keras
import numpy as np
import pytest

import kerasreg
from kerasreg.callbacks import StopOnDivergence


class _FakeModel:
    stop_training = False


def _feed(callback, losses):
    """Feeds a scripted loss sequence; returns the 1-based stop step or None."""
    callback.set_model(_FakeModel())
    callback.on_train_begin()
    for i, loss in enumerate(losses):
        callback.on_train_batch_end(i, {"loss": loss})
        if callback.model.stop_training:
            return i + 1
    return None


def test_stops_when_loss_exceeds_factor_after_warmup():
    cb = StopOnDivergence(max_factor=4.0, warmup_steps=3)
    # Reference: the loss at step 3, 1.5 -> threshold 6.0; the 9.0 at step 2
    # is inside the warm-up and ignored.
    assert _feed(cb, [2.0, 9.0, 1.5, 5.9, 6.1, 1.0]) == 5
    assert cb.reference_loss == 1.5
    assert cb.diverged and cb.stopped_step == 5
    assert "6.1" in cb.stopped_reason and "1.5" in cb.stopped_reason


def test_reference_is_the_loss_at_the_end_of_the_warmup_not_the_first():
    # A lucky first batch (0.5) would set a threshold of 2.0 that sound
    # training (2.1 ... 2.3) exceeds: the reference is the loss at step 3.
    cb = StopOnDivergence(max_factor=4.0, warmup_steps=3)
    assert _feed(cb, [0.5, 2.0, 2.1, 2.2, 2.3, 8.3]) is None
    assert cb.reference_loss == 2.1
    assert _feed(cb, [0.5, 2.0, 2.1, 2.2, 8.5]) == 5
    # warmup_steps=0 and 1 both take the first batch's loss.
    for warmup in (0, 1):
        cb = StopOnDivergence(max_factor=4.0, warmup_steps=warmup)
        assert _feed(cb, [0.5, 2.01]) == 2
        assert cb.reference_loss == 0.5


def test_nan_and_inf_stop_even_during_warmup():
    assert _feed(StopOnDivergence(warmup_steps=100), [1.0, float("nan")]) == 2
    assert _feed(StopOnDivergence(warmup_steps=100), [float("inf")]) == 1
    assert _feed(StopOnDivergence(warmup_steps=0), [float("nan")]) == 1


def test_sound_training_is_not_stopped():
    cb = StopOnDivergence(max_factor=4.0, warmup_steps=0)
    assert _feed(cb, [2.0, 7.99, 3.0, 1.0, 0.5]) is None
    assert not cb.diverged and cb.stopped_reason is None


def test_state_resets_per_fit():
    cb = StopOnDivergence(max_factor=2.0, warmup_steps=0)
    assert _feed(cb, [1.0, 3.0]) == 2
    assert _feed(cb, [10.0, 15.0]) is None  # new reference 10.0
    assert cb.reference_loss == 10.0


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 1.5])).astype("float32")[:, None]
    return x, y


class _CountBatches(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


class _Logged(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def test_logged_loss_is_the_running_epoch_mean_and_the_reference_uses_it():
    # A frozen model (learning rate 0): every batch loss is known in numpy.
    x, y = _data(64)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(1, kernel_initializer="ones")]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    stop, logged = StopOnDivergence(max_factor=4.0, warmup_steps=5), _Logged()
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, callbacks=[stop, logged], verbose=0)
    batch = ((x @ np.ones((4, 1)) - y) ** 2).reshape(8, 8).mean(axis=1)
    running = np.cumsum(batch) / np.arange(1, 9)  # reset at each epoch
    np.testing.assert_allclose(logged.losses, np.concatenate([running, running]), rtol=1e-5)
    # Reference: the running mean after 5 batches, not batch 1's loss.
    assert stop.reference_loss == pytest.approx(batch[:5].mean(), rel=1e-5)
    assert not stop.diverged


@pytest.mark.parametrize("lr, diverges", [(50.0, True), (0.01, False)])
def test_in_model_fit(lr, diverges):
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    stop, count = StopOnDivergence(max_factor=4.0, warmup_steps=2), _CountBatches()
    model.fit(x, y, batch_size=8, epochs=5, callbacks=[stop, count], verbose=0)
    assert stop.diverged == diverges
    if diverges:  # stopped in the first epoch, well before 5 x 8 batches
        assert count.batches == stop.stopped_step < 8
    else:
        assert count.batches == 40


def test_config_round_trip():
    cb = StopOnDivergence(max_factor=3.0, warmup_steps=5)
    config = cb.get_config()
    assert config == {"max_factor": 3.0, "warmup_steps": 5}
    clone = StopOnDivergence.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert isinstance(restored, StopOnDivergence)
    assert restored.get_config() == config
    assert kerasreg.StopOnDivergence is StopOnDivergence


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"max_factor": 1.0}, "max_factor"),
        ({"max_factor": -2.0}, "max_factor"),
        ({"max_factor": float("inf")}, "max_factor"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"warmup_steps": 1.5}, "warmup_steps"),
    ],
)
def test_bad_input(kwargs, arg):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{arg}`"):
        StopOnDivergence(**kwargs)
