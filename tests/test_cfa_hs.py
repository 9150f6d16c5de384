"""Holzinger-Swineford CFA (refs case a, h and extra_lavaan.json) against lavaan 0.6-14."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from cfa_helpers import (ATOL_EST, HS_MODEL, RTOL_CHISQ, RTOL_SE, CheckAgainstLavaan, data,
                         mat, quiet, ref, row)
from instrument import cfa


def hs():
    return data("HolzingerSwineford1939.csv")


class TestHSMarker(CheckAgainstLavaan):
    @classmethod
    def setup_class(cls):
        cls.ours = quiet(cfa, HS_MODEL, hs())
        cls.ref = ref("a_hs_cfa.json")["ml"]

    def test_headline(self):
        fm = self.ours.fit_measures
        assert fm["npar"] == 21 and fm["df"] == 24 and fm["ntotal"] == 301
        assert self.ours.converged and self.ours.warnings == ()

    def test_vcov(self):
        v = self.ours.vcov
        assert list(v["name"]) == self.ref["vcov"]["rownames"]
        assert_allclose(v.drop(columns="name").to_numpy(), mat(self.ref["vcov"]), rtol=RTOL_SE,
                        atol=1e-9)

    def test_sample_and_implied(self):
        assert_allclose(self.ours.sample[0]["cov"], mat(self.ref["sample_cov_N"]), atol=1e-12)
        assert_allclose(self.ours.implied[0]["cov"], mat(self.ref["implied_cov"]), atol=ATOL_EST)

    def test_r2(self):
        r2 = self.ours.r2
        for k, v in self.ref["r2"].items():
            assert_allclose(r2[k], v, atol=ATOL_EST, err_msg=k)

    @pytest.mark.parametrize("typ,key", [("raw", "residual_cov_raw"),
                                         ("cor.bentler", "residual_cor_bentler"),
                                         ("cor.bollen", "residual_cor_bollen")])
    def test_residuals(self, typ, key):
        res = self.ours.residuals(typ)
        assert list(res["cov"].columns) == self.ref[key]["colnames"]
        assert_allclose(res["cov"].to_numpy(), mat(self.ref[key]), atol=ATOL_EST)

    def test_standardized_residuals(self):
        # off-diagonal z statistics; on the diagonal lavaan's value is (numerically zero) /
        # (numerically zero), which depends on how far the optimiser went
        z = self.ours.residuals("standardized")["cov"].to_numpy()
        zr = mat(self.ref["standardized_residuals_z"])
        off = ~np.eye(9, dtype=bool)
        assert_allclose(z[off], zr[off], rtol=RTOL_SE, atol=1e-4)

    def test_modindices(self):
        # lavaan modindices(): all 54 candidates (18 cross-loadings, 36 residual covariances)
        mi = self.ours.modindices()
        refmi = ref("h_extras.json")["modification_indices_all"]
        assert len(mi) == len(refmi) == 54
        for p in refmi:
            r = mi[(mi.lhs == p["lhs"]) & (mi.op == p["op"]) & (mi.rhs == p["rhs"])].iloc[0]
            # MIs are information-based like SEs: lavaan's looser optimum moves them ~1e-5
            for k in ("mi", "epc", "sepc.lv", "sepc.all", "sepc.nox"):
                assert_allclose(r[k], p[k], rtol=RTOL_SE, atol=1e-5, err_msg=f"{p['lhs']}{p['op']}{p['rhs']} {k}")
        top = ref("h_extras.json")["modification_indices_top5"]
        assert [f"{a}{o}{b}" for a, o, b in mi[["lhs", "op", "rhs"]].head(5).to_numpy()] == \
            [f"{p['lhs']}{p['op']}{p['rhs']}" for p in top]

    @pytest.mark.parametrize("method", ["regression", "Bartlett"])
    def test_factor_scores(self, method):
        fs = pd.read_csv(__import__("cfa_helpers").FIX / "h_hs_factor_scores.csv")
        ours = self.ours.factor_scores(hs(), method=method)
        for lv in ("visual", "textual", "speed"):
            assert_allclose(ours[lv].to_numpy(), fs[f"{lv}_{method.lower()}"].to_numpy(),
                            atol=ATOL_EST, err_msg=lv)


class TestHSStdLV(CheckAgainstLavaan):
    @classmethod
    def setup_class(cls):
        cls.ours = quiet(cfa, HS_MODEL, hs(), std_lv=True)
        cls.ref = ref("a_hs_cfa.json")["stdlv"]

    def test_lv_variances_fixed(self):
        r = row(self.ours.estimates, "visual", "~~", "visual")
        assert r["est"] == 1.0 and r["se"] == 0.0


class TestHSMeanstructure(CheckAgainstLavaan):
    @classmethod
    def setup_class(cls):
        cls.ours = quiet(cfa, HS_MODEL, hs(), meanstructure=True)
        cls.ref = ref("a_hs_cfa.json")["ml_meanstructure"]

    def test_intercepts_are_sample_means(self):
        m = hs()[["x1", "x2"]].mean().to_numpy()
        e = self.ours.estimates
        assert_allclose([row(e, "x1", "~1", "")["est"], row(e, "x2", "~1", "")["est"]], m,
                        atol=ATOL_EST)


class TestHSWishart(CheckAgainstLavaan):
    @classmethod
    def setup_class(cls):
        cls.ours = quiet(cfa, HS_MODEL, hs(), likelihood="wishart")
        cls.ref = ref("a_hs_cfa.json")["ml_wishart"]


def _extra_case(key, **kw):
    class _C(CheckAgainstLavaan):
        @classmethod
        def setup_class(cls):
            e = ref("extra_lavaan.json")[key]
            cls.ref = {"fit_measures": e["fit_measures"],
                       "parameter_estimates": [p for p in e["pe"] if p["op"] not in ("==",)],
                       "standardized_solution": [dict(p, **{"est.std": p["std.all"]})
                                                 for p in e["pe"] if p["op"] != "=="]}
            model = e.get("model", HS_MODEL)
            cls.ours = quiet(cfa, model, hs(), **kw)
    _C.__name__ = f"TestExtra_{key}"
    return _C


TestObservedInformation = _extra_case("observed", information="observed")
TestLabelsRegression = _extra_case("labels_regression")
TestFixedFree = _extra_case("fixed_free")
TestMultigroupMisc = _extra_case(
    "multigroup_misc", group="school",
    group_equal=("intercepts", "lv.variances", "residual.covariances", "lv.covariances"))


def test_modindices_multigroup_metric():
    """Two-group metric model: marker loadings get MIs (released in one group), as in lavaan."""
    fit = quiet(cfa, HS_MODEL, hs(), group="school", group_equal=("loadings",))
    mi = fit.modindices()
    refmi = ref("extra_lavaan.json")["mi_metric"]["mi"]
    assert len(mi) == len(refmi) == 114
    for p in refmi:
        r = mi[(mi.lhs == p["lhs"]) & (mi.op == p["op"]) & (mi.rhs == p["rhs"])
               & (mi.group == p["group"])].iloc[0]
        for k in ("mi", "epc", "sepc.lv", "sepc.all"):
            assert_allclose(r[k], p[k], rtol=RTOL_SE, atol=1e-4, err_msg=f"{p} {k}")


def test_chisq_wishart_relation():
    a = quiet(cfa, HS_MODEL, hs())
    w = quiet(cfa, HS_MODEL, hs(), likelihood="wishart")
    assert_allclose(w.fit_measures["chisq"], a.fit_measures["chisq"] * 300 / 301, rtol=RTOL_CHISQ)
