"""The demo's two MLPs, their optimizer and the settings tied to the budget."""

from kerasreg.demo.context import steps_per_epoch

LEARNING_RATE = 0.05
MOMENTUM = 0.9
HIDDEN_UNITS = (256, 128)
DROPOUT_RATE = 0.2
# Stage 2's step schedule: the rate is multiplied by this every quarter of
# the epochs.
STEP_DROP_FACTOR = 0.3


def compile_sgd(model, learning_rate=LEARNING_RATE):
    """Compiles with SGD + momentum, sparse cross-entropy and accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=MOMENTUM),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def baseline_model(ctx):
    """The baseline MLP: Keras layers, Glorot init, ReLU, softmax out."""
    import keras

    keras.utils.set_random_seed(ctx.seed)
    inputs = keras.Input(ctx.x_train.shape[1:])
    h = keras.layers.Flatten()(inputs)
    for units in HIDDEN_UNITS:
        h = keras.layers.Dense(units, activation="relu")(h)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(h)
    return keras.Model(inputs, outputs, name="baseline_mlp")


def regularized_model(ctx, dropout=DROPOUT_RATE, seed_offset=0, l2=0.0):
    """The same MLP with kerasreg He init, BatchNormalization and Dropout.

    Each hidden block is Dense (He normal init, no bias: BatchNormalization's
    beta replaces it) -> BatchNormalization -> ReLU -> Dropout. With `l2 > 0`
    every kernel gets an L2 penalty `l2 * sum(w ** 2)`.
    """
    import keras

    import kerasreg

    seed = ctx.seed + seed_offset
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(ctx.x_train.shape[1:])
    h = keras.layers.Flatten()(inputs)
    for i, units in enumerate(HIDDEN_UNITS):
        h = keras.layers.Dense(
            units,
            use_bias=False,
            kernel_initializer=kerasreg.HeNormal(seed=seed + i),
            kernel_regularizer=reg,
        )(h)
        h = kerasreg.BatchNormalization()(h)
        h = keras.layers.Activation("relu")(h)
        h = kerasreg.Dropout(dropout, seed=seed + i)(h)
    outputs = keras.layers.Dense(
        ctx.num_classes,
        activation="softmax",
        kernel_initializer=kerasreg.XavierNormal(seed=seed + len(HIDDEN_UNITS)),
        kernel_regularizer=reg,
    )(h)
    return keras.Model(inputs, outputs, name="regularized_mlp")


def step_schedule(ctx):
    """The schedule of stages 2, 3 and 5: the rate times `STEP_DROP_FACTOR`, three times."""
    from kerasreg.schedules import StepDecay

    return StepDecay(
        LEARNING_RATE,
        drop_factor=STEP_DROP_FACTOR,
        drop_every=max(1, -(-ctx.epochs // 4)),
        name="step decay (stages 2, 3, 5)",
    )


def ema_decay(ctx):
    """EMA decay whose horizon `1 / (1 - decay)` is ~10% of the steps."""
    steps = ctx.epochs * steps_per_epoch(ctx)
    return float(min(0.999, max(0.9, 1.0 - 10.0 / steps)))
