"""MLR (Huber-White SEs, Yuan-Bentler Mplus test, robust fit indices) against lavaan 0.6-14.

The engine is not used: implied moments and Jacobians come from lavaan's own estimates through
the tiny LISREL model in tests/reference/tiny_cfa.py.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.sem.estimators.mlr import (MLRVcov, h1_information_firstorder,
                                           h1_information_observed, vech, vech_indices)
from tests.reference.mlr_slow import RobustGroup, gamma_adf, mlr_vcov
from instrument.sem.fit.measures import fit_indices_scaled
from instrument.sem.test.yuan_bentler import YuanBentlerResult, baseline_yuan_bentler_complete
from tests.reference.robust_adapters import yuan_bentler_mplus_complete
from tests.reference.tiny_cfa import TinyCFA, ref_rows

FIX = Path(__file__).parent / "fixtures" / "robust"
RTOL_CHISQ, RTOL_SE, TOL_HAND = 1e-6, 1e-4, 1e-8   # shared/refs/README.md, "Suggested tolerances"
HS_OV = [f"x{i}" for i in range(1, 10)]
BFI_OV = [f"{a}{i}" for a in "ACENO" for i in range(1, 6)]


@lru_cache(maxsize=None)
def refs() -> dict:
    return json.loads((FIX / "robust_refs.json").read_text())


@lru_cache(maxsize=None)
def shared() -> dict:
    return json.loads((FIX / "shared_refs_subset.json").read_text())


def mat(d) -> np.ndarray:
    return np.array(d["values"], dtype=float)


def chisq_ml(X, sigma, mu=None):
    n, p = X.shape
    ybar = X.mean(0)
    S = np.cov(X.T, bias=True)
    P = np.linalg.inv(sigma)
    d = ybar - (ybar if mu is None else mu)
    return n * (np.linalg.slogdet(sigma)[1] + np.trace(S @ P) + d @ P @ d
                - np.linalg.slogdet(S)[1] - p)


def fit_single(X, rows, ov, df, *, cluster=None):
    ms = any(r["op"] == "~1" and r["free"] for r in rows)
    m = TinyCFA(rows, ov, meanstructure=ms)
    s, mu = m.implied(m.x0)
    g = RobustGroup(X, s, mu if ms else None, m.delta(m.x0), cluster=cluster)
    v = mlr_vcov([g], delta_fn=lambda x: [m.delta(x)], x=m.x0)
    chisq = chisq_ml(X, s, mu if ms else None)
    yb = yuan_bentler_mplus_complete([g], chisq, df, mlr=v)
    b = baseline_yuan_bentler_complete([X], meanstructure=ms, clusters=[cluster])
    fm = fit_indices_scaled(chisq, df, b.chisq, b.df, scaling_factor=yb.scaling_factor,
                            baseline_scaling_factor=b.scaling_factor, n=X.shape[0])
    se_ref = np.array([r["se"] for r in rows if r["free"]])
    return {"vcov": v, "yb": yb, "baseline": b, "fm": fm, "se_ref": se_ref, "model": m}


class CheckMLR:
    """Subclasses set ``ours`` (dict from fit_single) and ``ref_fm``/``ref_test``."""

    fm_keys = ("chisq.scaled", "chisq.scaling.factor", "baseline.chisq.scaled",
               "baseline.chisq.scaling.factor", "cfi.scaled", "tli.scaled", "cfi.robust",
               "tli.robust", "rmsea.scaled", "rmsea.robust", "rmsea.ci.lower.robust",
               "rmsea.ci.upper.robust")

    def test_se(self):
        assert_allclose(self.ours["vcov"].se, self.ours["se_ref"], rtol=RTOL_SE)

    def test_scaling_factor(self):
        assert_allclose(self.ours["yb"].scaling_factor, self.ref_test["scaling.factor"],
                        rtol=RTOL_CHISQ)

    def test_scaling_factor_parts(self):
        assert_allclose(self.ours["yb"].scaling_factor_h1, self.ref_test["scaling.factor.h1"],
                        rtol=RTOL_CHISQ)
        assert_allclose(self.ours["yb"].scaling_factor_h0, self.ref_test["scaling.factor.h0"],
                        rtol=RTOL_CHISQ)
        assert_allclose(self.ours["yb"].trace_UGamma, self.ref_test["trace.UGamma"],
                        rtol=RTOL_CHISQ)

    def test_chisq_scaled(self):
        assert_allclose(self.ours["yb"].chisq_scaled, self.ref_test["stat"], rtol=RTOL_CHISQ)

    def test_fit_measures(self):
        for k in self.fm_keys:
            if k in self.ref_fm and self.ref_fm[k] not in (None, 0):
                assert_allclose(self.ours["fm"][k], self.ref_fm[k], rtol=RTOL_CHISQ, err_msg=k)


class TestHSMLR(CheckMLR):
    @classmethod
    def setup_class(cls):
        X = pd.read_csv(FIX / "HolzingerSwineford1939.csv")[HS_OV].to_numpy(float)
        cls.X = X
        cls.ours = fit_single(X, ref_rows(refs()["hs_mlr"]["partable"]), HS_OV, 24)
        cls.ref_fm = shared()["a_hs_cfa"]["mlr"]["fit_measures"]
        cls.ref_test = shared()["a_hs_cfa"]["mlr"]["test"]["yuan.bentler.mplus"]

    def test_headline_numbers(self):
        # README case a: c = 0.979042, scaled 87.13160, cfi.robust .929864, rmsea.robust .092499
        assert_allclose(self.ours["yb"].scaling_factor, 0.979042258766103, rtol=RTOL_CHISQ)
        assert_allclose(self.ours["fm"]["cfi.robust"], 0.929863935696168, rtol=RTOL_CHISQ)
        assert_allclose(self.ours["fm"]["rmsea.robust"], 0.0924986213715963, rtol=RTOL_CHISQ)
        assert_allclose(self.ours["fm"]["tli.robust"], 0.894795903544252, rtol=RTOL_CHISQ)

    def test_se_against_case_a_table(self):
        pe = [r for r in shared()["a_hs_cfa"]["mlr"]["parameter_estimates"]
              if r["op"] in ("=~", "~~") and r["se"] not in (None, 0)]
        names = self.ours["model"].names
        se = dict(zip(names, self.ours["vcov"].se))
        for r in pe:
            assert_allclose(se[f"{r['lhs']}{r['op']}{r['rhs']}"], r["se"], rtol=RTOL_SE)

    def test_information_observed(self):
        assert_allclose(self.ours["vcov"].information,
                        mat(refs()["hs_mlr"]["information_observed"]), rtol=1e-6, atol=1e-9)

    def test_information_first_order(self):
        assert_allclose(self.ours["vcov"].B0, mat(refs()["hs_mlr"]["information_first_order"]),
                        rtol=1e-8, atol=1e-12)

    def test_h1_matrices_structured(self):
        s, _ = self.ours["model"].implied(self.ours["model"].x0)
        ybar = self.X.mean(0)
        S = np.cov(self.X.T, bias=True)
        A1 = h1_information_observed(s, None, S, ybar, meanstructure=False)
        B1 = h1_information_firstorder(self.X, s, ybar, meanstructure=False)
        assert_allclose(A1, mat(refs()["hs_mlr"]["h1_information_observed"]), rtol=TOL_HAND,
                        atol=1e-12)
        assert_allclose(B1, mat(refs()["hs_mlr"]["h1_information_first_order"]), rtol=TOL_HAND,
                        atol=1e-12)

    def test_gamma(self):
        assert_allclose(gamma_adf(self.X), mat(refs()["hs_mlr"]["gamma"]), rtol=TOL_HAND,
                        atol=1e-12)

    def test_vcov_round_trip_and_summary(self):
        v = self.ours["vcov"]
        back = MLRVcov.from_dict(json.loads(json.dumps(v.to_dict())))
        assert_allclose(back.vcov, v.vcov)
        assert back.B0_group[0].shape == v.B0_group[0].shape
        assert "Huber-White" in v.summary(self.ours["model"].names).as_text()
        yb = self.ours["yb"]
        assert YuanBentlerResult.from_dict(json.loads(json.dumps(yb.to_dict()))) == yb
        assert "chisq.scaled" in yb.summary().as_markdown()


class TestHSMLRMeanstructure(CheckMLR):
    @classmethod
    def setup_class(cls):
        X = pd.read_csv(FIX / "HolzingerSwineford1939.csv")[HS_OV].to_numpy(float)
        r = refs()["hs_mlr_meanstructure"]
        cls.ours = fit_single(X, ref_rows(r["partable"]), HS_OV, 24)
        cls.ref_fm = r["fit_measures"]
        cls.ref_test = r["test"]["yuan.bentler.mplus"]


class TestBfiMLR(CheckMLR):
    @classmethod
    def setup_class(cls):
        d = pd.read_csv(FIX / "bfi.csv")[BFI_OV].dropna().to_numpy(float)
        assert d.shape == (2436, 25)
        c = shared()["c_bfi_cfa"]["mlr"]
        cls.ours = fit_single(d, ref_rows(c["parameter_estimates"]), BFI_OV, 265)
        cls.ref_fm = c["fit_measures"]
        cls.ref_test = c["test"]["yuan.bentler.mplus"]

    def test_headline_numbers(self):
        # README case c: c = 1.15317, robust CFI .78394, robust RMSEA .07733
        assert_allclose(self.ours["yb"].scaling_factor, 1.15317337240461, rtol=RTOL_CHISQ)
        assert_allclose(self.ours["fm"]["cfi.robust"], 0.783936768595219, rtol=RTOL_CHISQ)
        assert_allclose(self.ours["fm"]["rmsea.robust"], 0.0773259252471991, rtol=RTOL_CHISQ)


class TestClusterMLR(CheckMLR):
    """lavaan ``cfa(..., estimator = "MLR", cluster = "school")`` (se = "robust.cluster")."""

    @classmethod
    def setup_class(cls):
        sim = pd.read_csv(FIX / "sim_cluster.csv")
        r = refs()["cluster_mlr"]
        cls.ours = fit_single(sim[HS_OV].to_numpy(float), ref_rows(r["partable"]), HS_OV, 24,
                              cluster=sim["school"].to_numpy())
        cls.ref_fm = r["fit_measures"]
        cls.ref_test = r["test"]["yuan.bentler.mplus"]

    def test_clustering_matters(self):
        # the naive (unclustered) sandwich differs from lavaan's cluster-robust SEs
        sim = pd.read_csv(FIX / "sim_cluster.csv")
        naive = fit_single(sim[HS_OV].to_numpy(float), ref_rows(refs()["cluster_mlr"]["partable"]),
                           HS_OV, 24)
        assert np.max(np.abs(naive["vcov"].se / self.ours["se_ref"] - 1)) > 0.05


class TestHSConfiguralMLR:
    """Two-group configural model (case b): our own scaling factor and robust indices."""

    @classmethod
    def setup_class(cls):
        hs = pd.read_csv(FIX / "HolzingerSwineford1939.csv")
        pe = shared()["b_hs_invariance"]["ML_parameter_estimates_configural"]
        groups, models, blocks = [], [], []
        for gi, school in ((1, "Pasteur"), (2, "Grant-White")):
            X = hs.loc[hs["school"] == school, HS_OV].to_numpy(float)
            m = TinyCFA(ref_rows(pe, group=gi), HS_OV, meanstructure=True)
            s, mu = m.implied(m.x0)
            models.append(m)
            blocks.append(X)
            groups.append(RobustGroup(X, s, mu, None))
        nx = [m.x0.size for m in models]

        def delta_fn(x):
            out, off = [], 0
            for m, k in zip(models, nx):
                D = np.zeros((m.delta(m.x0).shape[0], sum(nx)))
                D[:, off:off + k] = m.delta(x[off:off + k])
                out.append(D)
                off += k
            return out

        x0 = np.concatenate([m.x0 for m in models])
        groups = [RobustGroup(g.data, g.sigma, g.mu, D) for g, D in zip(groups, delta_fn(x0))]
        v = mlr_vcov(groups, delta_fn=delta_fn, x=x0)
        chisq_g = [chisq_ml(g.data, g.sigma, g.mu) for g in groups]
        cls.yb = yuan_bentler_mplus_complete(groups, sum(chisq_g), 48, mlr=v, chisq_group=chisq_g)
        b = baseline_yuan_bentler_complete(blocks, meanstructure=True)
        cls.fm = fit_indices_scaled(sum(chisq_g), 48, b.chisq, b.df,
                                    scaling_factor=cls.yb.scaling_factor,
                                    baseline_scaling_factor=b.scaling_factor, n=301, ngroups=2)
        cls.ref = shared()["b_hs_invariance"]["MLR"]["fit"]["configural"]

    def test_chisq(self):
        assert_allclose(self.yb.chisq, self.ref["chisq"], rtol=RTOL_CHISQ)

    def test_scaling_factor(self):
        assert_allclose(self.yb.scaling_factor, self.ref["chisq.scaling.factor"], rtol=RTOL_CHISQ)
        assert_allclose(self.yb.chisq_scaled, self.ref["chisq.scaled"], rtol=RTOL_CHISQ)

    def test_robust_indices(self):
        for k in ("cfi.scaled", "tli.scaled", "rmsea.scaled", "cfi.robust", "tli.robust",
                  "rmsea.robust"):
            assert_allclose(self.fm[k], self.ref[k], rtol=RTOL_CHISQ, err_msg=k)


def test_vech_order_is_lavaans():
    r, c = vech_indices(3)
    assert list(zip(r.tolist(), c.tolist())) == [(0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (2, 2)]
    a = np.arange(9.0).reshape(3, 3)
    assert vech(a).tolist() == [0.0, 3.0, 6.0, 4.0, 7.0, 8.0]


def test_mlr_vcov_rejects_missing_data_and_missing_delta():
    X = np.random.default_rng(1).standard_normal((20, 2))
    with pytest.raises(ValueError, match="no delta"):
        mlr_vcov([RobustGroup(X, np.eye(2))])
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="contain NaN"):
        mlr_vcov([RobustGroup(X, np.eye(2), None, np.eye(3))])
