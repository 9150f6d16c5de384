"""Rows whose every model item is missing are dropped before N is counted (lavaan 0.6-14: "some
cases are empty and will be ignored"), for WLSMV with pairwise deletion and for FIML.

Reference: tests/fixtures/wlsmv/empty_rows_refs.json (make_empty_rows_refs.R): bfi.csv with the
15 A, C, N items blanked on rows 100, 200, ..., 2800.
"""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import instrument as ins

FIX = Path(__file__).parent / "fixtures" / "wlsmv"
RTOL_CHISQ, ATOL_EST, RTOL_SE = 1e-6, 1e-5, 1e-4
# the robust and scaled indices inherit lavaan's optimiser tolerance
RTOL_INDEX = 1e-5


@lru_cache(maxsize=None)
def ref() -> dict:
    return json.loads((FIX / "empty_rows_refs.json").read_text())


@lru_cache(maxsize=None)
def data() -> pd.DataFrame:
    meta = ref()["meta"]
    df = pd.read_csv(FIX / "bfi.csv")
    df.loc[np.array(meta["empty_rows"]) - 1, meta["ordered"]] = np.nan
    return df


@lru_cache(maxsize=None)
def fitted(case: str):
    meta = ref()["meta"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if case == "wlsmv_pairwise":
            fit = ins.cfa(meta["model"], data(), ordered=meta["ordered"], estimator="WLSMV",
                          missing="pairwise")
        else:
            fit = ins.cfa(meta["model"], data(), estimator="MLR", missing="fiml")
    return fit, [str(w.message) for w in caught]


@pytest.mark.parametrize("case", ["wlsmv_pairwise", "mlr_fiml"])
def test_empty_rows_are_not_counted(case):
    fit, caught = fitted(case)
    r = ref()["fits"][case]
    assert fit.fit_measures["ntotal"] == r["ntotal"] == 2772
    assert sum(s["n"] for s in fit.sample) == 2772
    assert [w for w in caught if "every model variable missing" in w] == [
        "28 of 2800 rows (1%) have every model variable missing and were removed (lavaan: "
        "'some cases are empty and will be ignored')"]


@pytest.mark.parametrize("case", ["wlsmv_pairwise", "mlr_fiml"])
def test_fit_measures_with_n_after_dropping(case):
    fm, r = fitted(case)[0].fit_measures, ref()["fits"][case]["fit_measures"]
    for k in ("chisq", "df", "chisq.scaled"):
        assert_allclose(fm[k], r[k], rtol=RTOL_CHISQ * 10, err_msg=k)
    for k in ("rmsea.scaled", "cfi.scaled", "tli.scaled", "rmsea.robust", "cfi.robust",
              "rmsea.ci.upper.scaled"):
        assert_allclose(fm[k], r[k], rtol=RTOL_INDEX, err_msg=k)


def test_wlsmv_estimates_equal_the_fit_without_those_rows():
    fit = fitted("wlsmv_pairwise")[0]
    pe = pd.DataFrame(ref()["fits"]["wlsmv_pairwise"]["parameter_estimates"])
    m = pe.merge(fit.estimates, on=["lhs", "op", "rhs"], suffixes=("_ref", ""))
    assert len(m) == len(pe)
    assert_allclose(m["est"], m["est_ref"], atol=ATOL_EST)
    assert_allclose(m["se"], m["se_ref"], rtol=RTOL_SE, atol=1e-8)
    assert fit.meta.options["nobs_dropped_empty"] == 28
