"""`cfa()` end to end with estimator="MLR", missing="fiml" and cluster= against lavaan 0.6-14.

Fixtures in tests/fixtures/mlrfiml (see SOURCE.md): the shared refs cases a (HS MLR), b (HS MLR
invariance ladder), c (bfi MLR and FIML), the robust helper's lavaan runs (bfi FIML/MLR-FIML,
cluster MLR) and this area's own runs (make_mlrfiml_refs.R: two-group FIML, two-group MLR-FIML,
two-group cluster MLR, cluster MLR-FIML).
"""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from instrument.sem.cfa import cfa
from instrument.sem.result import CFAResult
from instrument.sem.estimators.fiml import fiml_h1_information_observed
from instrument.sem.samplestats import missing_patterns
from tests.reference.fiml_slow import (em_saturated, fiml_corrected)
from instrument.sem.estimators.fiml_fast import fiml_corrected_fast, h1_information_observed_fast
from instrument.sem.test.satorra_bentler import satorra_bentler_2001

FIX = Path(__file__).parent / "fixtures" / "mlrfiml"
# shared/refs/README.md, "Suggested tolerances"
RTOL_CHISQ, ATOL_EST, RTOL_SE = 1e-6, 1e-5, 1e-4
# p-values of 1e-4..1e-9 and indices that move to first order with the estimates (SRMR, the
# robust RMSEA CI through c) inherit lavaan's optimiser tolerance (~1e-5 relative): rtol 1e-4
RTOL_SENSITIVE = 1e-4
# lavaan's nlminb stops short of the optimum on bfi (our logl is higher, see
# test_logl_at_least_lavaans); its bfi estimates (loadings up to 2) agree with ours to 2e-5
ATOL_EST_FIML = 5e-5
SENSITIVE = ("pvalue", "pvalue.scaled", "rmsea.pvalue", "rmsea.pvalue.scaled",
             "rmsea.pvalue.robust", "rmsea.notclose.pvalue", "rmsea.notclose.pvalue.scaled",
             "rmsea.notclose.pvalue.robust", "srmr", "srmr_bentler", "srmr_bentler_nomean",
             "rmsea.ci.lower.robust", "rmsea.ci.upper.robust", "baseline.pvalue",
             "baseline.pvalue.scaled")
# lavaan's FIML-corrected robust indices (Zhang & Savalei) use the EM moments, which lavaan
# stops at a looser tolerance (its h1 moments agree with ours to ~1e-7)
FIML_CORRECTED = ("cfi.robust", "tli.robust", "nnfi.robust", "rni.robust", "rmsea.robust")
# fitMeasures() that the ML engine does not compute (not part of this area)
NOT_COMPUTED = ("rmr", "rmr_nomean", "crmr", "crmr_nomean", "srmr_mplus", "srmr_mplus_nomean",
                "cn_05", "cn_01", "gfi", "agfi", "pgfi", "mfi", "ecvi")
HS_MODEL = """
  visual  =~ x1 + x2 + x3
  textual =~ x4 + x5 + x6
  speed   =~ x7 + x8 + x9
"""
BFI_MODEL = "\n".join(f"{a} =~ " + " + ".join(f"{a}{i}" for i in range(1, 6)) for a in "ACENO")
BFI_ITEMS = [f"{a}{i}" for a in "ACENO" for i in range(1, 6)]
MLR_NAMES = ("chisq.scaled", "df.scaled", "pvalue.scaled", "chisq.scaling.factor",
             "baseline.chisq.scaled", "baseline.df.scaled", "baseline.pvalue.scaled",
             "baseline.chisq.scaling.factor", "cfi.scaled", "tli.scaled", "nnfi.scaled",
             "rmsea.scaled", "rmsea.ci.lower.scaled", "rmsea.ci.upper.scaled",
             "rmsea.pvalue.scaled", "cfi.robust", "tli.robust", "nnfi.robust", "rmsea.robust",
             "rmsea.ci.lower.robust", "rmsea.ci.upper.robust", "rmsea.pvalue.robust")


@lru_cache(maxsize=None)
def ref(name: str) -> dict:
    return json.loads((FIX / name).read_text())


@lru_cache(maxsize=None)
def data(name: str) -> pd.DataFrame:
    return pd.read_csv(FIX / name)


def sim_cluster() -> pd.DataFrame:
    d = data("sim_cluster.csv").copy()
    d["grp"] = np.where(d["school"] % 2 == 0, "even", "odd")   # as make_mlrfiml_refs.R
    return d


@lru_cache(maxsize=None)
def fit(key: str) -> CFAResult:
    """Cached fits shared by the test classes (each cfa() call runs once per session)."""
    specs = {
        "hs_mlr": (HS_MODEL, lambda: data("HolzingerSwineford1939.csv"), dict(estimator="MLR")),
        "hs_mlr_ms": (HS_MODEL, lambda: data("HolzingerSwineford1939.csv"),
                      dict(estimator="MLR", meanstructure=True)),
        "bfi_mlr": (BFI_MODEL, lambda: data("bfi.csv"), dict(estimator="MLR")),
        "bfi_fiml": (BFI_MODEL, lambda: data("bfi.csv"), dict(missing="fiml")),
        "bfi_fiml_mlr": (BFI_MODEL, lambda: data("bfi.csv"),
                         dict(missing="fiml", estimator="MLR")),
        "cluster_mlr": (HS_MODEL, sim_cluster, dict(estimator="MLR", cluster="school")),
        "hs_fiml_2g_metric": (HS_MODEL, lambda: data("hs_mcar8.csv"),
                              dict(group="school", group_equal="loadings", missing="fiml")),
        "hs_fiml_mlr_2g_metric": (HS_MODEL, lambda: data("hs_mcar8.csv"),
                                  dict(group="school", group_equal="loadings", missing="fiml",
                                       estimator="MLR")),
        "cluster_mlr_2g_metric": (HS_MODEL, sim_cluster,
                                  dict(group="grp", group_equal="loadings", cluster="school",
                                       estimator="MLR")),
        "cluster_mlr_fiml": (HS_MODEL, lambda: data("sim_cluster_mcar8.csv"),
                             dict(cluster="school", estimator="MLR", missing="fiml")),
    }
    hs = lambda: data("HolzingerSwineford1939.csv")  # noqa: E731
    specs.update({                          # se= and test= apart from the estimator
        "ml_robust_se": (HS_MODEL, hs, dict(se="robust.huber.white")),
        "ml_robust_se_expected": (HS_MODEL, hs, dict(se="robust.huber.white",
                                                     information="expected")),
        "ml_yb_test": (HS_MODEL, hs, dict(test="yuan.bentler.mplus")),
        "mlr_se_standard": (HS_MODEL, hs, dict(estimator="MLR", se="standard")),
        "mlr_se_standard_2g_metric": (HS_MODEL, hs, dict(estimator="MLR", se="standard",
                                                         group="school",
                                                         group_equal=("loadings",))),
        "fiml_robust_se": (HS_MODEL, lambda: data("hs_mcar8.csv"),
                           dict(missing="fiml", se="robust.huber.white")),
        "fiml_mlr_se_standard": (HS_MODEL, lambda: data("hs_mcar8.csv"),
                                 dict(missing="fiml", estimator="MLR", se="standard")),
    })
    for step, ge in (("configural", ()), ("metric", ("loadings",)),
                     ("scalar", ("loadings", "intercepts"))):
        specs[f"hs_mlr_{step}"] = (HS_MODEL, lambda: data("HolzingerSwineford1939.csv"),
                                   dict(estimator="MLR", group="school", group_equal=ge))
    model, d, kw = specs[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cfa(model, d(), **kw)


def _rows(est: pd.DataFrame, records):
    """Pair our estimates with lavaan parameter rows (free ones, or all with an se)."""
    out = []
    for r in records:
        if r["op"] not in ("=~", "~~", "~1"):
            continue
        g = r.get("group", 1) or 1
        m = est[(est["lhs"] == r["lhs"]) & (est["op"] == r["op"]) & (est["rhs"] == r["rhs"])
                & (est["group"] == g)]
        assert len(m) == 1, r
        out.append((m.iloc[0], r))
    return out


class CheckLavaanFit:
    """Subclasses set ``key`` (a `fit` key), ``ref_fm`` (lavaan fitMeasures) and ``ref_par``
    (lavaan parameter records with est and se)."""

    atol_est = ATOL_EST
    names: tuple = ()            # fit measures that must be present
    sensitive: tuple = ()        # further fit measures compared at RTOL_SENSITIVE

    @property
    def ours(self) -> CFAResult:
        return fit(self.key)

    def test_converged(self):
        assert self.ours.converged

    def test_fit_measures(self):
        fm = self.ours.fit_measures
        n = 0
        for k, v in self.ref_fm.items():
            if v is None or k in NOT_COMPUTED or k in ("rmsea.ci.level", "rmsea.close.h0",
                                                       "rmsea.notclose.h0"):
                continue
            assert k in fm, f"fit measure {k} missing"
            rtol = RTOL_SENSITIVE if k in SENSITIVE + self.sensitive else RTOL_CHISQ
            assert_allclose(fm[k], v, rtol=rtol, atol=1e-10, err_msg=k)
            n += 1
        assert n >= 20

    def test_names_present(self):
        from instrument.sem.fit import check_names
        check_names(self.ours.fit_measures)          # only lavaan's fitMeasures() names
        for k in self.names:
            assert np.isfinite(self.ours.fit_measures[k]), k

    def test_estimates_and_se(self):
        pairs = _rows(self.ours.estimates, self.ref_par)
        assert len(pairs) >= 20
        for ours, r in pairs:
            assert_allclose(ours["est"], r["est"], atol=self.atol_est,
                            err_msg=f"{r['lhs']}{r['op']}{r['rhs']}")
            if r["se"]:
                assert_allclose(ours["se"], r["se"], rtol=RTOL_SE,
                                err_msg=f"se {r['lhs']}{r['op']}{r['rhs']}")

    def test_round_trip(self):
        f = self.ours
        back = CFAResult.from_dict(json.loads(json.dumps(f.to_dict())))
        assert back == f


# ------------------------------------------------------------------------------------- MLR
class TestHSMLR(CheckLavaanFit):
    key = "hs_mlr"
    names = MLR_NAMES
    ref_fm = ref("shared_refs_subset.json")["a_hs_cfa"]["mlr"]["fit_measures"]
    ref_par = ref("shared_refs_subset.json")["a_hs_cfa"]["mlr"]["parameter_estimates"]

    def test_headline(self):
        fm = self.ours.fit_measures
        t = ref("shared_refs_subset.json")["a_hs_cfa"]["mlr"]["test"]["yuan.bentler.mplus"]
        assert_allclose(fm["chisq"], 85.3055217699727, rtol=RTOL_CHISQ)     # stays unscaled
        assert_allclose(fm["chisq.scaling.factor"], t["scaling.factor"], rtol=RTOL_CHISQ)
        assert_allclose(fm["chisq.scaled"], t["stat"], rtol=RTOL_CHISQ)
        assert_allclose(fm["chisq.scaling.factor"] * fm["df"], t["trace.UGamma"], rtol=RTOL_CHISQ)
        from instrument.sem.fit import check_names
        check_names(self.ours.fit_measures)          # only lavaan's fitMeasures() names
        assert_allclose(fm["cfi.robust"], 0.929863935696168, rtol=RTOL_CHISQ)
        assert self.ours.meta.options["se"] == "robust.huber.white"
        assert self.ours.meta.options["information"] == "observed"

    def test_mlr_se_differ_from_ml(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ml = cfa(HS_MODEL, data("HolzingerSwineford1939.csv"))
        assert_allclose(ml.estimates["est"], self.ours.estimates["est"], atol=1e-8)
        free = ml.estimates["se"] > 0
        assert np.max(np.abs(ml.estimates["se"][free] / self.ours.estimates["se"][free] - 1)) > .05


class TestHSMLRMeanstructure(CheckLavaanFit):
    key = "hs_mlr_ms"
    names = MLR_NAMES
    ref_fm = ref("robust_refs_subset.json")["hs_mlr_meanstructure"]["fit_measures"]
    ref_par = [r for r in ref("robust_refs_subset.json")["hs_mlr_meanstructure"]["partable"]
               if r["free"] > 0]


class TestBfiMLR(CheckLavaanFit):
    """bfi, 25 items, listwise (N = 2436), MLR (refs case c)."""

    key = "bfi_mlr"
    atol_est = ATOL_EST_FIML      # lavaan's nlminb tolerance on bfi (loadings up to 2.0)
    names = MLR_NAMES
    ref_fm = ref("shared_refs_subset.json")["c_bfi_cfa"]["mlr"]["fit_measures"]
    ref_par = ref("shared_refs_subset.json")["c_bfi_cfa"]["mlr"]["parameter_estimates"]

    def test_logl_at_least_lavaans(self):
        assert self.ours.fit_measures["logl"] >= self.ref_fm["logl"] - 1e-9

    def test_listwise_n(self):
        assert self.ours.fit_measures["ntotal"] == 2436
        assert any("listwise" in w for w in self.ours.warnings)


class TestHSInvarianceMLR:
    """HS by school, MLR configural/metric/scalar (refs case b) and SB2001 differences."""

    KEYS = ("chisq", "df", "npar", "chisq.scaled", "chisq.scaling.factor", "cfi.scaled",
            "tli.scaled", "rmsea.scaled", "cfi.robust", "tli.robust", "rmsea.robust")

    @pytest.mark.parametrize("step", ["configural", "metric", "scalar"])
    def test_fit(self, step):
        r = ref("shared_refs_subset.json")["b_hs_invariance"]["MLR"]["fit"][step]
        fm = fit(f"hs_mlr_{step}").fit_measures
        for k in self.KEYS:
            assert_allclose(fm[k], r[k], rtol=RTOL_CHISQ, err_msg=f"{step} {k}")
        for k in ("srmr", "pvalue.scaled"):
            assert_allclose(fm[k], r[k], rtol=RTOL_SENSITIVE, err_msg=f"{step} {k}")
        assert fit(f"hs_mlr_{step}").group_labels == ("Pasteur", "Grant-White")

    @pytest.mark.parametrize("pair", [("configural", "metric"), ("metric", "scalar")])
    def test_satorra_bentler_2001(self, pair):
        a, b = (fit(f"hs_mlr_{s}").fit_measures for s in pair)
        d = satorra_bentler_2001(a["chisq"], a["df"], a["chisq.scaling.factor"], b["chisq"],
                                 b["df"], b["chisq.scaling.factor"])
        lrt = {r["model"]: r for r in
               ref("shared_refs_subset.json")["b_hs_invariance"]["MLR"][
                   "lrt_successive_satorra_bentler_2001"]}[pair[1]]
        # cd = (r0 c0 - r1 c1)/(r0 - r1) amplifies the 1e-6 agreement of c about 7-fold
        assert_allclose(d.chisq_diff, lrt["Chisq diff"], rtol=RTOL_SENSITIVE)
        assert d.df_diff == lrt["Df diff"] == 6
        assert_allclose(d.pvalue, lrt["Pr(>Chisq)"], rtol=RTOL_SENSITIVE)

    def test_readme_numbers(self):
        a, b, c = (fit(f"hs_mlr_{s}").fit_measures for s in ("configural", "metric", "scalar"))
        m = satorra_bentler_2001(a["chisq"], 48, a["chisq.scaling.factor"], b["chisq"], 54,
                                 b["chisq.scaling.factor"])
        s = satorra_bentler_2001(b["chisq"], 54, b["chisq.scaling.factor"], c["chisq"], 60,
                                 c["chisq.scaling.factor"])
        assert round(m.chisq_diff, 3) == 6.567 and round(m.pvalue, 3) == 0.363
        assert round(s.chisq_diff, 3) == 40.838


# ------------------------------------------------------------------------------- cluster=
class TestClusterMLR(CheckLavaanFit):
    """lavaan cfa(..., estimator = "MLR", cluster = "school") on simulated clustered data."""

    key = "cluster_mlr"
    names = MLR_NAMES
    ref_fm = ref("robust_refs_subset.json")["cluster_mlr"]["fit_measures"]
    ref_par = [r for r in ref("robust_refs_subset.json")["cluster_mlr"]["partable"]
               if r["free"] > 0]

    def test_options_and_meanstructure(self):
        o = self.ours.meta.options
        assert o["se"] == "robust.cluster" and o["cluster"] == "school"
        assert o["meanstructure"]           # lavaan switches it on with cluster=

    def test_clustering_changes_the_se(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            naive = cfa(HS_MODEL, sim_cluster(), estimator="MLR", meanstructure=True)
        free = naive.estimates["se"] > 0
        ratio = self.ours.estimates["se"][free] / naive.estimates["se"][free]
        assert np.max(np.abs(ratio - 1)) > 0.05


class TestClusterMLRTwoGroupMetric(CheckLavaanFit):
    key = "cluster_mlr_2g_metric"
    names = MLR_NAMES
    ref_fm = ref("mlrfiml_refs.json")["fits"]["cluster_mlr_2g_metric"]["fit_measures"]
    ref_par = [r for r in ref("mlrfiml_refs.json")["fits"]["cluster_mlr_2g_metric"]["partable"]
               if r["free"] > 0]


class TestClusterMLRFIML(CheckLavaanFit):
    sensitive = FIML_CORRECTED
    key = "cluster_mlr_fiml"
    names = MLR_NAMES
    ref_fm = ref("mlrfiml_refs.json")["fits"]["cluster_mlr_fiml"]["fit_measures"]
    ref_par = [r for r in ref("mlrfiml_refs.json")["fits"]["cluster_mlr_fiml"]["partable"]
               if r["free"] > 0]


# ------------------------------------------------------------- se= and test= by name
def _se_test_ref(key: str) -> tuple[dict, list]:
    f = ref("se_test_refs.json")["fits"][key]
    return f["fit_measures"], [r for r in f["partable"] if r["free"] > 0]


class TestMLRobustSE(CheckLavaanFit):
    """ML with se = "robust.huber.white": lavaan switches to the observed information, so the
    SEs are MLR's while the test stays the standard one (no scaled measures)."""

    key = "ml_robust_se"
    ref_fm, ref_par = _se_test_ref("ml_robust_se")

    def test_no_scaled_test(self):
        assert "chisq.scaled" not in self.ours.fit_measures
        assert self.ours.meta.options["information"] == "observed"

    def test_se_equal_mlr(self):
        assert_allclose(self.ours.estimates["se"], fit("hs_mlr").estimates["se"], rtol=1e-10)


class TestMLRobustSEExpected(CheckLavaanFit):
    key = "ml_robust_se_expected"
    ref_fm, ref_par = _se_test_ref("ml_robust_se_expected")


class TestMLYuanBentlerTest(CheckLavaanFit):
    """ML with test = "yuan.bentler.mplus": standard SEs, the scaled test with the expected
    information (chisq.scaled 81.92, not MLR's 87.13)."""

    key = "ml_yb_test"
    names = MLR_NAMES
    ref_fm, ref_par = _se_test_ref("ml_yb_test")


class TestMLRStandardSE(CheckLavaanFit):
    key = "mlr_se_standard"
    names = MLR_NAMES
    ref_fm, ref_par = _se_test_ref("mlr_se_standard")


class TestMLRStandardSETwoGroupMetric(CheckLavaanFit):
    key = "mlr_se_standard_2g_metric"
    names = MLR_NAMES
    ref_fm, ref_par = _se_test_ref("mlr_se_standard_2g_metric")


class TestFIMLRobustSE(CheckLavaanFit):
    sensitive = FIML_CORRECTED
    key = "fiml_robust_se"
    atol_est = ATOL_EST_FIML
    ref_fm, ref_par = _se_test_ref("fiml_robust_se")


class TestFIMLMLRStandardSE(CheckLavaanFit):
    sensitive = FIML_CORRECTED
    key = "fiml_mlr_se_standard"
    atol_est = ATOL_EST_FIML
    names = MLR_NAMES
    ref_fm, ref_par = _se_test_ref("fiml_mlr_se_standard")


def test_ml_with_robust_se_and_yb_test_is_mlr():
    """lavaan: estimator = "MLR" is ML with se = "robust.huber.white" and
    test = "yuan.bentler.mplus" (and so the observed information)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = cfa(HS_MODEL, data("HolzingerSwineford1939.csv"), se="robust.huber.white",
                test="yuan.bentler.mplus")
    b = fit("hs_mlr")
    assert_allclose(a.estimates["se"], b.estimates["se"], rtol=1e-12)
    for k in MLR_NAMES:
        assert_allclose(a.fit_measures[k], b.fit_measures[k], rtol=1e-12, err_msg=k)


# ------------------------------------------------------------------------------------ FIML
class TestBfiFIML(CheckLavaanFit):
    """bfi, all 2800 rows, missing = "fiml" (lavaan missing = "ml"), refs case c."""

    sensitive = FIML_CORRECTED
    key = "bfi_fiml"
    atol_est = ATOL_EST_FIML
    names = ("cfi.robust", "tli.robust", "rmsea.robust", "rmsea.ci.lower.robust",
             "rmsea.ci.upper.robust", "unrestricted.logl", "srmr_bentler_nomean")
    ref_fm = ref("shared_refs_subset.json")["c_bfi_cfa"]["fiml"]["fit_measures"]
    ref_par = [r for r in ref("robust_refs_subset.json")["bfi_fiml"]["partable"] if r["free"] > 0]

    def test_readme_numbers(self):
        fm = self.ours.fit_measures
        assert_allclose(fm["chisq"], 4674.26299033932, rtol=RTOL_CHISQ)
        assert fm["df"] == 265 and fm["npar"] == 85 and fm["ntotal"] == 2800
        assert round(fm["cfi"], 5) == 0.77630 and round(fm["cfi.robust"], 5) == 0.77575
        assert round(fm["rmsea"], 5) == 0.07709 and round(fm["srmr"], 5) == 0.07212
        assert round(fm["logl"], 3) == -114278.379

    def test_logl_at_least_lavaans(self):
        # we stop at |gradient| < 1e-9: the log-likelihood is at least lavaan's
        assert self.ours.fit_measures["logl"] >= self.ref_fm["logl"] - 1e-9
        assert self.ours.fit_measures["logl"] - self.ref_fm["logl"] < 1e-5

    def test_parameter_estimates_table(self):
        # parameterEstimates (case c) too: z and CI use our SEs
        pe = ref("shared_refs_subset.json")["c_bfi_cfa"]["fiml"]["parameter_estimates"]
        for ours, r in _rows(self.ours.estimates, pe):
            if r["se"]:
                assert_allclose(ours["ci.lower"], r["ci.lower"], atol=3 * ATOL_EST_FIML)
                assert_allclose(ours["z"], r["z"], rtol=5 * RTOL_SE)

    def test_missing_data_summary(self):
        md = self.ours.missing_data
        assert len(md) == 1 and md[0]["npatterns"] == 87 and md[0]["n_empty"] == 0
        cov = ref("robust_refs_subset.json")["bfi_fiml"]["coverage"]
        ours = md[0]["coverage"].set_index("variable")
        assert list(ours.columns) == cov["colnames"]
        assert_allclose(ours.to_numpy(float), np.array(cov["values"]), rtol=1e-12)
        assert int(md[0]["patterns"]["n"].sum()) == 2800
        assert int(md[0]["patterns"]["n"].iloc[0]) == 2436

    def test_sample_moments_are_em(self):
        s = self.ours.sample[0]
        assert s["n"] == 2800
        assert np.isfinite(np.asarray(s["cov"])).all()


class TestBfiFIMLMLR(CheckLavaanFit):
    sensitive = FIML_CORRECTED
    key = "bfi_fiml_mlr"
    atol_est = ATOL_EST_FIML
    names = MLR_NAMES
    ref_fm = ref("robust_refs_subset.json")["bfi_fiml_mlr"]["fit_measures"]
    ref_par = [r for r in ref("robust_refs_subset.json")["bfi_fiml_mlr"]["partable"]
               if r["free"] > 0]

    def test_scaling_factor(self):
        t = ref("robust_refs_subset.json")["bfi_fiml_mlr"]["test"]["yuan.bentler.mplus"]
        fm = self.ours.fit_measures
        assert_allclose(fm["chisq.scaling.factor"], t["scaling.factor"], rtol=RTOL_CHISQ)
        assert_allclose(fm["scaling.factor.h1"], t["scaling.factor.h1"], rtol=RTOL_CHISQ)
        assert_allclose(fm["scaling.factor.h0"], t["scaling.factor.h0"], rtol=RTOL_SENSITIVE)


class TestHSFIMLTwoGroupMetric(CheckLavaanFit):
    sensitive = FIML_CORRECTED
    key = "hs_fiml_2g_metric"
    names = ("cfi.robust", "rmsea.robust")
    ref_fm = ref("mlrfiml_refs.json")["fits"]["hs_fiml_2g_metric"]["fit_measures"]
    ref_par = [r for r in ref("mlrfiml_refs.json")["fits"]["hs_fiml_2g_metric"]["partable"]
               if r["free"] > 0]


class TestHSFIMLMLRTwoGroupMetric(CheckLavaanFit):
    sensitive = FIML_CORRECTED
    key = "hs_fiml_mlr_2g_metric"
    names = MLR_NAMES
    ref_fm = ref("mlrfiml_refs.json")["fits"]["hs_fiml_mlr_2g_metric"]["fit_measures"]
    ref_par = [r for r in ref("mlrfiml_refs.json")["fits"]["hs_fiml_mlr_2g_metric"]["partable"]
               if r["free"] > 0]


# --------------------------------------------------------------------- fast FIML matrices
def test_fast_h1_information_and_corrected_equal_reference_implementation():
    X = data("hs_mcar8.csv")[[f"x{i}" for i in range(1, 10)]].to_numpy(float)
    pat = missing_patterns(X)
    h1 = em_saturated(pat)
    sig, mu = h1.cov + 0.1 * np.eye(9), h1.mean + 0.05
    assert_allclose(h1_information_observed_fast(pat, sig, mu),
                    fiml_h1_information_observed(pat, sig, mu), rtol=1e-10, atol=1e-13)
    D = np.random.default_rng(2).standard_normal((9 + 45, 20))
    for v in ("V3", "V6"):
        a = fiml_corrected([pat], [h1], [(sig, mu)], [D], 30, version=v)
        b = fiml_corrected_fast([pat], [h1], [(sig, mu)], [D], 30, version=v)
        for k in a:
            assert_allclose(b[k], a[k], rtol=1e-9, err_msg=f"{v} {k}")


# ------------------------------------------------------------------------ options, errors
# each case: cfa() options, the error it must raise, and the data (HS unless a change is needed)
BAD_OPTIONS = [
    ({"se": "robust.sem"}, "se= must be one of", None),
    ({"test": "satorra.bentler"}, "test= must be one of", None),
    ({"se": "robust.cluster"}, "needs cluster=", None),
    ({"estimator": "MLR", "test": "standard"}, "estimator='ML', se='robust.huber.white'", None),
    ({"likelihood": "wishart", "se": "robust.huber.white"},
     "likelihood='wishart' cannot be combined", None),
    ({"ordered": True, "test": "yuan.bentler.mplus"}, "scaled-shifted", lambda d: d.round()),
    ({"cluster": "school"}, "cluster= needs estimator='MLR'", None),
    ({"estimator": "MLR", "cluster": "nope"}, "cluster='nope' is not a column", None),
    ({"estimator": "MLR", "likelihood": "wishart"}, "likelihood='wishart' cannot be combined",
     None),
    ({"missing": "ml"}, "missing= must be one of", None),
    ({"estimator": "WLSMV", "missing": "fiml"}, "needs ordered=", None),
    ({"estimator": "MLR", "cluster": "one"}, "at least 2 clusters", lambda d: d.assign(one=1)),
]


@pytest.mark.parametrize("options, message, prepare", BAD_OPTIONS,
                         ids=[m for _, m, _ in BAD_OPTIONS])
def test_bad_options_give_clear_errors(options, message, prepare):
    hs = data("HolzingerSwineford1939.csv")
    with pytest.raises(ValueError, match=message):
        cfa(HS_MODEL, hs if prepare is None else prepare(hs), **options)


def test_fiml_drops_empty_rows_with_a_warning():
    d = data("hs_mcar8.csv").copy()
    d.loc[[0, 5], [f"x{i}" for i in range(1, 10)]] = np.nan
    with pytest.warns(UserWarning, match="every model variable missing"):
        f = cfa(HS_MODEL, d, missing="fiml")
    assert f.fit_measures["ntotal"] == len(d) - 2
    assert f.meta.options["missing"] == "fiml" and f.meta.options["meanstructure"]


def test_fiml_on_complete_data_equals_ml_with_meanstructure():
    hs = data("HolzingerSwineford1939.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = cfa(HS_MODEL, hs, missing="fiml")
        b = cfa(HS_MODEL, hs, meanstructure=True, information="observed")
    for k in ("chisq", "df", "npar", "logl", "unrestricted.logl", "cfi", "rmsea", "srmr",
              "baseline.chisq"):
        assert_allclose(a.fit_measures[k], b.fit_measures[k], rtol=1e-8, err_msg=k)
    assert_allclose(a.estimates["est"], b.estimates["est"], atol=1e-7)
    assert_allclose(a.estimates["se"], b.estimates["se"], rtol=1e-5, atol=1e-12)


def test_cli_estimator_missing_cluster(tmp_path):
    from instrument.cli import main
    csv = FIX / "sim_cluster.csv"
    out = tmp_path / "fit.json"
    r = CliRunner().invoke(main, ["cfa", HS_MODEL, str(csv), "--estimator", "MLR", "--cluster",
                                  "school", "--json", str(out)])
    assert r.exit_code == 0, r.output
    fm = json.loads(out.read_text())["fit_measures"]
    assert_allclose(fm["chisq.scaled"], ref("robust_refs_subset.json")["cluster_mlr"][
        "fit_measures"]["chisq.scaled"], rtol=RTOL_CHISQ)
    assert "chisq.scaled" in r.output
    r = CliRunner().invoke(main, ["cfa", HS_MODEL, str(FIX / "hs_mcar8.csv"), "--missing",
                                  "fiml"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["cfa", HS_MODEL, str(csv), "--cluster", "school"])
    assert r.exit_code != 0 and "estimator='MLR'" in r.output


def test_parameter_space_mlr_pieces_equal_reference_implementation():
    """The registry's observed information and sandwich (instrument.sem.vcov, used by cfa())
    against instrument.sem.estimators.mlr (observed information with Richardson curvature,
    sandwich from the full score matrix) and against the numerical Hessian of the objective."""
    from instrument.sem.estimators.fiml_fast import fast_delta_fn
    from instrument.sem.estimators.ml import MLObjective
    from tests.reference.mlr_slow import RobustGroup, mlr_vcov
    from tests.reference.mlr_slow import observed_information as obs_ref
    from instrument.sem.model import Model
    from instrument.sem.optim import hessian_information
    from instrument.sem.samplestats import GroupStats, SampleStats
    from instrument.sem.partable import build_partable
    from instrument.sem.syntax import parse_syntax
    from instrument.sem.vcov import MLFitState, observed_information, sandwich
    hs = data("HolzingerSwineford1939.csv")
    ov = [f"x{i}" for i in range(1, 10)]
    blocks = [hs.loc[hs["school"] == s, ov].to_numpy(float) for s in ("Pasteur", "Grant-White")]
    pt = build_partable(parse_syntax(HS_MODEL + "\n x1 ~~ x4"), ngroups=2,
                        group_labels=["Pasteur", "Grant-White"], ov_names=list(hs.columns),
                        meanstructure=True, std_lv=False, group_equal=("loadings",),
                        group_partial=())
    st = SampleStats([GroupStats.from_data(b, ov, keep_data=True) for b in blocks])
    m = Model.from_partable(pt, st)
    x = m.start_x(st) + 0.02                      # away from the optimum: curvature matters
    cl = [np.arange(len(b)) % 7 for b in blocks]
    obj = MLObjective(m, st)
    state = MLFitState(m, x, st, obj, information="observed", clusters=cl)
    groups = [RobustGroup(b, imp.sigma, imp.mu, D, cluster=c)
              for b, imp, D, c in zip(blocks, m.implied(x), m.delta(x), cl)]
    E = observed_information(state)
    E_ref = obs_ref(groups, delta_fn=fast_delta_fn(m), x=x)
    assert_allclose(E, E_ref, rtol=1e-7, atol=1e-9)
    assert_allclose(E, hessian_information(obj, x), rtol=1e-6, atol=1e-8)
    v, v_ref = sandwich(state), mlr_vcov(groups, information=E)
    assert_allclose(v.vcov, v_ref.vcov, rtol=1e-10, atol=1e-15)
    for a, b in zip(v.B0_group, v_ref.B0_group):
        assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_lrt_of_ml_fits_with_the_yb_test_is_satorra_bentler_2001():
    """lavTestLRT's default difference test follows the fits' test: with
    test = "yuan.bentler.mplus" it is Satorra-Bentler (2001), as for MLR (lavaan reference)."""
    from instrument.invariance.lrt import lrt_table
    r = ref("se_test_refs.json")["fits"]["ml_yb_lrt"]
    hs = data("HolzingerSwineford1939.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [cfa(HS_MODEL, hs, group="school", group_equal=ge, test="yuan.bentler.mplus")
                for ge in ((), ("loadings",))]
    row = lrt_table(fits, ["configural", "metric"]).iloc[1]
    assert row["Df diff"] == r["df_diff"]
    # not the plain difference of the chi-squares (the standard test's 'Chisq diff')
    assert abs(row["Chisq diff"] - (fits[1].fit_measures["chisq"]
                                    - fits[0].fit_measures["chisq"])) > 0.1
    # cd = (r0 c0 - r1 c1)/(r0 - r1) amplifies the 1e-6 agreement of c about 7-fold
    assert_allclose(row["Chisq diff"], r["chisq_diff"], rtol=RTOL_SENSITIVE)
    assert_allclose(row["Pr(>Chisq)"], r["pvalue"], rtol=RTOL_SENSITIVE)
