import keras_tuner
import numpy as np
import pytest
from scipy import stats

from kerasreg.tuning import beta
from kerasreg.tuning import log_uniform


def _search_draws(build, n=2000, seed=3):
    """`n` values drawn by the CoarseToFine oracle for the space of `build`."""
    from kerasreg.tuning import CoarseToFineOracle

    oracle = CoarseToFineOracle("loss", stages=((n, 1),), seed=seed)
    hp = keras_tuner.HyperParameters()
    build(hp)
    oracle.update_space(hp)
    return [oracle.populate_space(str(i))["values"] for i in range(n)]


def test_log_uniform_is_uniform_in_log10():
    hp = keras_tuner.HyperParameters()
    default = log_uniform(hp, "learning_rate", 1e-6, 10.0)
    assert default == pytest.approx(1e-6)  # Keras Tuner's default: min_value
    (space,) = hp.space
    assert space.sampling == "log"
    draws = _search_draws(lambda hp: log_uniform(hp, "learning_rate", 1e-6, 10.0))
    samples = np.array([v["learning_rate"] for v in draws])
    assert samples.min() >= 1e-6 and samples.max() <= 10.0
    r = np.log10(samples)
    assert stats.kstest(r, stats.uniform(loc=-6, scale=7).cdf).pvalue > 0.01
    # Linear sampling would put ~90% above 1: log sampling puts 1/7 there.
    assert np.mean(samples > 1.0) == pytest.approx(1 / 7, abs=0.03)


def test_log_uniform_value_recorded_under_name():
    hp = keras_tuner.HyperParameters()
    hp.values["weight_decay"] = 3.86e-07
    assert log_uniform(hp, "weight_decay", 1e-8, 1e-4) == 3.86e-07
    assert hp.values["weight_decay"] == 3.86e-07


def test_beta_one_minus_beta_is_log_uniform():
    hp = keras_tuner.HyperParameters()
    beta(hp, "beta_1", 0.9, 0.999)
    (space,) = hp.space  # a built-in log-sampled Float: reloadable everywhere
    assert isinstance(space, keras_tuner.engine.hyperparameters.Float)
    assert space.sampling == "log"
    betas = []
    for values in _search_draws(lambda hp: beta(hp, "beta_1", 0.9, 0.999)):
        trial_hp = keras_tuner.HyperParameters()
        trial_hp.values.update(values)
        b = beta(trial_hp, "beta_1", 0.9, 0.999)  # what the model builder sees
        assert b == pytest.approx(1.0 - values["one_minus_beta_1"])
        assert trial_hp.values["beta_1"] == b  # recorded under `name`
        betas.append(b)
    betas = np.array(betas)
    assert betas.min() >= 0.9 and betas.max() <= 0.999
    r = np.log10(1.0 - betas)
    assert stats.kstest(r, stats.uniform(loc=-3, scale=2).cdf).pvalue > 0.01
    # As much search between 0.9 and 0.99 as between 0.99 and 0.999.
    assert np.mean(betas < 0.99) == pytest.approx(0.5, abs=0.04)


def test_reverse_log_is_not_one_minus_beta_log_uniform():
    # Why `beta` does not use Keras Tuner's `sampling="reverse_log"`.
    hp = keras_tuner.HyperParameters()
    hp.Float("b", 0.9, 0.999, sampling="reverse_log")
    samples = np.array([hp.space[0].random_sample(s) for s in range(2000)])
    assert np.mean(samples < 0.99) > 0.8  # nearly linear, not 50/50


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"min_value": 0.0, "max_value": 1.0}, "min_value"),
        ({"min_value": -1.0, "max_value": 1.0}, "min_value"),
        ({"min_value": 1.0, "max_value": 1.0}, "max_value"),
        ({"min_value": 1.0, "max_value": 0.1}, "max_value"),
        ({"min_value": "a", "max_value": 1.0}, "min_value"),
        ({"min_value": 1e-3, "max_value": 1.0, "default": 2.0}, "default"),
    ],
)
def test_log_uniform_bad_input(kwargs, arg):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{arg}`"):
        log_uniform(keras_tuner.HyperParameters(), "lr", **kwargs)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"min_value": 0.0}, "min_value"),
        ({"min_value": -0.5}, "min_value"),
        ({"max_value": 1.0}, "max_value"),
        ({"max_value": 1.5}, "max_value"),
        ({"min_value": 0.99, "max_value": 0.9}, "max_value"),
    ],
)
def test_beta_bad_input(kwargs, arg):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{arg}`"):
        beta(keras_tuner.HyperParameters(), "beta_1", **kwargs)


def test_bad_name():
    with pytest.raises(ValueError, match="argument `name`"):
        log_uniform(keras_tuner.HyperParameters(), "", 1e-3, 1.0)


def test_log_uniform_default_is_the_value_before_the_search():
    hp = keras_tuner.HyperParameters()
    assert log_uniform(hp, "learning_rate", 1e-5, 1e-1, default=3e-3) == 3e-3
    (space,) = hp.space
    assert space.default == 3e-3  # not min_value, Keras Tuner's own default
    assert hp.values["learning_rate"] == 3e-3
    # The space reloads with it (a resumed or distributed search).
    again = keras_tuner.HyperParameters.from_config(hp.get_config())
    assert again.space[0].default == 3e-3
    assert again.get("learning_rate") == 3e-3
    # The bounds are allowed; an integer default is a float.
    hp = keras_tuner.HyperParameters()
    value = log_uniform(hp, "l2", 1e-3, 10, default=10)
    assert value == 10.0 and isinstance(value, float)
    # A sampled value wins over the default.
    hp.values["l2"] = 0.5
    assert log_uniform(hp, "l2", 1e-3, 10, default=10) == 0.5


@pytest.mark.parametrize("low, high", [(0.5, 0.99), (0.3, 0.7)])
def test_beta_non_default_bounds(low, high):
    hp = keras_tuner.HyperParameters()
    beta(hp, "b", low, high)
    (space,) = hp.space
    assert space.name == "one_minus_b" and space.sampling == "log"
    assert space.min_value == pytest.approx(1 - high, rel=1e-12)
    assert space.max_value == pytest.approx(1 - low, rel=1e-12)
    r_lo, r_hi = np.log10(1 - high), np.log10(1 - low)

    def beta_for(one_minus):
        trial_hp = keras_tuner.HyperParameters()
        trial_hp.values["one_minus_b"] = one_minus
        return beta(trial_hp, "b", low, high)  # what the model builder sees

    # The quantile function: log10(1 - beta) is linear in the probability,
    # from log10(1 - high) to log10(1 - low), the bounds included.
    for p in np.linspace(0.0, 1.0, 11):
        b = beta_for(space.prob_to_value(p))
        assert low <= b <= high
        assert np.log10(1 - b) == pytest.approx(r_lo + p * (r_hi - r_lo), abs=1e-12)
    # Seeded draws of the search: inside the bounds, log-uniform in 1 - beta.
    betas = np.array([beta_for(v["one_minus_b"])
                      for v in _search_draws(lambda hp: beta(hp, "b", low, high),
                                             n=1000)])
    assert betas.min() >= low and betas.max() <= high
    r = np.log10(1.0 - betas)
    assert stats.kstest(r, stats.uniform(loc=r_lo, scale=r_hi - r_lo).cdf).pvalue > 0.01
    # Half of the draws below the geometric midpoint of 1 - beta.
    middle = 1 - np.sqrt((1 - low) * (1 - high))
    assert np.mean(betas < middle) == pytest.approx(0.5, abs=0.05)
