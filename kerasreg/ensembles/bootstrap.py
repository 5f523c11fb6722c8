"""`fit_bootstrap`: train an ensemble on bootstrap resamples (or seeds)."""

import keras
import numpy as np

from kerasreg import _checks
from kerasreg.ensembles.combine import check_combine
from kerasreg.ensembles.ensemble import Ensemble


def _n_rows(x):
    leaves = keras.tree.flatten(x)
    if not leaves:
        raise ValueError(
            "Invalid value received for argument `x`. Expected arrays. "
            f"Received: x={x!r}"
        )
    return len(leaves[0])


def _take(data, idx):
    return keras.tree.map_structure(lambda a: np.asarray(a)[idx], data)


def fit_bootstrap(
    build_fn,
    x,
    y,
    n_members=5,
    bootstrap=True,
    seed=None,
    combine="mean",
    verbose="auto",
    **fit_kwargs,
):
    """Trains `n_members` fresh models and returns them as an `Ensemble`.

    The bootstrap ensemble of CS 182 (lecture 7): each member is trained on a
    resample of the training set of the same size drawn with replacement, so
    that the members see nearly independent data sets; about 36.8% of the
    rows (`(1 - 1/N) ** N`) are left out of each resample, and these
    out-of-bag rows give a free validation set per member. "In practice",
    different random initializations already make the members differ enough:
    with `bootstrap=False` every member trains on the full data and only the
    seed changes.

    Before building member `i`, the global seed is set to `seed + i`
    (`keras.utils.set_random_seed`), so that initialization and shuffling
    differ between members and the whole run is reproducible. Member `i`'s
    resample is drawn with its own generator, spawned from `seed`.

    One line of progress is printed per member unless `verbose=0`. The
    returned ensemble carries
    `bootstrap_indices` (list of `n_members` integer arrays, the rows each
    member trained on; `None` with `bootstrap=False`), `oob_indices` (the
    sorted rows each member never saw; `None` with `bootstrap=False`),
    `member_seeds` and `histories` (each member's `History.history`). These are plain attributes: they are not saved by
    `save("x.keras")`.

    Args:
        build_fn: Callable with no arguments returning a new compiled Keras
            model.
        x: Training inputs: a numpy-convertible array (or a list/dict of
            them), indexed along the first axis.
        y: Training targets, indexed along the first axis.
        n_members: Positive integer, the number of members. Defaults to `5`.
        bootstrap: Boolean, whether each member trains on a resample drawn
            with replacement (`True`) or on the full data (`False`).
            Defaults to `True`.
        seed: Integer, base seed of member seeds and resamples. Defaults to
            `None` (drawn at random; see `member_seeds` afterwards).
        combine: String, the returned `Ensemble`'s `combine`. Defaults to
            `"mean"`.
        verbose: `"auto"`, `0`, `1` or `2`. `"auto"`: one line per member,
            each member's `fit` silent. `0`: silent. `1` or `2`: one line
            per member, and passed to each member's `fit` (progress bar, one
            line per epoch). Defaults to `"auto"`.
        **fit_kwargs: Passed to each member's `fit` (`epochs`, `batch_size`,
            `validation_data`, `callbacks`, ...). `sample_weight` is
            resampled with the rows.

    Returns:
        An `Ensemble` of the trained members.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasreg import fit_bootstrap

    def build():
        model = keras.Sequential([
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ])
        model.compile("adam", "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    x = np.random.rand(100, 8).astype("float32")
    y = np.random.randint(0, 3, size=100)
    ens = fit_bootstrap(build, x, y, n_members=3, seed=0, epochs=2)
    oob = ens.oob_indices[0]          # rows member 0 never saw
    member0 = ens.members[0].predict(x[oob], verbose=0)
    ```
    """
    _checks.int_at_least("n_members", n_members, 1)
    if not callable(build_fn):
        raise ValueError(
            "Invalid value received for argument `build_fn`. Expected a "
            f"callable returning a compiled Keras model. Received: "
            f"build_fn={build_fn!r}"
        )
    if seed is not None:
        _checks.int_at_least("seed", seed, 0)
    check_combine(combine)
    verbose = _checks.verbose(verbose, ("auto", 0, 1, 2))
    n = _n_rows(x)
    if _n_rows(y) != n:
        raise ValueError(
            "Invalid value received for argument `y`. Expected as many rows "
            f"as `x` ({n}). Received: {_n_rows(y)} rows"
        )
    if n < 1:
        raise ValueError(
            "Invalid value received for argument `x`. Expected at least one "
            "row. Received: 0 rows"
        )
    n_members = int(n_members)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] % 2**30)
    seed = int(seed)
    generators = [
        np.random.default_rng(s)
        for s in np.random.SeedSequence(seed).spawn(n_members)
    ]
    sample_weight = fit_kwargs.pop("sample_weight", None)
    fit_kwargs["verbose"] = 0 if verbose == "auto" else verbose

    members, bootstrap_indices, oob_indices, member_seeds = [], [], [], []
    histories = []
    for i in range(n_members):
        member_seed = seed + i
        keras.utils.set_random_seed(member_seed)
        model = build_fn()
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Invalid value received for argument `build_fn`. Expected a "
                "callable returning a compiled Keras model. Received: "
                f"build_fn() returned {model!r}"
            )
        if not model.compiled:
            raise ValueError(
                "Invalid value received for argument `build_fn`. Expected a "
                "callable returning a compiled Keras model (call "
                "`model.compile(optimizer, loss)` inside `build_fn`). "
                f"Received: build_fn={build_fn!r}, whose model "
                f"'{model.name}' is not compiled"
            )
        if bootstrap:
            idx = generators[i].integers(0, n, size=n)
            oob = np.setdiff1d(np.arange(n), idx)
            xi, yi = _take(x, idx), _take(y, idx)
            swi = None if sample_weight is None else _take(sample_weight, idx)
            bootstrap_indices.append(idx)
            oob_indices.append(oob)
            data_note = (
                f"{n} rows resampled ({len(np.unique(idx))} distinct, "
                f"{len(oob)} out-of-bag)"
            )
        else:
            xi, yi, swi = x, y, sample_weight
            data_note = f"{n} rows"
        history = model.fit(xi, yi, sample_weight=swi, **fit_kwargs)
        members.append(model)
        member_seeds.append(member_seed)
        history = dict(getattr(history, "history", None) or {})
        histories.append(history)
        logs = {k: v[-1] for k, v in history.items() if v}
        metrics = ", ".join(f"{k} {float(v):.4f}" for k, v in logs.items())
        if verbose:
            print(
                f"member {i + 1}/{n_members} (seed {member_seed}): {data_note}"
                + (f", {metrics}" if metrics else ""),
                flush=True,
            )

    ensemble = Ensemble(members, combine=combine)
    ensemble.bootstrap_indices = bootstrap_indices if bootstrap else None
    ensemble.oob_indices = oob_indices if bootstrap else None
    ensemble.member_seeds = member_seeds
    ensemble.histories = histories
    return ensemble
