"""WLSMV CFA with ordered indicators against lavaan 0.6-14 (refs cases c and g)."""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from threadpoolctl import threadpool_limits

from instrument.sem.cfa import cfa

FIX = Path(__file__).parent / "fixtures" / "wlsmv"


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Small dense algebra: BLAS threads only oversubscribe the shared cores."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
RTOL_CHISQ, ATOL_EST, RTOL_SE = 1e-6, 1e-5, 1e-4
BFI_ITEMS = [f"{a}{i}" for a in "ACENO" for i in range(1, 6)]
BFI_MODEL = "\n".join(f"{a} =~ " + " + ".join(f"{a}{i}" for i in range(1, 6)) for a in "ACENO")


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


def merged(ours: pd.DataFrame, records: list, cols=("lhs", "op", "rhs")) -> pd.DataFrame:
    r = pd.DataFrame(records)
    r["rhs"] = r["rhs"].fillna("")
    if "group" not in r.columns:
        r["group"] = 1
    m = ours.merge(r, on=list(cols) + ["group"], suffixes=("", "_ref"))
    assert len(m) == len(r), (len(m), len(r))
    return m


class CheckWLSMV:
    """Subclasses set ``ours`` (CFAResult) and ``lav`` (lavaan fit record)."""

    fm_keys = ("npar", "chisq", "df", "chisq.scaled", "df.scaled", "chisq.scaling.factor",
               "baseline.chisq", "baseline.df", "baseline.chisq.scaled",
               "baseline.chisq.scaling.factor", "cfi", "tli", "cfi.scaled", "tli.scaled",
               "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.scaled",
               "rmsea.ci.lower.scaled", "rmsea.ci.upper.scaled", "nfi", "rfi", "ifi", "rni",
               "nfi.scaled", "rfi.scaled", "ifi.scaled", "rni.scaled",
               # robust (catML, Savalei 2021)
               "cfi.robust", "tli.robust", "nnfi.robust", "rni.robust", "rmsea.robust",
               "rmsea.ci.lower.robust", "rmsea.ci.upper.robust")

    def test_fit_measures(self):
        fm, lf = self.ours.fit_measures, self.lav["fit_measures"]
        for k in self.fm_keys:
            assert_allclose(fm[k], lf[k], rtol=RTOL_CHISQ, atol=1e-12, err_msg=k)

    def test_srmr(self):
        # residual-based: follows lavaan's optimiser tolerance (estimates atol 1e-5)
        for k in ("srmr", "srmr_bentler", "srmr_bentler_nomean", "rmr", "rmr_nomean", "crmr",
                  "crmr_nomean", "gfi", "agfi", "pgfi"):
            assert_allclose(self.ours.fit_measures[k], self.lav["fit_measures"][k], atol=1e-6,
                            err_msg=k)

    def test_other_chisq_based(self):
        for k in ("cn_05", "cn_01", "mfi", "wrmr", "fmin"):
            assert_allclose(self.ours.fit_measures[k], self.lav["fit_measures"][k],
                            rtol=RTOL_CHISQ, err_msg=k)

    def test_estimates(self):
        m = merged(self.ours.estimates, self.lav["parameter_estimates"])
        assert_allclose(m["est"], m["est_ref"], atol=ATOL_EST)

    def test_standard_errors(self):
        m = merged(self.ours.estimates, self.lav["parameter_estimates"])
        free = m["se_ref"] > 0
        assert free.sum() == self.lav["npar"]
        assert_allclose(m.loc[free, "se"], m.loc[free, "se_ref"], rtol=RTOL_SE)

    def test_standardized(self):
        m = merged(self.ours.estimates, self.lav["standardized_solution"])
        assert_allclose(m["std.all"], m["est.std"], atol=ATOL_EST)


class TestBfiWLSMV(CheckWLSMV):
    """refs case c: cfa(BFI_MODEL, bfi_cc, estimator = "WLSMV", ordered = BFI_ITEMS)."""

    @classmethod
    def setup_class(cls):
        cls.lav = ref("c_bfi_wlsmv.json")["wlsmv"]
        cls.ours = quiet(cfa, BFI_MODEL, data("bfi_complete25.csv"), ordered=BFI_ITEMS,
                         estimator="WLSMV")

    def test_headline(self):
        fm = self.ours.fit_measures
        # the README's rounded values
        assert abs(fm["chisq"] - 6055.940) < 6e-4
        assert abs(fm["chisq.scaled"] - 6049.275) < 6e-4
        assert abs(fm["chisq.scaling.factor"] - 1.01559) < 6e-6
        assert abs(self.ours.meta.options["test_info"]["shift.parameter"] - 86.302) < 6e-4
        assert abs(fm["cfi.scaled"] - 0.82446) < 6e-6
        assert abs(fm["rmsea.scaled"] - 0.09468) < 6e-6
        assert abs(fm["srmr"] - 0.08274) < 6e-6
        assert self.ours.converged

    def test_shift_parameter(self):
        t = self.lav["test"]["scaled.shifted"]
        assert_allclose(self.ours.meta.options["test_info"]["shift.parameter"],
                        t["shift.parameter"], rtol=RTOL_CHISQ)

    def test_thresholds_are_sample_thresholds(self):
        # saturated threshold structure: model thresholds equal qnorm(cumulative proportions)
        e = self.ours.estimates
        th = e[(e.lhs == "A1") & (e.op == "|")]["est"].to_numpy()
        x = data("bfi_complete25.csv")["A1"]
        from scipy.stats import norm
        cum = np.cumsum(x.value_counts().sort_index().to_numpy())[:-1] / len(x)
        assert_allclose(th, norm.ppf(cum), atol=1e-8)

    def test_meta_says_what_was_used(self):
        o = self.ours.meta.options
        assert o["estimator"] == "WLSMV" and o["parameterization"] == "delta"
        assert o["se"] == "robust.sem" and o["test"] == "scaled.shifted"

    def test_roundtrip(self):
        from instrument.sem.result import CFAResult
        back = CFAResult.from_dict(self.ours.to_dict())
        assert back.fit_measures["chisq.scaled"] == self.ours.fit_measures["chisq.scaled"]


def test_sim40_ordinal_scaled_chisq():
    """refs case g: 40 ordinal items (5 categories), N = 5000."""
    lav = ref("g_sim_wlsmv.json")["wlsmv"]
    d = data("sim_5f40i_n5000_ordinal5.csv")
    vn = [f"y{i}" for i in range(1, 41)]
    model = "\n".join(f"F{f + 1} =~ " + " + ".join(vn[f * 8:(f + 1) * 8]) for f in range(5))
    fit = quiet(cfa, model, d, ordered=vn)
    fm = fit.fit_measures
    for k in ("npar", "chisq", "chisq.scaled", "df", "cfi.scaled", "tli.scaled",
              "rmsea.scaled"):
        assert_allclose(fm[k], lav[k], rtol=RTOL_CHISQ, atol=1e-12, err_msg=k)
    assert_allclose(fm["srmr"], lav["srmr"], atol=1e-6)
    assert abs(fm["chisq.scaled"] - 720.577) < 6e-4
    assert "WLSMV" in fit.meta.options["why"]


def test_theta_parameterization_same_fit():
    """delta and theta parameterizations are equivalent in one group (same chi-square)."""
    d = data("bfi_complete25.csv")
    model = "A =~ A1 + A2 + A3 + A4 + A5"
    a = quiet(cfa, model, d, ordered=True, parameterization="delta")
    b = quiet(cfa, model, d, ordered=True, parameterization="theta")
    assert_allclose(a.fit_measures["chisq"], b.fit_measures["chisq"], rtol=1e-7)
    sa = a.estimates[a.estimates.op == "=~"]["std.all"].to_numpy()
    sb = b.estimates[b.estimates.op == "=~"]["std.all"].to_numpy()
    assert_allclose(sa, sb, atol=1e-6)
    # theta: residual variances fixed at 1, loadings larger by 1/sqrt(theta_delta)
    e = b.estimates
    assert (e[(e.op == "~~") & (e.lhs == "A2") & (e.rhs == "A2")]["est"] == 1.0).all()


def test_fiml_with_ordered_raises_clear_message():
    d = data("bfi_complete25.csv")
    with pytest.raises(ValueError, match="pairwise"):
        cfa("A =~ A1 + A2 + A3", d, ordered=True, missing="fiml")


def test_ml_with_ordered_raises():
    d = data("bfi_complete25.csv")
    with pytest.raises(ValueError, match="WLSMV"):
        cfa("A =~ A1 + A2 + A3", d, ordered=True, estimator="ML")


def test_bad_parameterization():
    d = data("bfi_complete25.csv")
    with pytest.raises(ValueError, match="parameterization= must be one of"):
        cfa("A =~ A1 + A2 + A3", d, ordered=True, parameterization="Theta")


@pytest.mark.parametrize("opts, msg", [
    ({"missing": "pair"}, "missing= must be one of 'pairwise', 'listwise' with ordered indicators; "
                          "got 'pair'."),
    ({"se": "robust"}, "se= must be one of 'robust.sem', 'none' with ordered indicators; got "
                       "'robust'."),
    ({"estimator": "DWLS"}, "estimator= must be one of 'WLSMV', 'ULSMV' for ordered indicators; "
                            "got 'DWLS'.")])
def test_ordinal_options_refused_in_one_line(opts, msg):
    d = data("bfi_complete25.csv")
    with pytest.raises(ValueError) as e:
        cfa("A =~ A1 + A2 + A3", d, ordered=True, **opts)
    assert str(e.value) == msg


def test_listwise_is_lavaans_default_and_warns_with_counts():
    d = data("bfi_complete25.csv")[["A1", "A2", "A3", "A4"]].copy()
    d.iloc[:40, 0] = np.nan
    with pytest.warns(UserWarning, match=rf"40 of {len(d)} rows \(2%\) .* dropped "
                                         r"\(missing='listwise'.*missing='pairwise' keeps them"):
        fit = cfa("A =~ A1 + A2 + A3 + A4", d, ordered=True)
    assert fit.meta.options["missing"] == "listwise"
    assert fit.fit_measures["ntotal"] == len(d) - 40
    fit2 = quiet(cfa, "A =~ A1 + A2 + A3 + A4", d, ordered=True, missing="pairwise")
    assert fit2.fit_measures["ntotal"] == len(d)


# ---------------------------------------------------------------------------------------------
# ULSMV, theta parameterization and missing = "pairwise" (extra_wlsmv_refs.json, lavaan 0.6-14)
# ---------------------------------------------------------------------------------------------

EXTRA_KEYS = ("npar", "chisq", "df", "chisq.scaled", "chisq.scaling.factor", "baseline.chisq",
              "baseline.chisq.scaled", "cfi", "tli", "cfi.scaled", "tli.scaled", "rmsea",
              "rmsea.scaled", "ntotal", "cfi.robust", "tli.robust", "rmsea.robust",
              "rmsea.ci.lower.robust", "rmsea.ci.upper.robust")
# ULS and theta-scale objectives are flatter: lavaan's nlminb stops ~3e-5 from the optimum
# (its chi-squares agree with ours to 1e-8)
ATOL_EST_FLAT = 1e-4
M3 = "A =~ A1 + A2 + A3 + A4 + A5\nC =~ C1 + C2 + C3 + C4 + C5\nN =~ N1 + N2 + N3 + N4 + N5"


@lru_cache(maxsize=None)
def extra_fit(kind: str):
    items3 = [i for i in BFI_ITEMS if i[0] in "ACN"]
    calls = {
        "ulsmv": lambda: cfa(BFI_MODEL, data("bfi_complete25.csv"), ordered=BFI_ITEMS,
                             estimator="ULSMV"),
        "theta": lambda: cfa(BFI_MODEL, data("bfi_complete25.csv"), ordered=BFI_ITEMS,
                             parameterization="theta"),
        "pairwise": lambda: cfa(M3, data("bfi.csv"), ordered=items3, missing="pairwise"),
    }
    return quiet(calls[kind])


@pytest.mark.parametrize("kind,atol", [("ulsmv", ATOL_EST_FLAT), ("theta", ATOL_EST_FLAT),
                                       ("pairwise", ATOL_EST)])
def test_extra_lavaan_fits(kind, atol):
    r = ref("extra_wlsmv_refs.json")[kind]
    fit = extra_fit(kind)
    for k in EXTRA_KEYS:
        assert_allclose(fit.fit_measures[k], r["fit_measures"][k], rtol=RTOL_CHISQ,
                        err_msg=f"{kind} {k}")
    assert_allclose(fit.fit_measures["srmr"], r["fit_measures"]["srmr"], atol=1e-6)
    assert_allclose(fit.meta.options["test_info"]["shift.parameter"], r["shift"], rtol=RTOL_CHISQ)
    m = merged(fit.estimates, r["parameter_estimates"])
    assert_allclose(m["est"], m["est_ref"], atol=atol)
    free = m["se_ref"] > 0
    assert_allclose(m.loc[free, "se"], m.loc[free, "se_ref"], rtol=RTOL_SE)
    s = merged(fit.estimates, r["std_all"])
    assert_allclose(s["std.all"], s["est.std"], atol=atol)


def test_summary_and_unsupported_methods():
    fit = extra_fit("pairwise")
    t = fit.summary()
    text = t.as_text()
    assert "Estimator WLSMV" in text and "pairwise" in text and "Why:" in text
    assert "cfi.scaled" in text and "chisq.scaled" in text
    for meth in ("residuals", "modindices", "standardized_solution"):
        with pytest.raises(NotImplementedError, match="WLSMV"):
            getattr(fit, meth)()
    # R² of the latent responses: 1 - residual variance (delta parameterization)
    e = fit.estimates
    th = e[(e.op == "~~") & (e.lhs == "A2") & (e.rhs == "A2")]["est"].iloc[0]
    assert_allclose(fit.r2["A2"], 1 - th, atol=1e-10)


def test_heywood_warning_delta():
    """Two-indicator factors: a computed residual variance 1 - lambda^2 psi goes negative."""
    d = data("bfi_complete25.csv")
    with pytest.warns(UserWarning, match="Heywood"):
        fit = cfa("A =~ A1 + A2\nC =~ C1 + C2", d, ordered=True)
    e = fit.estimates
    assert (e[(e.op == "~~") & (e.lhs == "A2") & (e.rhs == "A2")]["est"] < 0).all()


def test_sample_stats_cache_is_keyed_by_data():
    """Refits of the same data reuse the two-step statistics; changed data does not."""
    d = data("bfi_complete25.csv")[["A1", "A2", "A3", "A4"]].copy()
    a = quiet(cfa, "A =~ A1 + A2 + A3 + A4", d, ordered=True)
    b = quiet(cfa, "A =~ A1 + A2 + A3 + A4", d, ordered=True)
    assert a.fit_measures["chisq"] == b.fit_measures["chisq"]
    d.iloc[0, 0] = 6 if d.iloc[0, 0] != 6 else 1
    c = quiet(cfa, "A =~ A1 + A2 + A3 + A4", d, ordered=True)
    assert c.fit_measures["chisq"] != a.fit_measures["chisq"]
