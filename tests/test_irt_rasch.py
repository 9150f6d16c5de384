"""Rasch CML (PCM, RSM) and person parameters against eRm 1.0-2 and psychotools 0.7-2
(tests/fixtures/irt_rasch/make_reference.R)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.irt import person_parameters, rasch

FIX = Path(__file__).parent / "fixtures"
REF = json.loads((FIX / "irt_rasch" / "rasch_reference.json").read_text())
ATOL_PAR = 1e-4     # item parameters and person estimates (issue: within 1e-4)
ATOL_PERSON_ERM = 2e-4   # eRm's person.parameter() stops nlm at gradtol 1e-6: ~1e-4 near extremes
RTOL_SE = 1e-3      # standard errors (eRm and psychotools take them from numerical Hessians)


def _num(values):
    """JSON numbers with R's NA (written as "NA") as NaN."""
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(FIX / "data" / "irt_rasch.csv")


@pytest.fixture(scope="module", params=["pcm", "rsm"])
def case(request, data):
    return request.param, rasch(data, model=request.param), REF[request.param]


def test_betapar_match_erm(case):
    model, fit, ref = case
    assert fit.converged
    names = [f"beta {i}.c{c}" for i, c in zip(fit.parameters["item"], fit.parameters["category"])]
    assert names == ref["erm"]["betanames"]
    assert_allclose(fit.parameters["beta"], ref["erm"]["betapar"], atol=ATOL_PAR)


def test_etapar_and_se_match_erm(case):
    model, fit, ref = case
    assert_allclose(fit.eta["est"], ref["erm"]["etapar"], atol=ATOL_PAR)
    assert_allclose(fit.eta["se"], ref["erm"]["se_eta"], rtol=RTOL_SE)


def test_loglik_matches_erm_and_psychotools(case):
    model, fit, ref = case
    assert_allclose(fit.loglik, ref["erm"]["loglik"], atol=1e-6)
    assert_allclose(fit.loglik, ref["psychotools"]["loglik"], atol=1e-6)
    assert fit.npar == ref["erm"]["npar"]


def test_coef_match_psychotools(case):
    model, fit, ref = case
    pt = fit.psychotools_coef()
    assert list(pt["name"]) == ref["psychotools"]["names"]
    assert_allclose(pt["est"], ref["psychotools"]["coef"], atol=ATOL_PAR)
    assert_allclose(pt["se"], ref["psychotools"]["se"], rtol=RTOL_SE)


def test_ml_person_parameters_match_erm(case, data):
    model, fit, ref = case
    pp = person_parameters(fit, data, method="ML")
    erm = _num(ref["erm"]["person"]["theta"])
    interpolated = np.array(ref["erm"]["person"]["interpolated"], dtype=bool)
    finite = ~interpolated
    assert np.isnan(pp["theta"].to_numpy()[interpolated]).all()
    assert_allclose(pp["theta"].to_numpy()[finite], erm[finite], atol=ATOL_PERSON_ERM)
    se = _num(ref["erm"]["person"]["se"])
    assert_allclose(pp["se"].to_numpy()[finite], se[finite], rtol=RTOL_SE)


def test_ml_person_parameters_match_psychotools(case, data):
    """psychotools' personpar() is per raw score 1..max-1 on complete responses, with the mean
    item location (mean over items of the mean Andrich threshold) as origin."""
    model, fit, ref = case
    complete = data.dropna()
    pp = person_parameters(fit, complete, method="ML")
    by_score = pp.dropna().groupby("raw_score")["theta"].first()
    pt = np.array(ref["psychotools"]["personpar"])
    shift = fit.thresholds.groupby("item", sort=False)["threshold"].mean().mean()
    ours = by_score.to_numpy() - shift
    assert_allclose(ours, pt[by_score.index.astype(int) - 1], atol=ATOL_PAR)


def test_wle_matches_r(case, data):
    model, fit, ref = case
    pp = person_parameters(fit, data, method="WLE")
    assert_allclose(pp["theta"], ref["erm"]["wle"], atol=ATOL_PAR)
    assert np.isfinite(pp["theta"]).all()


def test_bad_response_is_named(data):
    bad = data.copy()
    bad.loc[5, "i03"] = 2.5
    with pytest.raises(ValueError, match=r"row 6, column 'i03'"):
        rasch(bad)
    with pytest.raises(ValueError, match="model="):
        rasch(data, model="2pl")
