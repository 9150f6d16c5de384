"""Shared pieces of the CFA engine tests: fixture loading, tolerances, the Check* mixin."""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose

FIX = Path(__file__).parent / "fixtures" / "cfa"

# shared/refs/README.md, "Suggested tolerances"
RTOL_CHISQ, ATOL_EST, RTOL_SE = 1e-6, 1e-5, 1e-4

HS_MODEL = """
  visual  =~ x1 + x2 + x3
  textual =~ x4 + x5 + x6
  speed   =~ x7 + x8 + x9
"""


@lru_cache(maxsize=None)
def ref(name: str) -> dict:
    return json.loads((FIX / name).read_text())


@lru_cache(maxsize=None)
def data(name: str) -> pd.DataFrame:
    return pd.read_csv(FIX / name)


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def row(est: pd.DataFrame, lhs, op, rhs, group=1) -> pd.Series:
    rhs = rhs or ""
    sel = est[(est.lhs == lhs) & (est.op == op) & (est.rhs == rhs) & (est.group == group)]
    assert len(sel) == 1, (lhs, op, rhs, group, len(sel))
    return sel.iloc[0]


def mat(d: dict) -> np.ndarray:
    return np.array(d["values"], float)


class CheckAgainstLavaan:
    """Subclasses set ``cls.ours`` (a CFAResult) and ``cls.ref`` (a lavaan fit record)."""

    fm_keys: tuple = ()
    est_atol = ATOL_EST

    def test_fit_measures(self):
        fm = self.ref["fit_measures"]
        keys = self.fm_keys or tuple(k for k in fm if k in self.ours.fit_measures)
        assert keys
        for k in keys:
            assert_allclose(self.ours.fit_measures[k], fm[k], rtol=RTOL_CHISQ, atol=1e-12,
                            err_msg=k)

    def test_estimates_and_se(self):
        pe = self.ref.get("parameter_estimates")
        if pe is None:
            return
        for p in pe:
            r = row(self.ours.estimates, p["lhs"], p["op"], p["rhs"], p.get("group", 1))
            assert_allclose(r["est"], p["est"], atol=self.est_atol, err_msg=str(p))
            assert_allclose(r["se"], p["se"], rtol=RTOL_SE, atol=1e-12, err_msg=str(p))
            if p.get("label") is not None:
                assert r["label"] == p["label"], p
            if p["se"]:
                assert_allclose(r["ci.lower"], p["ci.lower"], atol=self.est_atol * 2)
                assert_allclose(r["z"], p["z"], rtol=RTOL_SE)

    def test_std_all(self):
        ss = self.ref.get("standardized_solution")
        if ss is None:
            return
        for p in ss:
            r = row(self.ours.estimates, p["lhs"], p["op"], p["rhs"], p.get("group", 1))
            assert_allclose(r["std.all"], p["est.std"], atol=ATOL_EST, err_msg=str(p))
