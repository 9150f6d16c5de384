"""Two-level CFA (teachers in schools) against lavaan 0.6-14 ``cfa(..., cluster=)`` and semTools.

References: tests/fixtures/twolevel (make_twolevel.R, SOURCE.md). lavaan's default nlminb stop
leaves its estimates ~2e-4 from the likelihood maximum (its own tightened refit, ``tight``,
moves them by up to 1.8e-4 and raises logl by 4.8e-6), so estimates/SEs are compared with
lavaan's default at a tolerance that covers its stopping error, with the tightened refit more
strictly, and SEs exactly at lavaan's own estimates.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from instrument import cfa, twolevel_cfa, twolevel_reliability
from instrument.results import Table, dumps
from instrument.sem.syntax import ModelSyntaxError, split_levels
from instrument.sem.twolevel import (TwoLevelReliability, TwoLevelResult, cluster_stats,
                                     saturated_em, twolevel_information, twolevel_loglik)

FIX = Path(__file__).parent / "fixtures" / "twolevel"
DATA = pd.read_csv(FIX / "teachers.csv")
REF = json.loads((FIX / "twolevel_ref.json").read_text())
MODEL = REF["model"]
KEYS = ["lhs", "op", "rhs", "level"]

ATOL_FORMULA = 1e-8          # closed-form quantities evaluated at lavaan's own matrices
ATOL_EST_DEFAULT = 3e-4      # lavaan's default nlminb stop (max 2.0e-4 observed)
ATOL_EST_TIGHT = 5e-5        # lavaan with rel.tol = 1e-12 (max 2.8e-5 observed)
RTOL_SE_DEFAULT = 5e-4       # SEs at our optimum vs lavaan's (max 1.6e-4 observed)
RTOL_SE_SAME_POINT = 1e-6    # SEs at lavaan's estimates (observed ~1e-9)
RTOL_CHISQ = 1e-6
ATOL_INDEX = 1e-6            # CFI, TLI, RMSEA, SRMR: lavaan's estimates' stopping error


def _m(d):
    return np.array(d["values"], float).reshape(len(d["rownames"]), len(d["colnames"]))


def _check_std(ours, ref, intercept):
    """std.all: absolute for loadings/variances; the standardized intercepts (mean / between
    SD, about 7) magnify lavaan's stopping error, so they are compared relatively."""
    assert_allclose(ours[~intercept], ref[~intercept], atol=ATOL_EST_DEFAULT)
    assert_allclose(ours[intercept], ref[intercept], rtol=2e-4, atol=1e-12)


@pytest.fixture(scope="module")
def fit() -> TwoLevelResult:
    return twolevel_cfa(MODEL, DATA, cluster="school_id")


@pytest.fixture(scope="module")
def merged(fit):
    pe = pd.DataFrame(REF["parameter_estimates"])
    pe["rhs"] = pe["rhs"].fillna("")
    tight = pd.DataFrame(REF["tight"]["parameter_estimates"])[KEYS + ["est"]]
    tight["rhs"] = tight["rhs"].fillna("")
    m = fit.estimates.merge(pe, on=KEYS, suffixes=("", "_lav"), validate="1:1")
    m = m.merge(tight.rename(columns={"est": "est_tight"}), on=KEYS, validate="1:1")
    assert len(m) == len(pe) == len(fit.estimates)
    return m


@pytest.fixture(scope="module")
def cs():
    return cluster_stats(DATA, [f"y{i}" for i in range(1, 7)], "school_id")


class TestLikelihood:
    def test_loglik_at_lavaan_estimates(self, cs):
        imp = REF["implied"]
        ll = twolevel_loglik(cs, _m(imp["within"]["cov"]), _m(imp["between"]["cov"]),
                             np.array(imp["between"]["mean"]))
        assert_allclose(ll, REF["fit_measures"]["logl"], atol=ATOL_FORMULA)

    def test_loglik_against_stacked_normal(self):
        """Independent check: the cluster-wise multivariate normal of the stacked vectors."""
        rng = np.random.default_rng(7)
        p, sizes = 3, [2, 3, 3, 5]
        A, B = rng.normal(size=(p, p)), rng.normal(size=(p, p))
        SW, SB, mu = A @ A.T + np.eye(p), B @ B.T / 3 + 0.1 * np.eye(p), rng.normal(size=p)
        rows, ids, ref = [], [], 0.0
        for j, n in enumerate(sizes):
            y = rng.normal(size=(n, p))
            rows.append(y)
            ids += [j] * n
            big = np.kron(np.eye(n), SW) + np.kron(np.ones((n, n)), SB)
            ref += stats.multivariate_normal(np.tile(mu, n), big).logpdf(y.reshape(-1))
        df = pd.DataFrame(np.vstack(rows), columns=["a", "b", "c"]).assign(g=ids)
        c = cluster_stats(df, ["a", "b", "c"], "g")
        assert_allclose(twolevel_loglik(c, SW, SB, mu), ref, rtol=1e-12)

    def test_gradient_matches_finite_differences(self, cs):
        imp = REF["implied"]
        # away from the optimum, so that every gradient entry is sizeable
        SW, SB = 1.1 * _m(imp["within"]["cov"]), 0.9 * _m(imp["between"]["cov"])
        mu = np.array(imp["between"]["mean"]) + 0.05
        _, g = twolevel_loglik(cs, SW, SB, mu, gradient=True)
        p, h = 6, 1e-6
        r, c = np.tril_indices(p)
        order = np.lexsort((r, c))          # lavaan's vech: column by column
        r, c = r[order], c[order]
        num = []
        for M in (0, 1):
            for i, j in zip(r, c):
                up, dn = [SW.copy(), SB.copy()], [SW.copy(), SB.copy()]
                for X, s_ in ((up, h), (dn, -h)):
                    X[M][i, j] += s_
                    if i != j:
                        X[M][j, i] += s_
                num.append((twolevel_loglik(cs, *up, mu) - twolevel_loglik(cs, *dn, mu)) / (2 * h))
        for k in range(p):
            e = np.zeros(p)
            e[k] = h
            num.append((twolevel_loglik(cs, SW, SB, mu + e) - twolevel_loglik(cs, SW, SB, mu - e))
                       / (2 * h))
        assert_allclose(g, num, rtol=1e-5, atol=1e-4)

    def test_em_h1_reproduces_lavaan(self, cs):
        SW, SB, mu, logl, it = saturated_em(cs)
        h1 = REF["h1"]
        assert_allclose(logl, REF["fit_measures"]["unrestricted.logl"], atol=ATOL_FORMULA)
        assert_allclose(SW, _m(h1["within"]["cov"]), atol=ATOL_FORMULA)
        assert_allclose(SB, _m(h1["between"]["cov"]), atol=ATOL_FORMULA)
        assert_allclose(mu, np.add(h1["within"]["mean"], h1["between"]["mean"]), atol=ATOL_FORMULA)


class TestEstimates:
    def test_converged(self, fit):
        assert fit.converged
        assert (fit.N, fit.J) == (REF["meta"]["N"], REF["meta"]["J"])
        assert fit.fit_measures["npar"] == REF["npar"]

    def test_estimates_vs_lavaan_default(self, merged):
        assert_allclose(merged["est"], merged["est_lav"], atol=ATOL_EST_DEFAULT)

    def test_estimates_vs_lavaan_tight(self, merged):
        assert_allclose(merged["est"], merged["est_tight"], atol=ATOL_EST_TIGHT)

    def test_logl_at_least_lavaan_tight(self, fit):
        # we reach the maximum: not below lavaan's tightened refit, and equal to 1e-6
        assert fit.fit_measures["logl"] >= REF["tight"]["logl"] - 1e-9
        assert_allclose(fit.fit_measures["logl"], REF["tight"]["logl"], atol=1e-6)

    def test_se_vs_lavaan(self, merged):
        free = merged["se_lav"] > 0
        assert_allclose(merged.loc[free, "se"], merged.loc[free, "se_lav"], rtol=RTOL_SE_DEFAULT)
        assert (merged.loc[~free, "se"] == 0).all()

    def test_se_at_lavaan_estimates(self):
        pe = pd.DataFrame(REF["parameter_estimates"])
        H = twolevel_information(MODEL, DATA, cluster="school_id", estimates=pe)
        se = np.sqrt(np.diag(np.linalg.inv(H.to_numpy())))
        free = pe[pe["se"] > 0]
        ref = {f"{r.lhs}{r.op}{'' if pd.isna(r.rhs) else r.rhs}@{r.level}": r.se
               for r in free.itertuples()}
        assert_allclose(se, [ref[n] for n in H.index], rtol=RTOL_SE_SAME_POINT)

    def test_z_and_std_all(self, merged):
        free = merged["se_lav"] > 0
        assert_allclose(merged.loc[free, "z"], merged["est"][free] / merged["se"][free])
        std = pd.DataFrame(REF["standardized_solution"])["est.std"].to_numpy()
        _check_std(merged["std.all"].to_numpy(), std, (merged["op"] == "~1").to_numpy())


class TestFitMeasures:
    def test_chisq_df(self, fit):
        fm, ref = fit.fit_measures, REF["fit_measures"]
        assert fm["df"] == ref["df"] and fm["baseline.df"] == ref["baseline.df"]
        assert_allclose(fm["chisq"], ref["chisq"], rtol=RTOL_CHISQ)
        assert_allclose(fm["baseline.chisq"], ref["baseline.chisq"], rtol=RTOL_CHISQ)
        assert_allclose(fm["unrestricted.logl"], ref["unrestricted.logl"], atol=ATOL_FORMULA)

    @pytest.mark.parametrize("name", ["cfi", "tli", "nfi", "rfi", "ifi", "rni", "rmsea",
                                      "rmsea.ci.lower", "rmsea.ci.upper", "srmr",
                                      "srmr_within", "srmr_between"])
    def test_index(self, fit, name):
        assert_allclose(fit.fit_measures[name], REF["fit_measures"][name], atol=ATOL_INDEX)

    def test_same_names_as_lavaan(self, fit):
        assert list(fit.fit_measures) == list(REF["fit_measures"])

    @pytest.mark.parametrize("name", ["rmsea.pvalue", "rmsea.notclose.pvalue"])
    def test_rmsea_pvalues(self, fit, name):
        assert_allclose(fit.fit_measures[name], REF["fit_measures"][name], rtol=1e-5)

    @pytest.mark.parametrize("name", ["logl", "aic", "bic", "bic2", "fmin"])
    def test_information_criteria(self, fit, name):
        assert_allclose(fit.fit_measures[name], REF["fit_measures"][name], rtol=1e-9)

    def test_exact_h1_is_higher(self):
        ex = twolevel_cfa(MODEL, DATA, cluster="school_id", h1="exact", baseline=False)
        assert ex.fit_measures["unrestricted.logl"] > REF["fit_measures"]["unrestricted.logl"]
        # lavaan's EM stops 2.9e-4 short of the h1 maximum
        assert_allclose(ex.fit_measures["chisq"], REF["fit_measures"]["chisq"], rtol=1e-5)


class TestReliability:
    """semTools 0.5-6 compRelSEM on lavaan's default fit; the numerators use the estimates,
    which carry lavaan's stopping error (~2e-5 here), the IRR only h1 / implied matrices."""

    ATOL_OMEGA = 5e-5

    def test_level_specific_omega_vs_semtools(self, fit):
        rel = twolevel_reliability(fit).table.set_index("factor")
        ref = REF["comprelsem_levels"]
        assert_allclose(rel.at["fw", "omega"], ref["within"]["fw"], atol=self.ATOL_OMEGA)
        assert_allclose(rel.at["fb", "omega"], ref["school_id"]["fb"], atol=self.ATOL_OMEGA)
        rel = twolevel_reliability(fit, obs_var=False).table.set_index("factor")
        ref = REF["comprelsem_levels_obsvar_false"]
        assert_allclose(rel.at["fw", "omega"], ref["within"]["fw"], atol=self.ATOL_OMEGA)
        assert_allclose(rel.at["fb", "omega"], ref["school_id"]["fb"], atol=self.ATOL_OMEGA)

    def test_lai_shared_vs_semtools(self, fit):
        b = twolevel_reliability(fit).between("fb")
        omega_b, irr = REF["comprelsem_shared"]["shared"]["fb"]
        assert_allclose(b["IRR"], irr, rtol=1e-6)
        assert_allclose(b["omega_B_shared"], omega_b, atol=self.ATOL_OMEGA)
        b = twolevel_reliability(fit, obs_var=False).between("fb")
        omega_b, irr = REF["comprelsem_shared_obsvar_false"]["shared"]["fb"]
        assert_allclose(b["IRR"], irr, atol=self.ATOL_OMEGA)
        assert_allclose(b["omega_B_shared"], omega_b, atol=self.ATOL_OMEGA)

    def test_geldhof_omega_between_by_hand(self, fit):
        pe = pd.DataFrame(REF["tight"]["parameter_estimates"])
        b = pe[pe["level"] == 2]
        lam = b[b["op"] == "=~"]["est"].sum()
        psi = b[(b["op"] == "~~") & (b["lhs"] == "fb")]["est"].iloc[0]
        th = b[(b["op"] == "~~") & (b["lhs"] != "fb")]["est"].sum()
        hand = lam ** 2 * psi / (lam ** 2 * psi + th)
        assert_allclose(twolevel_reliability(fit, obs_var=False).between()["omega"], hand,
                        atol=self.ATOL_OMEGA)

    def test_school_mean_reliability(self, fit):
        t = twolevel_reliability(fit, obs_var=False).between()
        nh = len(fit.cluster_sizes) / np.sum(1 / np.array(fit.cluster_sizes))
        assert_allclose(t["n_harmonic"], nh)
        assert_allclose(t["IRR"], t["school_mean_reliability"], rtol=1e-12)
        # more teachers per school -> more reliable school means
        big = twolevel_reliability(fit, cluster_sizes=[40] * 10).between()
        assert big["school_mean_reliability"] > t["school_mean_reliability"]
        assert np.isnan(twolevel_reliability(fit).table.set_index("factor").at["fw", "IRR"])

    def test_roundtrip_and_errors(self, fit):
        rel = twolevel_reliability(fit)
        back = TwoLevelReliability.from_dict(json.loads(dumps(rel)))
        pd.testing.assert_frame_equal(back.table, rel.table)
        assert isinstance(rel.summary(), Table)
        with pytest.raises(ValueError, match="cluster_sizes="):
            twolevel_reliability(fit, cluster_sizes=[0, 3])
        with pytest.raises(TypeError, match="fit= must be a TwoLevelResult"):
            twolevel_reliability(fit.to_dict())
        with pytest.raises(KeyError, match="no level-2 factor"):
            rel.between("fw")


class TestResultAndErrors:
    def test_roundtrip(self, fit):
        back = TwoLevelResult.from_dict(json.loads(dumps(fit)))
        assert dumps(back) == dumps(fit)
        assert_allclose(back.estimates["est"], fit.estimates["est"])
        assert "Two-level" in str(fit.summary())

    def test_split_levels(self):
        w, b = split_levels("level: within\n f =~ a + b\nlevel: between\n g =~ a + b\n")
        assert "f =~" in w and "g =~" not in w and "g =~" in b
        with pytest.raises(ModelSyntaxError, match="level: 2"):
            split_levels("level: 1\n f =~ a + b + c\n")
        with pytest.raises(ModelSyntaxError, match="before any level"):
            split_levels("f =~ a + b\nlevel: 1\n")
        with pytest.raises(ModelSyntaxError, match="unknown level"):
            split_levels("level: 3\n f =~ a\n")

    def test_bad_options(self):
        with pytest.raises(ValueError, match="h1= must be one of"):
            twolevel_cfa(MODEL, DATA, cluster="school_id", h1="EM")
        with pytest.raises(ValueError, match="not in the data"):
            twolevel_cfa(MODEL, DATA, cluster="school")
        with pytest.raises(NotImplementedError, match="belong to level 2"):
            twolevel_cfa("level: 1\n f =~ y1 + y2 + y3\n y1 ~ 1\nlevel: 2\n g =~ y1 + y2 + y3\n",
                         DATA, cluster="school_id")
        with pytest.raises(TypeError, match="std_lv= must be"):
            twolevel_cfa(MODEL, DATA, cluster="school_id", std_lv="yes")
        with pytest.raises(NotImplementedError, match="both levels"):
            twolevel_cfa("level: 1\n f =~ y1 + y2 + y3\nlevel: 2\n g =~ y1 + y2 + y4\n", DATA,
                         cluster="school_id")


class TestSecondModel:
    """Two correlated within factors, a within residual covariance, between items reordered."""

    REF2 = REF["model2"]

    @pytest.fixture(scope="class")
    @classmethod
    def fit2(cls):
        return twolevel_cfa(cls.REF2["model"], DATA, cluster="school_id")

    def test_rows_in_lavaan_order(self, fit2):
        pe = pd.DataFrame(self.REF2["parameter_estimates"])
        pe["rhs"] = pe["rhs"].fillna("")
        pd.testing.assert_frame_equal(fit2.estimates[KEYS].reset_index(drop=True), pe[KEYS])

    def test_estimates_se_std(self, fit2):
        pe = pd.DataFrame(self.REF2["parameter_estimates"])
        std = pd.DataFrame(self.REF2["standardized_solution"])
        assert_allclose(fit2.estimates["est"], pe["est"], atol=ATOL_EST_DEFAULT)
        free = (pe["se"] > 0).to_numpy()
        assert_allclose(fit2.estimates["se"][free], pe["se"][free], rtol=RTOL_SE_DEFAULT)
        _check_std(fit2.estimates["std.all"].to_numpy(), std["est.std"].to_numpy(),
                   (pe["op"] == "~1").to_numpy())

    @pytest.mark.parametrize("name", ["chisq", "baseline.chisq", "logl", "unrestricted.logl"])
    def test_chisq_logl(self, fit2, name):
        assert_allclose(fit2.fit_measures[name], self.REF2["fit_measures"][name], rtol=RTOL_CHISQ)

    @pytest.mark.parametrize("name", ["npar", "df", "cfi", "tli", "rmsea", "srmr_within",
                                      "srmr_between"])
    def test_indices(self, fit2, name):
        assert_allclose(fit2.fit_measures[name], self.REF2["fit_measures"][name], atol=ATOL_INDEX)


def test_cli_twolevel(tmp_path):
    from click.testing import CliRunner

    from instrument.cli import main
    out = tmp_path / "tl.json"
    res = CliRunner().invoke(main, ["twolevel", MODEL, str(FIX / "teachers.csv"),
                                    "--cluster", "school_id", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "omega_B_shared" in res.output
    payload = json.loads(out.read_text())
    assert_allclose(payload["fit"]["fit_measures"]["chisq"], REF["fit_measures"]["chisq"],
                    rtol=RTOL_CHISQ)
    bad = CliRunner().invoke(main, ["twolevel", MODEL, str(FIX / "teachers.csv"),
                                    "--cluster", "school"])
    assert bad.exit_code != 0 and "not in the data" in bad.output


def test_same_input_same_bytes_and_renders(fit):
    again = twolevel_cfa(MODEL, DATA, cluster="school_id")
    assert dumps(again) == dumps(fit)
    for t in (fit.summary(), twolevel_reliability(fit).summary()):
        for out in (t.as_text(), t.as_html(), t.as_markdown()):
            assert t.title[:8] in out


def test_warnings_when_em_h1_is_below_h0():
    """A near-zero between variance: lavaan's EM h1 stops below the model's logl (lavaan 0.6-14
    reports chisq 0 on such data as well); the result says so and h1='exact' gives the test."""
    rng = np.random.default_rng(0)
    nj = rng.integers(2, 12, 30)
    sch = np.repeat(np.arange(30), nj)
    lam = np.array([1, .8, .7, .9])
    y = (rng.normal(size=len(sch))[:, None] * lam + rng.normal(0, .7, (len(sch), 4))
         + rng.normal(0, .14, 30)[sch][:, None] * lam + 3)
    df = pd.DataFrame(y, columns=["y1", "y2", "y3", "y4"]).assign(s=sch)
    m = "level: 1\n fw =~ y1 + y2 + y3 + y4\nlevel: 2\n fb =~ y1 + y2 + y3 + y4\n"
    em = twolevel_cfa(m, df, cluster="s", baseline=False)
    ex = twolevel_cfa(m, df, cluster="s", h1="exact", baseline=False)
    assert em.fit_measures["unrestricted.logl"] < em.fit_measures["logl"]
    assert em.fit_measures["chisq"] == 0 and any("EM" in w for w in em.warnings)
    assert any("Heywood" in w for w in em.warnings)
    assert ex.fit_measures["unrestricted.logl"] >= em.fit_measures["unrestricted.logl"]
    assert ex.fit_measures["chisq"] > 0


class TestStdLv:
    REF3 = REF["std_lv"]

    @pytest.fixture(scope="class")
    @classmethod
    def fit3(cls):
        return twolevel_cfa(MODEL, DATA, cluster="school_id", std_lv=True)

    def test_estimates_and_se(self, fit3):
        pe = pd.DataFrame(self.REF3["parameter_estimates"])
        pe["rhs"] = pe["rhs"].fillna("")
        pd.testing.assert_frame_equal(fit3.estimates[KEYS].reset_index(drop=True), pe[KEYS])
        assert_allclose(fit3.estimates["est"], pe["est"], atol=ATOL_EST_DEFAULT)
        free = (pe["se"] > 0).to_numpy()
        assert_allclose(fit3.estimates["se"][free], pe["se"][free], rtol=RTOL_SE_DEFAULT)
        e = fit3.estimates
        psi = e[(e["op"] == "~~") & e["lhs"].isin(["fw", "fb"])]
        assert (psi["est"] == 1).all() and (psi["se"] == 0).all()

    def test_same_fit_as_marker(self, fit3, fit):
        for name in ("chisq", "logl", "cfi", "rmsea", "srmr_within", "srmr_between"):
            assert_allclose(fit3.fit_measures[name], self.REF3["fit_measures"][name],
                            rtol=RTOL_CHISQ, atol=ATOL_INDEX)
            assert_allclose(fit3.fit_measures[name], fit.fit_measures[name], rtol=1e-7,
                            atol=1e-8)


def test_cfa_fits_level_syntax_as_a_two_level_model(fit):
    via_cfa = cfa(MODEL, DATA, cluster="school_id")
    assert isinstance(via_cfa, TwoLevelResult)
    assert_allclose(pd.Series(via_cfa.fit_measures, dtype=float),
                    pd.Series(fit.fit_measures, dtype=float), rtol=1e-12)
    with pytest.raises(ValueError, match="needs cluster="):
        cfa(MODEL, DATA)
    with pytest.raises(NotImplementedError, match="estimator="):
        cfa(MODEL, DATA, cluster="school_id", estimator="MLR")
