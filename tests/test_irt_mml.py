"""MML graded and GPCM models: mirt's published values for the Science data, parameter recovery on
simulated data, multiple groups, and EAP/MAP scores (tests/fixtures/irt_mml/SOURCE.md)."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.irt import fscores, information, irt, item_information
from instrument.irt import mml
from instrument.irt.mml import _MML, _responses
from instrument.irt.simulate import simulate_responses

FIX = Path(__file__).parent / "fixtures"
# mirt's tests/testthat/test-02-mirtTwo.R: mirt(Science, 1, SE = TRUE, SE.type = "Louis"),
# coef(printSE = TRUE): a1 (se), d1 (se), d2 (se), d3 (se) per item
MIRT_SCIENCE_GRADED = np.array([
    1.04236, 0.18838, 4.86544, 0.49088, 2.64044, 0.22267, -1.46621, 0.15868,
    1.22569, 0.18189, 2.924, 0.23928, 0.90115, 0.14289, -2.26661, 0.20308,
    2.29058, 0.48269, 5.22988, 0.72817, 2.21201, 0.3564, -1.96222, 0.32209,
    1.09557, 0.18336, 3.34845, 0.27659, 0.9919, 0.14053, -1.68846, 0.16864]).reshape(-1, 2)
# mirt fits at its default EM tolerance (TOL = 1e-4) and its tests compare coefficients at
# tolerance 1e-2; its point is 2.4e-4 below our maximum of the same likelihood (gradient 0.016).
RTOL_MIRT = 1e-2
RTOL_MIRT_SE = 2e-2   # SEs at the two (slightly different) points
# mirt(Science, 1) coefficients as printed in the same test file (3 decimals), and
# fscores(modp1, method = "EAP", response.pattern = c(1, 2, 3, 4)) at them (tolerance 1e-4 there;
# rounding the coefficients to 3 decimals moves the EAP by up to 5e-4)
MIRT_SCIENCE_MODP1 = np.array([1.041, 4.864, 2.64, -1.466, 1.226, 2.924, 0.901, -2.266, 2.296,
                               5.238, 2.216, -1.965, 1.095, 3.348, 0.992, -1.688])
MIRT_EAP_1234 = (-0.3494903, 0.6004922)


@pytest.fixture(scope="module")
def science():
    return pd.read_csv(FIX / "data" / "science.csv")


@pytest.fixture(scope="module")
def graded(science):
    return irt(science, model="graded")


def _loglik_and_score(fit, df, values):
    st = _MML(fit.model, fit.link, _responses(df, fit.items, None).pats, 1,
              np.ones(len(fit.items), bool), 61)
    return st.score(np.asarray(values, float))


def test_graded_science_matches_mirt(graded):
    est = graded.parameters[["est", "se"]].to_numpy()
    assert list(graded.parameters["par"][:4]) == ["a1", "d1", "d2", "d3"]
    assert_allclose(est[:, 0], MIRT_SCIENCE_GRADED[:, 0], rtol=RTOL_MIRT)
    assert_allclose(est[:, 1], MIRT_SCIENCE_GRADED[:, 1], rtol=RTOL_MIRT_SE)


def test_graded_science_is_the_maximum(graded, science):
    ll, g = _loglik_and_score(graded, science, graded.parameters["est"])
    assert np.max(np.abs(g)) < 1e-4
    assert_allclose(ll, graded.loglik, rtol=1e-12)
    ll_mirt, _ = _loglik_and_score(graded, science, MIRT_SCIENCE_GRADED[:, 0])
    assert ll_mirt < ll


def test_eap_matches_mirt(graded):
    mirt_fit = replace(graded, parameters=graded.parameters.assign(est=MIRT_SCIENCE_MODP1))
    pattern = pd.DataFrame([[0, 1, 2, 3]], columns=list(graded.items))
    s = fscores(mirt_fit, pattern, method="EAP")
    assert_allclose(s.iloc[0].to_numpy(), MIRT_EAP_1234, rtol=1e-3)


def test_map_is_the_posterior_mode(graded, science):
    data = science - 1
    s = fscores(graded, data, method="MAP")
    grid = np.linspace(-6, 6, 12001)
    from instrument.irt.scoring import _loglik_grid
    x = data.to_numpy()
    L = _loglik_grid(graded, x[:20], list(graded.items), grid, None) - 0.5 * grid**2
    assert_allclose(s["theta"].to_numpy()[:20], grid[L.argmax(axis=1)], atol=1e-3)


def test_information_curves(graded):
    th = np.array([-1.0, 0.0, 1.0])
    ii = item_information(graded, th)
    # logistic graded item: I(theta) = a^2 sum_k (P*_k(1-P*_k) - P*_{k+1}(1-P*_{k+1}))^2 / P_k
    a, d = graded.item_params("Comfort")
    Ps = np.column_stack([np.ones(3), 1 / (1 + np.exp(-(a * th[:, None] + d))), np.zeros(3)])
    f = Ps * (1 - Ps)
    by_hand = (a**2 * (f[:, :-1] - f[:, 1:]) ** 2 / (Ps[:, :-1] - Ps[:, 1:])).sum(axis=1)
    assert_allclose(ii["Comfort"].to_numpy(), by_hand, rtol=1e-12)
    t = information(graded, th)
    assert_allclose(t["information"], ii.sum(axis=1).to_numpy())
    assert_allclose(t["reliability"], t["information"] / (t["information"] + 1))


def _truth(n_items, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.8, 2.5, n_items)
    b = np.sort(rng.normal(0, 1, (n_items, 4)), axis=1) + np.array([-0.6, -0.2, 0.2, 0.6])
    return a, -b * a[:, None]


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_graded_recovery_bias_under_two_percent(link):
    """10 replications of N = 2,000 on 6 items: the mean relative bias of the slopes over items
    and replications is under 2% (issue criterion), and each replication converges."""
    a, d = _truth(6, 11)
    if link == "probit":
        a, d = a / 1.7, d / 1.7
    rel = []
    for rep in range(10):
        theta = np.random.default_rng(100 + rep).normal(size=2000)
        df = simulate_responses(a, d, theta, link=link, seed=200 + rep)
        fit = irt(df, link=link, se=False, tol=1e-5)
        assert fit.converged
        est = fit.parameters.query("par == 'a1'")["est"].to_numpy()
        rel.append(est / a - 1)
    assert abs(np.mean(rel)) < 0.02


def test_gpcm_recovery():
    rng = np.random.default_rng(5)
    a = rng.uniform(0.7, 2.0, 8)
    d = np.cumsum(rng.normal(0.3, 0.6, (8, 3)), axis=1) * a[:, None]
    theta = rng.normal(size=3000)
    df = simulate_responses(a, d, theta, model="gpcm", seed=6)
    fit = irt(df, model="gpcm", se=True)
    est = fit.parameters.pivot(index="item", columns="par", values="est")
    se = fit.parameters.pivot(index="item", columns="par", values="se")
    z = (est["a1"].to_numpy() - a) / se["a1"].to_numpy()
    assert np.all(np.abs(z) < 4)
    assert np.all(np.abs(est[["d1", "d2", "d3"]].to_numpy() - d) < 4 * se[["d1", "d2", "d3"]].to_numpy())


def test_multigroup_latent_distribution_and_free_items():
    a, d = _truth(10, 21)
    th0 = np.random.default_rng(1).normal(0, 1, 2000)
    th1 = np.random.default_rng(2).normal(0.5, np.sqrt(1.5), 2000)
    d1 = d.copy()
    d1[9] += 0.8                                           # item 10 shifted in group "es"
    df = pd.concat([simulate_responses(a, d, th0, seed=3).assign(language="en"),
                    simulate_responses(a, d1, th1, seed=4).assign(language="es")], ignore_index=True)
    anchors = [f"i{j:02d}" for j in range(1, 10)]
    fit = irt(df, group="language", anchors=anchors, se=False, tol=1e-5)
    lat = fit.latent.set_index("group")
    assert_allclose(lat.loc["en", ["mean", "var"]].to_numpy(float), [0.0, 1.0])
    assert abs(lat.loc["es", "mean"] - 0.5) < 0.1 and abs(lat.loc["es", "var"] - 1.5) < 0.2
    free = fit.parameters.query("item == 'i10'").pivot(index="par", columns="group", values="est")
    shift = (free["es"] - free["en"]).loc[["d1", "d2", "d3", "d4"]].to_numpy()
    assert np.all(np.abs(shift - 0.8) < 0.4)
    assert set(fit.parameters.query("item != 'i10'")["group"]) == {"all"}


def test_bad_options_are_named(science):
    with pytest.raises(ValueError, match="model="):
        irt(science, model="3pl")
    with pytest.raises(ValueError, match="link='probit'"):
        irt(science, model="gpcm", link="probit")
    with pytest.raises(ValueError, match="anchors="):
        irt(science, anchors=["nope"])


@pytest.mark.parametrize("split", [True, False])
def test_estep_equals_the_direct_sum_over_nodes(split, monkeypatch):
    """The E-step equals the direct computation from each pattern's summed log-probabilities,
    with the items split in halves (also for patterns whose two halves' likelihoods do not
    overlap: hard items answered right, easy items wrong, recomputed from the logs) and not."""
    if not split:
        monkeypatch.setattr(mml, "_SPLIT", 0)
    codes = (np.arange(1024)[:, None] >> np.arange(10)[::-1]) & 1       # every 10-item pattern
    df = pd.DataFrame(np.vstack([codes, codes[:300]]), columns=[f"i{j}" for j in range(10)])
    resp = _responses(df, list(df.columns), None)
    (YA, _, iA), (YB, _, _) = resp.pats.halves[0]
    assert len(iA) == 1024 and (YA.shape[0], YB.shape[0]) == ((32, 32) if split else (1024, 1))
    st = _MML("graded", "logit", resp.pats, 1, np.ones(10, bool), 61)
    st.set(np.column_stack([np.full(10, 10.0),
                            np.r_[np.full(5, -50.0), np.full(5, 50.0)]]).ravel())
    nq, counts, ll = st.estep(st.logprob_table())
    x = codes
    logP = st.logprob_table()[0]                                         # Q x sum K
    L = sum(logP[:, 2 * j + x[:, j]].T for j in range(10)) + np.log(st.prior()[0])
    mx = L.max(axis=1, keepdims=True)
    post = np.exp(L - mx)
    s = post.sum(axis=1)
    wt = np.bincount(np.arange(1324) % 1024).astype(float)
    assert np.exp(L[int("1111100000", 2)]).sum() < 1e-200                 # the halves' overlap
    assert_allclose(ll, wt @ (np.log(s) + mx[:, 0]), rtol=1e-13)
    post *= (wt / s)[:, None]
    onehot = np.zeros((1024, 20))
    onehot[np.arange(1024)[:, None], 2 * np.arange(10) + x] = 1.0
    assert_allclose(nq[0], post.sum(axis=0), rtol=1e-12, atol=1e-300)
    assert_allclose(counts[0], post.T @ onehot, rtol=1e-10, atol=1e-12)


def test_scores_refuse_a_category_the_model_does_not_have(graded, science):
    bad = (science - 1).astype(float)
    bad.iloc[4, 3] = 4.0
    with pytest.raises(ValueError, match=r"row 5, column 'Benefit': expected a category 0\.\.3 "):
        fscores(graded, bad)
