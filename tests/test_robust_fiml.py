"""FIML (lavaan missing = "ml") and MLR + FIML on all 2800 bfi rows, against lavaan 0.6-14."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.sem.estimators.fiml import (FIMLObjective, fiml_baseline,
                                            fiml_loglik, fiml_mlr_vcov, fiml_moment_gradient,
                                            fiml_scores, missing_summary,
                                            srmr_bentler, MissingSummary)
from instrument.sem.samplestats import H1Result, missing_patterns
from tests.reference.fiml_slow import (em_saturated, fiml_baseline_yuan_bentler,
                                       fiml_corrected, fiml_h1_trace)
from instrument.sem.estimators.fiml_fast import observed_information_fast
from instrument.sem.estimators.mlr import mvnorm_scores
from instrument.sem.fit.cfi import cfi, tli
from instrument.sem.fit.rmsea import rmsea
from instrument.sem.test.yuan_bentler import yuan_bentler_mplus
from tests.reference.tiny_cfa import TinyCFA, memo, ref_rows

FIX = Path(__file__).parent / "fixtures" / "robust"
RTOL_CHISQ, RTOL_SE, TOL_HAND = 1e-6, 1e-4, 1e-8
# em_saturated follows lavaan's EM stopping rule, so the EM moments agree to rounding
ATOL_EM = 1e-10
ITEMS = [f"{a}{i}" for a in "ACENO" for i in range(1, 6)]


@lru_cache(maxsize=None)
def refs() -> dict:
    return json.loads((FIX / "robust_refs.json").read_text())


@lru_cache(maxsize=None)
def shared() -> dict:
    return json.loads((FIX / "shared_refs_subset.json").read_text())


@lru_cache(maxsize=None)
def bfi() -> np.ndarray:
    return pd.read_csv(FIX / "bfi.csv")[ITEMS].to_numpy(float)


@lru_cache(maxsize=None)
def patterns_h1():
    pat = missing_patterns(bfi())
    return pat, em_saturated(pat)


class TestBfiFIML:
    @classmethod
    def setup_class(cls):
        cls.pat, cls.h1 = patterns_h1()
        cls.ref = refs()["bfi_fiml"]
        cls.fm = shared()["c_bfi_cfa"]["fiml"]["fit_measures"]
        cls.m = TinyCFA(ref_rows(cls.ref["partable"]), ITEMS, meanstructure=True)
        cls.sigma, cls.mu = cls.m.implied(cls.m.x0)
        cls.obj = FIMLObjective(lambda x: [cls.m.implied(x)], lambda x: [cls.m.delta(x)],
                                [cls.pat])
        cls.E = memo("bfi_fiml_E", lambda: cls.obj.observed_information(cls.m.x0))

    def test_patterns(self):
        assert self.pat.npatterns == self.ref["npatterns"] == 87
        assert self.pat.n == 2800 and self.pat.n_empty == 0
        assert int(self.pat.counts.sum()) == 2800

    def test_logl(self):
        assert_allclose(fiml_loglik(self.pat, self.sigma, self.mu), self.fm["logl"],
                        rtol=RTOL_CHISQ * 1e-3)

    def test_unrestricted_logl_by_em(self):
        assert self.h1.converged
        assert_allclose(self.h1.logl, self.fm["unrestricted.logl"], rtol=RTOL_CHISQ * 1e-3)

    def test_em_moments(self):
        assert_allclose(self.h1.cov, np.array(self.ref["h1_cov"]["values"]), atol=ATOL_EM)
        assert_allclose(self.h1.mean, np.array(self.ref["h1_mean"]), atol=ATOL_EM)

    def test_chisq(self):
        chisq = 2 * (self.h1.logl - fiml_loglik(self.pat, self.sigma, self.mu))
        assert_allclose(chisq, 4674.26299033932, rtol=RTOL_CHISQ)
        assert_allclose(self.obj.fmin(self.m.x0, self.h1.logl), self.fm["fmin"], rtol=RTOL_CHISQ)

    def test_srmr_with_em_moments(self):
        assert_allclose(srmr_bentler(self.h1.cov, self.h1.mean, self.sigma, self.mu),
                        self.fm["srmr"], rtol=RTOL_CHISQ)
        assert_allclose(srmr_bentler(self.h1.cov, None, self.sigma, None),
                        self.fm["srmr_bentler_nomean"], rtol=RTOL_CHISQ)

    def test_baseline(self):
        b = fiml_baseline(self.pat)
        assert_allclose(2 * (self.h1.logl - b["logl"]), self.fm["baseline.chisq"], rtol=RTOL_CHISQ)
        assert b["df"] == self.fm["baseline.df"] == 300

    def test_gradient_is_zero_at_lavaan_estimates_and_matches_numeric(self):
        g = self.obj.gradient(self.m.x0)
        assert np.max(np.abs(g)) < 1e-4
        x1 = self.m.x0 + 0.01 * np.random.default_rng(7).standard_normal(self.m.x0.size)
        g1 = self.obj.gradient(x1)
        h = 1e-6
        idx = [0, 10, 30, 60, 84]
        num = [(self.obj.value(x1 + h * e) - self.obj.value(x1 - h * e)) / (2 * h)
               for e in np.eye(x1.size)[idx]]
        assert_allclose(g1[idx], num, rtol=1e-5, atol=1e-8)

    def test_moment_gradient_numeric(self):
        sig = self.sigma + 0.05 * np.eye(25)      # away from the optimum
        mu = self.mu + 0.05
        g = fiml_moment_gradient(self.pat, sig, mu)
        h = 1e-5
        f = lambda s_, m_: -fiml_loglik(self.pat, s_, m_) / self.pat.n  # noqa: E731
        e = np.zeros(25)
        e[3] = h
        assert_allclose(g[3], (f(sig, mu + e) - f(sig, mu - e)) / (2 * h), rtol=1e-6)
        E = np.zeros((25, 25))
        E[4, 0] = E[0, 4] = h                     # vech element (4, 0) is at position 4
        assert_allclose(g[25 + 4], (f(sig + E, mu) - f(sig - E, mu)) / (2 * h), rtol=1e-6)
        E = np.zeros((25, 25))
        E[2, 2] = h                               # (2, 2) is vech position 25 + 24 = 49
        assert_allclose(g[25 + 49], (f(sig + E, mu) - f(sig - E, mu)) / (2 * h), rtol=1e-6)

    def test_se_observed_information(self):
        se = np.sqrt(np.diag(self.obj.vcov(self.m.x0, information=self.E)))
        se_ref = np.array([r["se"] for r in ref_rows(self.ref["partable"]) if r["free"]])
        assert_allclose(se, se_ref, rtol=RTOL_SE)

    def test_observed_information_analytic_equals_numeric(self):
        E1 = self.E
        E2 = observed_information_fast(self.obj, self.m.x0)
        assert_allclose(E2, E1, rtol=1e-6, atol=1e-7)
        assert_allclose(np.diag(E1), self.ref["information_observed_diag"], rtol=1e-6)

    def test_fiml_corrected_robust_indices_v6(self):
        f = fiml_corrected([self.pat], [self.h1], [(self.sigma, self.mu)],
                           [self.m.delta(self.m.x0)], 265, version="V6")
        args = (f["XX3"], 265, f["XX3.null"], 300)
        kw = {"c": f["c.hat3"], "c_b": f["c.hat3.null"]}
        assert_allclose(cfi(*args, **kw), self.fm["cfi.robust"], rtol=RTOL_CHISQ)
        assert_allclose(tli(*args, **kw), self.fm["tli.robust"], rtol=RTOL_CHISQ)
        assert_allclose(rmsea(f["XX3"], 265, 2800, c=f["c.hat3"]), self.fm["rmsea.robust"],
                        rtol=RTOL_CHISQ)

    def test_scores_complete_rows_equal_complete_data_scores(self):
        sc = fiml_scores(self.pat, self.sigma, self.mu)
        complete = ~np.isnan(bfi()).any(axis=1)
        ref = mvnorm_scores(bfi()[complete], self.sigma, self.mu)
        assert_allclose(sc[complete[self.pat.kept]], ref, rtol=1e-10, atol=1e-12)
        assert_allclose(sc.sum(0) / 2800, -fiml_moment_gradient(self.pat, self.sigma, self.mu),
                        atol=1e-10)

    def test_h1_round_trip(self):
        back = H1Result.from_dict(json.loads(json.dumps(self.h1.to_dict())))
        assert_allclose(back.cov, self.h1.cov)
        assert back.iterations == self.h1.iterations
        assert "EM" in self.h1.summary().as_text()


class TestBfiFIMLMLR:
    @classmethod
    def setup_class(cls):
        cls.pat, cls.h1 = patterns_h1()
        cls.ref = refs()["bfi_fiml_mlr"]
        cls.fm = cls.ref["fit_measures"]
        m = TinyCFA(ref_rows(cls.ref["partable"]), ITEMS, meanstructure=True)
        cls.m = m
        cls.obj = FIMLObjective(lambda x: [m.implied(x)], lambda x: [m.delta(x)], [cls.pat])
        # the ML and MLR FIML estimates are the same numbers, so is the observed information
        assert_allclose(m.x0, TinyCFA(ref_rows(refs()["bfi_fiml"]["partable"]), ITEMS).x0)
        E = memo("bfi_fiml_E", lambda: cls.obj.observed_information(m.x0))
        cls.v = fiml_mlr_vcov(cls.obj, m.x0, information=E)
        s, mu = m.implied(m.x0)
        cls.chisq = 2 * (cls.h1.logl - fiml_loglik(cls.pat, s, mu))
        tr, nd = fiml_h1_trace(cls.pat, cls.h1)
        cls.yb = yuan_bentler_mplus(cls.chisq, 265, h1_traces=[tr], h1_ndat=[nd],
                                    information_inv=cls.v.information_inv,
                                    B0_group=cls.v.B0_group, nobs=[cls.pat.n])

    def test_se(self):
        se_ref = np.array([r["se"] for r in ref_rows(self.ref["partable"]) if r["free"]])
        assert_allclose(self.v.se, se_ref, rtol=RTOL_SE)

    def test_scaling_factor(self):
        t = self.ref["test"]["yuan.bentler.mplus"]
        assert_allclose(self.yb.scaling_factor, t["scaling.factor"], rtol=RTOL_CHISQ)
        assert_allclose(self.yb.chisq_scaled, t["stat"], rtol=RTOL_CHISQ)
        assert_allclose(self.yb.scaling_factor_h1, t["scaling.factor.h1"], rtol=RTOL_CHISQ)

    def test_baseline_scaling_factor(self):
        b = fiml_baseline_yuan_bentler([self.pat], [self.h1])
        assert_allclose(b.chisq, self.fm["baseline.chisq"], rtol=RTOL_CHISQ)
        assert_allclose(b.scaling_factor, self.fm["baseline.chisq.scaling.factor"],
                        rtol=RTOL_CHISQ)

    def test_fiml_corrected_robust_indices_v3(self):
        s, mu = self.m.implied(self.m.x0)
        f = fiml_corrected([self.pat], [self.h1], [(s, mu)], [self.m.delta(self.m.x0)], 265,
                           version="V3")
        args = (f["XX3"], 265, f["XX3.null"], 300)
        kw = {"c": f["c.hat3"], "c_b": f["c.hat3.null"]}
        assert_allclose(cfi(*args, **kw), self.fm["cfi.robust"], rtol=RTOL_CHISQ)
        assert_allclose(tli(*args, **kw), self.fm["tli.robust"], rtol=RTOL_CHISQ)
        assert_allclose(rmsea(f["XX3"], 265, 2800, c=f["c.hat3"]), self.fm["rmsea.robust"],
                        rtol=RTOL_CHISQ)


def test_missing_summary_coverage_matches_lavaan():
    d = pd.read_csv(FIX / "bfi.csv")[ITEMS]
    s = missing_summary(d)
    cov = refs()["bfi_fiml"]["coverage"]
    assert_allclose(s.coverage.to_numpy(), np.array(cov["values"]), rtol=TOL_HAND)
    assert list(s.coverage.columns) == cov["colnames"]
    assert int(s.patterns["n"].sum()) == 2800 and len(s.patterns) == 87
    assert s.patterns["n"].is_monotonic_decreasing
    assert s.patterns.iloc[0][ITEMS].sum() == 25          # complete cases first
    assert int(s.patterns["n"].iloc[0]) == 2436
    assert_allclose(s.items["coverage"], np.diag(np.array(cov["values"])))
    back = MissingSummary.from_dict(json.loads(json.dumps(s.to_dict())))
    pd.testing.assert_frame_equal(back.coverage, s.coverage)
    pd.testing.assert_frame_equal(back.patterns, s.patterns)
    assert "87 missing-data patterns in 2800 rows" in s.summary().as_text()
    with pytest.raises(ValueError, match="columns not in the data"):
        missing_summary(d, names=["A1", "Z9"])


def test_empty_rows_are_dropped_and_bad_input_rejected():
    X = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, np.nan], [2.0, 1.0]])
    pat = missing_patterns(X)
    assert pat.n == 3 and pat.n_empty == 1 and pat.kept.tolist() == [0, 2, 3]
    with pytest.raises(ValueError, match="2-d"):
        missing_patterns(np.ones(3))
    with pytest.raises(ValueError, match="infinite"):
        missing_patterns(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="version="):
        fiml_corrected([pat], [], [], [], 1, version="V4")


def test_em_on_complete_data_is_sample_moments():
    X = np.random.default_rng(3).standard_normal((50, 3))
    h1 = em_saturated(missing_patterns(X))
    assert_allclose(h1.mean, X.mean(0), atol=1e-12)
    assert_allclose(h1.cov, np.cov(X.T, bias=True), atol=1e-12)


def test_expected_information_complete_data_equals_mlr_expected():
    from instrument.sem.estimators.fiml import fiml_h1_information_expected
    from instrument.sem.estimators.mlr import h1_information_expected
    X = np.random.default_rng(5).standard_normal((40, 4))
    s = np.cov(X.T, bias=True) + 0.1 * np.eye(4)
    assert_allclose(fiml_h1_information_expected(missing_patterns(X), s),
                    h1_information_expected(s, meanstructure=True), rtol=1e-12, atol=1e-14)


def test_expected_information_close_to_observed_at_estimates():
    # at the ML estimates of a well-fitting model the two informations are close, and the
    # expected one is positive definite (usable for Fisher scoring)
    pat, _ = patterns_h1()
    m = TinyCFA(ref_rows(refs()["bfi_fiml"]["partable"]), ITEMS, meanstructure=True)
    obj = FIMLObjective(lambda x: [m.implied(x)], lambda x: [m.delta(x)], [pat])
    Ee = obj.expected_information(m.x0)
    Eo = memo("bfi_fiml_E", lambda: obj.observed_information(m.x0))
    assert np.all(np.linalg.eigvalsh(Ee) > 0)
    se_e, se_o = np.sqrt(np.diag(np.linalg.inv(Ee))), np.sqrt(np.diag(np.linalg.inv(Eo)))
    assert np.max(np.abs(se_e / se_o - 1)) < 0.2
