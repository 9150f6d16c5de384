"""`Refit` (the Monte Carlo path of an ML CFA) gives the numbers of `cfa()`."""
import numpy as np
import pandas as pd
import pytest

import instrument as ins
from instrument.sem.refit import Refit

HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
ATOL_EST, RTOL_FIT = 1e-8, 1e-10


@pytest.fixture(scope="module")
def hs():
    return pd.read_csv("tests/fixtures/cfa/HolzingerSwineford1939.csv")


@pytest.mark.parametrize("std_lv", [False, True])
def test_refit_equals_cfa(hs, std_lv):
    fit = ins.cfa(HS, hs, std_lv=std_lv)
    r = Refit(HS, std_lv=std_lv)
    out = r.fit(hs)
    merged = fit.estimates.merge(r.free.assign(x=out.x, sx=out.se), on=["lhs", "op", "rhs"])
    assert len(merged) == len(r.free) == r.model.nx
    np.testing.assert_allclose(merged["x"], merged["est"], atol=ATOL_EST)
    np.testing.assert_allclose(merged["sx"], merged["se"], atol=ATOL_EST)
    for k in ("chisq", "df", "pvalue", "cfi", "rmsea", "srmr"):
        assert out.fit_measures[k] == pytest.approx(fit.fit_measures[k], rel=RTOL_FIT, abs=1e-12), k
    assert out.converged


def test_refit_fixed_start_and_column_order(hs):
    r = Refit(HS)
    base = r.fit(hs)
    cols = list(reversed(r.ov_names))
    r2 = Refit(HS, cols, start=r.start_from(np.cov(hs[cols].to_numpy().T, bias=True)))
    out = r2.fit(hs[cols].to_numpy())
    np.testing.assert_allclose(out.x, base.x, atol=1e-8)
    assert out.fit_measures["chisq"] == pytest.approx(base.fit_measures["chisq"], rel=1e-10)


def test_refit_drops_incomplete_rows_like_cfa(hs):
    d = hs.copy()
    d.loc[[3, 10, 50], "x4"] = np.nan
    fit = ins.cfa(HS, d)
    out = Refit(HS).fit(d, se=False)
    assert out.fit_measures["chisq"] == pytest.approx(fit.fit_measures["chisq"], rel=1e-10)
    assert np.isnan(out.se).all()


def test_refit_rejects_thresholds():
    with pytest.raises(NotImplementedError, match="ordered="):
        Refit("f =~ a + b + c\na | t1")
