"""HS invariance over school (refs case b) and the large single-group fits (cases c and g)."""
from __future__ import annotations

import pytest
from numpy.testing import assert_allclose

from cfa_helpers import ATOL_EST, HS_MODEL, RTOL_CHISQ, RTOL_SE, data, quiet, ref, row
from instrument import cfa

B = ref("b_hs_invariance.json")["ML"]
STEPS = ("configural", "metric", "scalar", "strict", "means", "partial_scalar")
# lavaan stops nlminb earlier than our Fisher scoring; for the configural model its estimates
# are up to 1.6e-5 from the optimum (its chisq is 2.4e-8 higher than ours), which moves the SRMR
# in the 6th digit. Chi-square based measures still agree at 1e-6.
RTOL_SRMR = {"configural": 1e-5}


@pytest.fixture(scope="module")
def fits():
    hs = data("HolzingerSwineford1939.csv")
    return {s: quiet(cfa, HS_MODEL, hs, group="school", group_equal=B["fit"][s]["group.equal"],
                     group_partial=B["fit"][s]["group.partial"]) for s in STEPS}


@pytest.mark.parametrize("step", STEPS)
def test_fit_measures(fits, step):
    ours, r = fits[step].fit_measures, B["fit"][step]
    for k in ("npar", "chisq", "df", "pvalue", "cfi", "tli", "rmsea", "rmsea.ci.lower",
              "rmsea.ci.upper", "aic", "bic", "logl", "baseline.chisq", "baseline.df"):
        assert_allclose(ours[k], r[k], rtol=RTOL_CHISQ, atol=1e-12, err_msg=f"{step} {k}")
    for k in ("srmr", "srmr_bentler_nomean"):
        assert_allclose(ours[k], r[k], rtol=RTOL_SRMR.get(step, RTOL_CHISQ), err_msg=f"{step} {k}")
    assert fits[step].converged


def test_groups_in_order_of_appearance(fits):
    assert fits["configural"].group_labels == ("Pasteur", "Grant-White")
    assert [s["n"] for s in fits["configural"].sample] == [156, 145]


def test_group_order_option():
    hs = data("HolzingerSwineford1939.csv")
    f = quiet(cfa, HS_MODEL, hs, group="school", group_order=["Grant-White", "Pasteur"])
    assert f.group_labels == ("Grant-White", "Pasteur")
    assert_allclose(f.fit_measures["chisq"], B["fit"]["configural"]["chisq"], rtol=RTOL_CHISQ)
    with pytest.raises(ValueError, match="group_order="):
        cfa(HS_MODEL, hs, group="school", group_order=["Pasteur"])


def test_latent_means_scalar(fits):
    for p in B["latent_means_scalar_model"]:
        r = row(fits["scalar"].estimates, p["lhs"], p["op"], "", p["group"])
        assert_allclose(r["est"], p["est"], atol=ATOL_EST)
        assert_allclose(r["se"], p["se"], rtol=RTOL_SE, atol=1e-12)


@pytest.mark.parametrize("step,key,atol", [("partial_scalar", "parameter_estimates_partial_scalar", ATOL_EST),
                                           # see RTOL_SRMR: lavaan's configural optimum is loose
                                           ("configural", "parameter_estimates_configural", 5e-5)])
def test_group_estimates(fits, step, key, atol):
    for p in B[key]:
        r = row(fits[step].estimates, p["lhs"], p["op"], p["rhs"], p["group"])
        assert_allclose(r["est"], p["est"], atol=atol, err_msg=str(p))
        assert_allclose(r["se"], p["se"], rtol=RTOL_SE if atol == ATOL_EST else 5e-4, atol=1e-12,
                        err_msg=str(p))
        if "label" in p:
            assert r["label"] == p["label"], p


def test_srmr_per_group(fits):
    # per-group SRMRs move ~1e-6 with lavaan's optimiser tolerance (their weighted mean agrees
    # at 1e-6 for the scalar model, the per-group values at 1.2e-6)
    for step in ("configural", "scalar"):
        assert_allclose(fits[step].srmr_group, B["srmr_by_hand_checks"][step]["per_group_total"],
                        rtol=1e-5)
        ns = [s["n"] for s in fits[step].sample]
        assert_allclose(sum(n * v for n, v in zip(ns, fits[step].srmr_group)) / sum(ns),
                        fits[step].fit_measures["srmr"], rtol=1e-12)


def test_bfi_five_factor():
    c = ref("c_bfi_cfa_ml.json")
    fit = quiet(cfa, c["meta"]["model"], data("bfi_complete25.csv"))
    for k in ("chisq", "df", "cfi", "tli", "rmsea", "srmr", "logl", "aic", "bic", "npar", "ntotal"):
        assert_allclose(fit.fit_measures[k], c["ml"]["fit_measures"][k], rtol=RTOL_CHISQ, err_msg=k)


def test_sim_40_items():
    g = ref("g_timing.json")
    fit = quiet(cfa, g["meta"]["population"]["model"], data("sim_5f40i_n5000_continuous.csv"))
    r = g["results_on_sim_data"]["ml"]
    for k in ("npar", "chisq", "df", "cfi", "tli", "rmsea"):
        assert_allclose(fit.fit_measures[k], r[k], rtol=RTOL_CHISQ, err_msg=k)
    assert_allclose(fit.fit_measures["srmr"], r["srmr"], rtol=1e-6)
    assert round(fit.fit_measures["chisq"], 3) == 775.768 and fit.fit_measures["df"] == 730
