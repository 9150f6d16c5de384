"""Two-level ML on the engine's optimiser: the analytic expected information of the two-level
likelihood, and the options `cfa()` validates once before it looks the estimator up."""
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument import cfa, twolevel_cfa
from instrument.sem.cfa import ESTIMATORS, _validate
from instrument.sem.optim import optimize
from instrument.sem.estimators.twolevel import (TwoLevelObjective, _Saturated,
                                                twolevel_expected_information)
from instrument.sem.twolevel import cluster_stats

LEVELS = "level: 1\n fw =~ a + b + c\nlevel: 2\n fb =~ a + b + c\n"


def _balanced(seed: int, J: int = 60, n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lw, lb = np.array([1.0, 0.8, 0.7]), np.array([1.0, 0.9, 0.6])
    s = np.repeat(np.arange(J), n)
    y = (rng.normal(size=J * n)[:, None] * lw + rng.normal(0, 0.6, (J * n, 3))
         + (rng.normal(0, 0.7, J)[:, None] * lb + rng.normal(0, 0.3, (J, 3)))[s] + 2.0)
    return pd.DataFrame(y, columns=["a", "b", "c"]).assign(s=s)


def test_expected_information_equals_observed_at_the_balanced_saturated_maximum():
    """With equal cluster sizes the two-level likelihood is a Wishart in Sigma_W times a normal
    of the cluster means with covariance Sigma_B + Sigma_W / n; at its unrestricted maximum the
    observed information (numerical Hessian of the analytic gradient) equals the expected one."""
    cs = cluster_stats(_balanced(3), ["a", "b", "c"], "s")
    sat = _Saturated(3)
    res = optimize(TwoLevelObjective(sat, cs), sat.start(cs))
    assert res.converged
    obs = TwoLevelObjective(sat, cs).observed_information(res.x)
    SW, SB, _ = sat.moments(res.x)
    exp = twolevel_expected_information(cs, SW, SB)
    assert_allclose(obs, exp, rtol=1e-5, atol=1e-5 * np.abs(exp).max())


def test_expected_information_differs_from_observed_away_from_the_maximum():
    cs = cluster_stats(_balanced(4), ["a", "b", "c"], "s")
    sat = _Saturated(3)
    x = sat.start(cs) * 1.3
    obs = TwoLevelObjective(sat, cs).observed_information(x)
    SW, SB, _ = sat.moments(x)
    assert not np.allclose(obs, twolevel_expected_information(cs, SW, SB), rtol=1e-2)


@pytest.mark.filterwarnings("ignore:the saturated model's EM")
def test_two_level_fit_uses_the_engine_convergence_report():
    fit = cfa(LEVELS, _balanced(5), cluster="s")
    assert fit.converged and fit.iterations > 0
    assert not [w for w in fit.warnings if "did not converge" in w]


def test_registry_has_one_entry_per_validated_kind():
    kinds = {"continuous": {}, "clustered": {"estimator": "MLR", "cluster": "s"},
             "ordinal": {"ordered": True}}
    for kind, opts in kinds.items():
        o = _validate("f =~ a + b + c", **opts)
        assert o.kind == kind and (o.kind, o.estimator, o.missing) in ESTIMATORS
    o = _validate(LEVELS, cluster="s")
    assert (o.kind, o.estimator, o.missing) == ("twolevel", "ML", "listwise")
    assert ESTIMATORS[("twolevel", "ML", "listwise")] is not ESTIMATORS[
        ("continuous", "ML", "listwise")]


def test_two_level_options_are_refused_elsewhere():
    d = _balanced(6)
    with pytest.raises(NotImplementedError, match="two-level models"):
        cfa("f =~ a + b + c", d, h1="exact")
    with pytest.raises(NotImplementedError, match="two-level models"):
        cfa("f =~ a + b + c", d, baseline=False)
    with pytest.raises(ValueError, match="needs a model with 'level: 1'"):
        twolevel_cfa("f =~ a + b + c", d, cluster="s")
    with pytest.raises(TypeError, match="baseline= must be True or False"):
        cfa(LEVELS, d, cluster="s", baseline="no")
