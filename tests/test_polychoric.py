"""Thresholds, polychoric/polyserial correlations, NACOV and WLS.V against lavaan 0.6-14.

References: tests/fixtures/polychoric/ (see SOURCE.md there; made by make_refs.R and copied from
shared/refs cases c and d).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import integrate
from scipy.stats import norm

from instrument.sem.bvnorm import dbivnorm, pbivnorm
from instrument.sem.samplestats import SampleStats
from instrument.sem.polychoric import (
    SampleStatsOrdinal,
    dwls_fx,
    ordinal_alpha,
    polychoric,
    polychoric_pairs,
    sample_stats_ordinal,
    thresholds,
)
from instrument.results import Table

FIX = Path(__file__).parent / "fixtures" / "polychoric"

# Named tolerances (what lavaan's own optimiser tolerance allows; achieved values in comments)
ATOL_TH = 1e-12        # thresholds are closed form (achieved 6e-15)
ATOL_COR = 1e-7        # polychoric correlations; lavaan's nlminb stops at ~1e-8 (achieved 3.8e-8)
RTOL_WLS_OBS, ATOL_WLS_OBS = 1e-6, 1e-7  # moment vector incl. covariances with age (2.4e-7 abs)
RTOL_NACOV, ATOL_NACOV = 1e-5, 1e-7      # Gamma: max |diff| / max |Gamma| achieved 3e-8
RTOL_NACOV_PAIRWISE_MIXED = 1e-4  # polyserial with NA: lavaan's nlminb gradient-only stop (1.9e-5)
RTOL_WLS_V = 1e-6      # diagonal weights (achieved 1.2e-7)
RTOL_CHISQ = 1e-6      # refs README "Suggested tolerances" (achieved 3.4e-8)
ATOL_ALPHA = 1e-8      # ordinal alpha vs k*rbar/(1+(k-1)rbar) on lavCor (achieved 1.7e-9)
ATOL_ALPHA_PSYCH = 1e-5  # vs psych::polychoric, which differs from lavaan by ~1e-6 (4.4e-6)

AC = [f"A{i}" for i in range(1, 6)] + [f"C{i}" for i in range(1, 6)]
MIX = ["A1", "A2", "A3", "C1", "C2", "age"]


def _load(name: str) -> dict:
    return json.loads((FIX / name).read_text())


def _mat(d: dict) -> np.ndarray:
    return np.array(d["values"], dtype=float)


REFS = _load("polychoric_refs.json")
BFI = pd.read_csv(FIX / "bfi.csv")
BFI_AC = BFI.dropna(subset=AC)
EDGE = pd.read_csv(FIX / "edge_cases.csv")


# ------------------------------------------------------------------------------------------------
# bivariate normal CDF
# ------------------------------------------------------------------------------------------------

class TestBivariateNormal:
    def test_against_quadrature(self):
        rng = np.random.default_rng(20261125)
        x, y = rng.normal(scale=1.5, size=(2, 120))
        r = np.concatenate([rng.uniform(-0.99, 0.99, 80), rng.choice([-1, 1], 40)
                            * rng.uniform(0.92, 0.9999, 40)])
        ours = pbivnorm(x, y, r)
        ref = [integrate.quad(lambda t, yy=yy, rr=rr: norm.pdf(t) * norm.cdf(
            (yy - rr * t) / np.sqrt(1 - rr * rr)), -np.inf, xx, epsabs=1e-14, epsrel=1e-13)[0]
            for xx, yy, rr in zip(x, y, r)]
        assert_allclose(ours, ref, rtol=0, atol=5e-15)

    def test_closed_forms(self):
        assert_allclose(pbivnorm(0.0, 0.0, 0.5), 0.25 + np.arcsin(0.5) / (2 * np.pi), atol=1e-15)
        assert_allclose(pbivnorm(0.3, -0.2, 0.0), norm.cdf(0.3) * norm.cdf(-0.2), atol=1e-15)
        assert_allclose(pbivnorm([np.inf, 0.7, -np.inf], [0.7, np.inf, 1.0], 0.4),
                        [norm.cdf(0.7), norm.cdf(0.7), 0.0], atol=1e-15)
        assert_allclose(pbivnorm(1.0, 2.0, 1.0), norm.cdf(1.0), atol=1e-15)
        assert_allclose(pbivnorm(1.0, 0.5, -1.0), norm.cdf(1.0) - norm.cdf(-0.5), atol=1e-15)

    def test_density_is_derivative_in_rho(self):
        x, y, r, h = 0.4, -0.9, 0.35, 1e-6
        num = (pbivnorm(x, y, r + h) - pbivnorm(x, y, r - h)) / (2 * h)
        assert_allclose(dbivnorm(x, y, r), num, rtol=1e-7)


# ------------------------------------------------------------------------------------------------
# sample statistics against lavaan (make_refs.R)
# ------------------------------------------------------------------------------------------------

class CheckSampleStats:
    """Subclasses set ``ours`` (SampleStats) and ``ref`` (a case of make_refs.R)."""

    ours: SampleStats
    ref: dict
    rtol_nacov = RTOL_NACOV

    def _pairs(self):
        assert self.ours.ngroups == len(self.ref["groups"])
        return zip(self.ours.ordinal, self.ref["groups"])

    def test_n(self):
        for g, r in self._pairs():
            assert g.n == r["n"]

    def test_wls_obs_order(self):
        for g, r in self._pairs():
            assert list(g.wls_obs_names) == r["wls_obs_names"]

    def test_wls_obs(self):
        for g, r in self._pairs():
            ref = np.array([r["wls_obs"][k] for k in r["wls_obs_names"]])
            assert_allclose(g.wls_obs, ref, rtol=RTOL_WLS_OBS, atol=ATOL_WLS_OBS)

    def test_thresholds(self):
        for g, r in self._pairs():
            ref = np.array(list(r["th"].values()))  # lavInspect "sampstat": ordinal only
            keep = np.array(g.th_idx) > 0
            assert [n for n, k in zip(g.th_names, keep) if k] == list(r["th"])
            assert_allclose(g.th[keep], ref, atol=ATOL_TH)

    def test_cov(self):
        for g, r in self._pairs():
            assert_allclose(g.cov, _mat(r["cov"]), rtol=RTOL_WLS_OBS, atol=ATOL_WLS_OBS)

    def test_nacov(self):
        for g, r in self._pairs():
            ref = _mat(r["gamma"])
            assert g.NACOV.shape == ref.shape
            assert_allclose(g.NACOV, ref, rtol=self.rtol_nacov, atol=ATOL_NACOV)

    def test_wls_v(self):
        for g, r in self._pairs():
            assert r["wls_v_is_diagonal"]
            assert_allclose(np.diag(g.WLS_V), r["wls_v_diag"], rtol=RTOL_WLS_V)
            assert np.count_nonzero(g.WLS_V - np.diag(np.diag(g.WLS_V))) == 0

    def test_round_trip(self):
        back = SampleStats.from_dict(json.loads(json.dumps(self.ours.to_dict())))
        assert back == self.ours
        for a, b in zip(self.ours.ordinal, back.ordinal):
            assert a.wls_obs_names == b.wls_obs_names and a.levels == b.levels
            assert_allclose(a.NACOV, b.NACOV, rtol=0, atol=0)
            assert_allclose(a.wls_obs, b.wls_obs, rtol=0, atol=0)

    def test_summary(self):
        text = self.ours.ordinal[0].summary().as_text()
        assert self.ours.ordinal[0].wls_obs_names[-1] in text
        assert isinstance(self.ours.summary(), Table)


class TestCompleteCases(CheckSampleStats):
    @classmethod
    def setup_class(cls):
        cls.ours = sample_stats_ordinal(BFI_AC, ov_names=AC)
        cls.ref = REFS["ac_cc"]

    def test_dwls_chisq(self):
        r = self.ref["groups"][0]
        est = [np.array([r["wls_est"][k] for k in r["wls_obs_names"]])]
        out = dwls_fx(self.ours, est)
        assert_allclose(out["chisq"], self.ref["chisq"], rtol=RTOL_CHISQ)
        assert_allclose(out["fx"], self.ref["fx"], rtol=RTOL_CHISQ)

    def test_full_wls_weight(self):
        g = self.ours.ordinal[0]
        assert_allclose(g.WLS_W_full @ g.NACOV, np.eye(len(g.wls_obs)), atol=1e-9)


class TestTwoGroups(CheckSampleStats):
    @classmethod
    def setup_class(cls):
        cls.ours = sample_stats_ordinal(BFI_AC, ov_names=AC, group="gender")
        cls.ref = REFS["ac_gender"]

    def test_group_order(self):
        assert self.ours.group_labels == tuple(self.ref["group_labels"])  # first appearance
        assert self.ours.ntotal == len(BFI_AC)

    def test_dwls_chisq(self):
        est = [np.array([r["wls_est"][k] for k in r["wls_obs_names"]])
               for r in self.ref["groups"]]
        assert_allclose(dwls_fx(self.ours, est)["chisq"], self.ref["chisq"], rtol=RTOL_CHISQ)


class TestPairwiseMissing(CheckSampleStats):
    @classmethod
    def setup_class(cls):
        cls.ours = sample_stats_ordinal(BFI, ov_names=AC, missing="pairwise")
        cls.ref = REFS["ac_pairwise"]

    def test_uses_all_rows(self):
        assert self.ours.ordinal[0].n == len(BFI) > len(BFI_AC)


class TestEdgeCases(CheckSampleStats):
    """Unobserved category, unequal numbers of categories, empty cells, 2x2 with one empty cell."""

    @classmethod
    def setup_class(cls):
        cls.ours = sample_stats_ordinal(EDGE)
        cls.ref = REFS["edge"]

    def test_levels(self):
        g = self.ours.ordinal[0]
        assert g.levels[0] == (1, 2, 4, 5, 6)  # code 3 never observed: dropped, as lavaan
        assert g.nlevels == (5, 3, 2, 2, 6)

    def test_zero_cell_tables(self):
        zc = set(self.ours.ordinal[0].zero_cell_tables)
        assert ("e3", "e4") in zc and ("e1", "e5") in zc

    def test_categorical_dtype_with_unused_level(self):
        df = EDGE.copy()
        df["e1"] = pd.Categorical(df["e1"], categories=[1, 2, 3, 4, 5, 6], ordered=True)
        g = sample_stats_ordinal(df, nacov=False).ordinal[0]
        assert_allclose(g.wls_obs, self.ours.ordinal[0].wls_obs, rtol=0, atol=1e-12)


class TestMixed(CheckSampleStats):
    """Polyserial (ordinal x continuous) and Pearson (continuous pairs) correlations."""

    @classmethod
    def setup_class(cls):
        cls.ours = sample_stats_ordinal(BFI.dropna(subset=MIX), ov_names=MIX,
                                        ordered=["A1", "A2", "A3"])
        cls.ref = REFS["mixed"]

    def test_mean(self):
        g, r = self.ours.ordinal[0], self.ref["groups"][0]
        assert_allclose(g.mean, list(r["mean"].values()), rtol=1e-12)


class TestMixedPairwise(CheckSampleStats):
    """Mixed variables with missing values: polyserial and ML Pearson on available pairs."""

    rtol_nacov = RTOL_NACOV_PAIRWISE_MIXED

    @classmethod
    def setup_class(cls):
        cls.ours = sample_stats_ordinal(BFI, ov_names=MIX, ordered=["A1", "A2", "A3"],
                                        missing="pairwise")
        cls.ref = REFS["mixed_pairwise"]


# ------------------------------------------------------------------------------------------------
# shared/refs case c (lavCor on 25 bfi items) and case d (ordinal alpha)
# ------------------------------------------------------------------------------------------------

class TestBfi25:
    @classmethod
    def setup_class(cls):
        cls.ref = _load("c_bfi_cfa_polychoric.json")["polychoric"]
        items = cls.ref["cor"]["rownames"]
        cls.items = items
        cls.data = BFI.dropna(subset=items)[items]
        cls.ours = sample_stats_ordinal(cls.data, nacov=False).ordinal[0]

    def test_n(self):
        assert self.ours.n == self.ref["n"] == 2436

    def test_thresholds(self):
        assert_allclose(self.ours.th, _mat(self.ref["thresholds"]).ravel(), atol=ATOL_TH)
        th = thresholds(self.data)
        assert list(th.index[:2]) == ["A1|t1", "A1|t2"]
        assert_allclose(th.to_numpy(), self.ours.th, atol=0)

    def test_polychoric_matrix(self):
        csv = pd.read_csv(FIX / "c_bfi_polychoric.csv", index_col=0)
        assert list(csv.index) == self.items
        assert_allclose(self.ours.cor, csv.to_numpy(), atol=ATOL_COR)
        assert_allclose(self.ours.cor, _mat(self.ref["cor"]), atol=ATOL_COR)

    def test_polychoric_frame(self):
        pc = polychoric(self.data[["A1", "A2", "C1"]])
        assert list(pc.columns) == ["A1", "A2", "C1"]
        assert_allclose(pc.loc["A2", "A1"], self.ours.cor[1, 0], atol=1e-12)


D_REF = _load("d_bfi_ordinal_alpha.json")
REVERSED = pd.read_csv(FIX / "bfi_complete25_reversed.csv")


@pytest.mark.parametrize("factor", ["A", "C", "E", "N", "O"])
def test_ordinal_alpha(factor):
    ref = D_REF["ordinal"][factor]
    a = ordinal_alpha(REVERSED[D_REF["items"][factor]])
    assert_allclose(a, ref["alpha_from_lavaan_polychoric"], atol=ATOL_ALPHA)
    assert_allclose(a, ref["alpha_from_psych_polychoric"], atol=ATOL_ALPHA_PSYCH)


def test_ordinal_alpha_headline_values():
    """refs README case d table: A .7698, C .7760, E .7962, N .8427, O .6805."""
    got = {f: ordinal_alpha(REVERSED[D_REF["items"][f]]) for f in "ACENO"}
    assert_allclose([got[f] for f in "ACENO"], [.7698, .7760, .7962, .8427, .6805], atol=5e-5)


# ------------------------------------------------------------------------------------------------
# lower-level pieces and input checking
# ------------------------------------------------------------------------------------------------

def test_polychoric_pairs_recovers_simulated_correlation():
    rng = np.random.default_rng(7)
    z = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=20000)
    cuts = np.array([-1.0, 0.0, 0.8])
    a, b = np.searchsorted(cuts, z[:, 0]), np.searchsorted(cuts, z[:, 1])
    freq = np.zeros((1, 4, 4))
    np.add.at(freq[0], (a, b), 1)
    th = lambda c: norm.ppf(np.cumsum(np.bincount(c, minlength=4))[:-1] / len(c))
    rho = polychoric_pairs(freq, th(a)[None], th(b)[None])
    assert abs(rho[0] - 0.6) < 0.02


def test_two_by_two_closed_form():
    """Both thresholds 0: lavaan returns -cos(2 pi n11 / n)."""
    df = pd.DataFrame({"x": [0] * 30 + [1] * 30, "y": [0] * 20 + [1] * 10 + [0] * 10 + [1] * 20})
    g = sample_stats_ordinal(df, nacov=False).ordinal[0]
    assert_allclose(g.cor[0, 1], -np.cos(2 * np.pi * 20 / 60), atol=1e-15)


def test_bad_missing_option():
    with pytest.raises(ValueError, match="missing= must be one of 'listwise', 'pairwise'; "
                                         "got 'fiml'"):
        sample_stats_ordinal(EDGE, missing="fiml")


def test_category_empty_in_one_group():
    df = EDGE.assign(grp=np.where(np.arange(len(EDGE)) < 150, "a", "b"))
    df.loc[(df.grp == "b") & (df.e1 == 6), "e1"] = 5
    with pytest.raises(ValueError, match=r"categories of variable 'e1' are empty in group 'b'"):
        sample_stats_ordinal(df, ov_names=["e1", "e2"], group="grp")


def test_category_removed_by_listwise_deletion_is_dropped():
    df = EDGE.copy()
    df.loc[df.e1 == 6, "e5"] = np.nan  # lavaan stops here; we analyse the complete rows
    g = sample_stats_ordinal(df, ov_names=["e1", "e2", "e5"], nacov=False).ordinal[0]
    assert g.levels[0] == (1, 2, 4, 5)
    ref = sample_stats_ordinal(df.dropna(subset=["e5"]).assign(e1=lambda d: d.e1),
                               ov_names=["e1", "e2", "e5"], nacov=False).ordinal[0]
    assert_allclose(g.wls_obs, ref.wls_obs, atol=0)


def test_unknown_columns():
    with pytest.raises(ValueError, match=r"column\(s\) \['zz'\] not found"):
        sample_stats_ordinal(EDGE, ov_names=["e1", "zz"])
    with pytest.raises(ValueError, match="ordered= names"):
        sample_stats_ordinal(EDGE, ov_names=["e1", "e2"], ordered=["e9"])


def test_text_column_rejected():
    df = EDGE.assign(e1=EDGE.e1.map({1: "never", 2: "rarely", 4: "often", 5: "very", 6: "always"}))
    with pytest.raises(ValueError, match="ordered column 'e1' holds text"):
        sample_stats_ordinal(df)
    df["e1"] = pd.Categorical(df["e1"], categories=["never", "rarely", "sometimes", "often",
                                                    "very", "always"], ordered=True)
    g = sample_stats_ordinal(df, nacov=False).ordinal[0]
    assert g.levels[0] == ("never", "rarely", "often", "very", "always")
    assert_allclose(g.th[:4], sample_stats_ordinal(EDGE, nacov=False).ordinal[0].th[:4], atol=0)


def test_single_string_ordered_and_group_in_ov_names():
    g = sample_stats_ordinal(BFI_AC, ov_names=["A1", "age"], ordered="A1", nacov=False).ordinal[0]
    assert g.ov_types == ("ordered", "numeric")
    with pytest.raises(ValueError, match="also listed in ov_names"):
        sample_stats_ordinal(BFI_AC, ov_names=["A1", "gender"], group="gender")


def test_sample_stats_object_is_frozen():
    g = sample_stats_ordinal(EDGE, nacov=False).ordinal[0]
    assert isinstance(g, SampleStatsOrdinal)
    with pytest.raises(AttributeError):
        g.n = 3
    assert g.NACOV is None and g.WLS_V is None


class TestSim40:
    """40 items x 5 categories, N = 5000 (shared/refs case g data): the path the benchmark times."""

    @classmethod
    def setup_class(cls):
        cls.ref = REFS["sim40"]
        df = pd.read_csv(FIX / "sim_5f40i_n5000_ordinal5.csv")
        cls.ours = sample_stats_ordinal(df, ov_names=[f"y{i}" for i in range(1, 41)]).ordinal[0]

    def test_wls_obs(self):
        assert list(self.ours.wls_obs_names) == self.ref["wls_obs_names"]
        ref = np.array([self.ref["wls_obs"][k] for k in self.ref["wls_obs_names"]])
        assert_allclose(self.ours.wls_obs, ref, rtol=RTOL_WLS_OBS, atol=ATOL_WLS_OBS)

    def test_nacov_parts(self):
        G = self.ours.NACOV
        assert_allclose(np.diag(G), self.ref["gamma_diag"], rtol=RTOL_NACOV, atol=ATOL_NACOV)
        assert_allclose(G[0], self.ref["gamma_row1"], rtol=RTOL_NACOV, atol=ATOL_NACOV)
        assert_allclose(G[-1], self.ref["gamma_row_last"], rtol=RTOL_NACOV, atol=ATOL_NACOV)
        assert_allclose(np.diag(self.ours.WLS_V), self.ref["wls_v_diag"], rtol=RTOL_WLS_V)


def test_row_blocks_do_not_change_nacov(monkeypatch):
    import instrument.sem.polychoric as pc
    full = sample_stats_ordinal(EDGE).ordinal[0].NACOV
    monkeypatch.setattr(pc, "_ROW_BLOCK", 37)
    assert_allclose(sample_stats_ordinal(EDGE).ordinal[0].NACOV, full, rtol=1e-12, atol=1e-14)


def test_full_wls_weight_matches_lavaan_wls():
    """estimator = "WLS": lavaan's wls.v is the inverse of NACOV."""
    ref = _mat(REFS["edge"]["wls_v_full_WLS"])
    ours = sample_stats_ordinal(EDGE).ordinal[0].WLS_W_full
    assert_allclose(ours, ref, rtol=1e-5, atol=1e-7 * np.abs(ref).max())
