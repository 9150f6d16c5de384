"""S-X2 item fit and Yen's Q3 on simulated data: calibrated under the true model, flags a misfitting
item and a locally dependent pair; the summed-score recursion against brute-force enumeration."""
import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

from instrument.irt import irt, q3, s_x2
from instrument.irt.itemfit import _summed_score_lik
from instrument.irt.simulate import simulate_responses


def _truth(n_items, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.9, 2.2, n_items)
    b = np.sort(rng.normal(0, 0.8, (n_items, 3)), axis=1) + np.array([-0.8, 0.0, 0.8])
    return a, -b * a[:, None]


def test_lord_wingersky_matches_enumeration():
    rng = np.random.default_rng(0)
    probs = [rng.dirichlet(np.ones(k), size=5) for k in (3, 4, 2)]
    L = _summed_score_lik(probs)
    brute = np.zeros_like(L)
    for combo in itertools.product(*[range(p.shape[1]) for p in probs]):
        brute[:, sum(combo)] += np.prod([p[:, c] for p, c in zip(probs, combo)], axis=0)
    assert_allclose(L, brute, rtol=1e-12)


def _clean():
    a, d = _truth(8, 3)
    theta = np.random.default_rng(4).normal(size=2000)
    return simulate_responses(a, d, theta, seed=5), theta


def test_s_x2_calibrated_under_the_true_model():
    df, _ = _clean()
    res = s_x2(irt(df, se=False), df)
    assert res["flagged"].sum() <= 1          # alpha .01 over 8 items
    assert 0.6 < (res["S_X2"] / res["df"]).mean() < 1.4


@pytest.fixture(scope="module")
def misfit_case():
    df, theta = _clean()
    # i08 replaced by an item that peaks in the middle of the trait (not monotone)
    rng = np.random.default_rng(6)
    p_high = np.exp(-theta**2)
    df["i08"] = np.where(rng.random(theta.size) < p_high, 3, rng.integers(0, 3, theta.size))
    return df


def test_s_x2_flags_the_misfitting_item(misfit_case):
    fit = irt(misfit_case, se=False)
    res = s_x2(fit, misfit_case).set_index("item")
    assert res.loc["i08", "flagged"] and res["S_X2"].idxmax() == "i08"
    assert res.loc["i08", "S_X2"] > 3 * res.drop(index="i08")["S_X2"].max()


def test_q3_flags_a_dependent_pair():
    a, d = _truth(8, 7)
    theta = np.random.default_rng(8).normal(size=1500)
    df = simulate_responses(a, d, theta, seed=9)
    rng = np.random.default_rng(10)
    copy = rng.random(theta.size) < 0.6
    df.loc[copy, "i05"] = df.loc[copy, "i04"]        # i05 often repeats i04's answer
    fit = irt(df, se=False)
    M, pairs = q3(fit, df)
    flagged = pairs[pairs["flagged"]]
    assert list(zip(flagged["item1"], flagged["item2"])) == [("i04", "i05")]
    assert_allclose(np.diag(M.to_numpy()), 1.0)
    assert "Christensen" in pairs["rule"].iloc[0]
