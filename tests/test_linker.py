"""Predictive validity (instrument.linker): CR2/CR1 against clubSandwich, effects, corrections,
outcome definitions, sample accounting, Bright Spots, CLI and result contracts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose
from scipy import stats

import instrument as ins
from instrument.cli import main
from instrument.linker import (
    DEFAULT_CONTROLS, RATE_COLUMNS, BrightSpotResult, LinkResult, bright_spots, check_rates,
    chronic_absence_rate, cluster_fit, design_matrix, link, sensitivity, simulate_bright_spot_data,
    simulate_link_data,
)
from instrument.results import Table, dumps
from instrument.rules import BRIGHT_SPOT_TOP_SHARE, CHRONIC_ABSENCE

FIX = Path(__file__).parent / "fixtures" / "linker"
RTOL_CLUBSANDWICH = 1e-6  # task brief: CR2 SEs / df must match clubSandwich at rtol 1e-6
ATOL_EST = 1e-10          # OLS/WLS coefficients: same closed form as R's lm (QR), float noise only
RTOL_CLOSED_FORM = 1e-10  # our numbers vs a hand computation of the same formula


@pytest.fixture(scope="module")
def refdata():
    return pd.read_csv(FIX / "link_data.csv"), json.loads((FIX / "clubsandwich_refs.json").read_text())


def _as_inputs(d: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The R fixture as contract-format scores and outcomes (y as the chronic-absence rate)."""
    scores = pd.DataFrame({"school_id": d["school_id"], "district_id": d["district_id"],
                           "form": "teacher", "construct": "overall", "score": d["score"],
                           "suppressed": False})
    outcomes = d.rename(columns={"y": "chronic_absence"}).drop(columns="score")
    return scores, outcomes


# --------------------------------------------------------------------------------------------
# against clubSandwich (Check* mixin, one quantity per test)
# --------------------------------------------------------------------------------------------
class CheckClubSandwich:
    case: str
    weights: bool

    singleton = False  # move the last school into its own district

    @pytest.fixture(autouse=True)
    def _setup(self, refdata):
        d, refs = refdata
        if self.singleton:
            d = d.copy()
            d.loc[len(d) - 1, "district_id"] = "D09"
        self.ref = refs[self.case]
        self.X, self.names = design_matrix(d, ["score", "poverty", "grade_band"])
        w = d["enrollment"].to_numpy(float) if self.weights else None
        args = (d["y"].to_numpy(float), self.X, d["district_id"].to_numpy())
        self.cr2 = cluster_fit(*args, names=self.names, weights=w, se_type="CR2")
        self.cr1 = cluster_fit(*args, names=self.names, weights=w, se_type="CR1")
        s, o = _as_inputs(d)
        self.linked = link(s, o, outcome="chronic_absence", controls=("poverty", "grade_band"),
                           weights="enrollment" if self.weights else None)

    def test_term_order_matches_lm(self):
        assert [n.replace("[", "").replace("]", "") for n in self.names] == self.ref["names"]

    def test_coef(self):
        assert_allclose(self.cr2.params, self.ref["coef"], rtol=0, atol=ATOL_EST)

    def test_cr2_vcov(self):
        assert_allclose(self.cr2.vcov, np.array(self.ref["CR2"]["vcov"]), rtol=RTOL_CLUBSANDWICH)

    def test_cr2_se(self):
        assert_allclose(self.cr2.se, self.ref["CR2"]["se"], rtol=RTOL_CLUBSANDWICH)

    def test_cr2_satterthwaite_df(self):
        assert_allclose(self.cr2.df, self.ref["CR2"]["df"], rtol=RTOL_CLUBSANDWICH)

    def test_link_t_and_p(self):
        c = self.linked.coefficients
        assert_allclose(c["t"], self.ref["CR2"]["tstat"], rtol=RTOL_CLUBSANDWICH)
        assert_allclose(c["pvalue"], self.ref["CR2"]["p"], rtol=RTOL_CLUBSANDWICH)
        assert_allclose(c["df"], self.ref["CR2"]["df"], rtol=RTOL_CLUBSANDWICH)
        assert_allclose(self.linked.vcov.drop(columns="term").to_numpy(),
                        np.array(self.ref["CR2"]["vcov"]), rtol=RTOL_CLUBSANDWICH)

    def test_p10_p90_contrasts(self):
        ref = self.ref["contrasts"]
        eff = self.linked.effects.set_index("predictor").loc[["score", "poverty"]]
        assert_allclose(eff["p10"], ref["p10"], rtol=RTOL_CLOSED_FORM)
        assert_allclose(eff["p90"], ref["p90"], rtol=RTOL_CLOSED_FORM)
        for ours, theirs in (("contrast", "est"), ("se", "se"), ("df", "df"),
                             ("ci.lower", "ci_lower"), ("ci.upper", "ci_upper")):
            assert_allclose(eff[ours], ref[theirs][:2], rtol=RTOL_CLUBSANDWICH, err_msg=ours)

    def test_band_predictions(self):
        ref = self.ref["contrasts"]
        bands = self.linked.bands
        assert list(bands["band"]) == ref["names"][2:]
        assert_allclose(bands["midpoint"], ref["band_midpoint"], rtol=RTOL_CLOSED_FORM)
        for ours, theirs in (("predicted", "est"), ("se", "se"), ("df", "df"),
                             ("ci.lower", "ci_lower"), ("ci.upper", "ci_upper")):
            assert_allclose(bands[ours], ref[theirs][2:], rtol=RTOL_CLUBSANDWICH, err_msg=ours)

    def test_cr1_is_clubsandwich_cr1s(self):
        assert_allclose(self.cr1.vcov, np.array(self.ref["CR1S"]["vcov"]), rtol=RTOL_CLUBSANDWICH)
        assert_allclose(self.cr1.df, self.ref["CR1S"]["df"], rtol=0)

    def test_cr1_is_not_clubsandwich_cr1(self):
        # statsmodels' correction is Stata's J(N-1)/((J-1)(N-p)), not J/(J-1)
        assert not np.allclose(self.cr1.vcov, np.array(self.ref["CR1"]["vcov"]), rtol=1e-3)


class TestClubSandwichOLS(CheckClubSandwich):
    case, weights = "unweighted", False


class TestClubSandwichWLS(CheckClubSandwich):
    case, weights = "weighted", True


class TestClubSandwichSingletonCluster(CheckClubSandwich):
    case, weights, singleton = "singleton", True, True


# --------------------------------------------------------------------------------------------
# effects: P10 -> P90 contrast, per SD, bands (hand computations)
# --------------------------------------------------------------------------------------------
def _small_example():
    """12 schools in 4 districts, no controls: every quantity has a closed form."""
    x = np.array([12., 25, 31, 38, 44, 47, 52, 58, 63, 71, 80, 92])
    y = np.array([.31, .27, .29, .22, .25, .19, .21, .18, .20, .14, .16, .10])
    dist = np.array(["A", "A", "B", "A", "B", "C", "B", "C", "D", "C", "D", "D"])
    band = np.where(x < 40, "low", np.where(x < 60, "mid", "high"))
    scores = pd.DataFrame({"school_id": [f"s{i}" for i in range(12)], "district_id": dist,
                           "form": "teacher", "construct": "overall", "score": x, "band": band,
                           "suppressed": False})
    outcomes = pd.DataFrame({"school_id": scores["school_id"], "district_id": dist,
                             "chronic_absence": y})
    return x, y, dist, scores, outcomes


def _type7(v, p):
    v = np.sort(v)
    h = (len(v) - 1) * p
    lo = int(np.floor(h))
    return v[lo] + (h - lo) * (v[min(lo + 1, len(v) - 1)] - v[lo])


def test_p10_p90_contrast_cr1_closed_form():
    x, y, dist, scores, outcomes = _small_example()
    res = link(scores, outcomes, controls=(), se_type="CR1")
    n, J = len(x), 4
    sxx = np.sum((x - x.mean()) ** 2)
    b = np.sum((x - x.mean()) * (y - y.mean())) / sxx
    e = y - y.mean() - b * (x - x.mean())
    meat = sum(np.sum((x[dist == g] - x.mean()) * e[dist == g]) ** 2 for g in "ABCD")
    se = np.sqrt(J / (J - 1) * (n - 1) / (n - 2) * meat / sxx ** 2)
    p10, p90 = _type7(x, 0.10), _type7(x, 0.90)
    con = b * (p90 - p10)
    half = stats.t.ppf(0.975, J - 1) * se * (p90 - p10)
    row = res.effects.set_index("predictor").loc["score"]
    assert_allclose([row["b"], row["se"] / (p90 - p10), row["p10"], row["p90"]], [b, se, p10, p90],
                    rtol=RTOL_CLOSED_FORM)
    assert_allclose([row["contrast"], row["ci.lower"], row["ci.upper"]],
                    [con, con - half, con + half], rtol=RTOL_CLOSED_FORM)
    assert_allclose([row["contrast_pp"], row["ci.lower_pp"], row["per_1000"], row["ci.upper_per_1000"]],
                    [100 * con, 100 * (con - half), 1000 * con, 1000 * (con + half)],
                    rtol=RTOL_CLOSED_FORM)
    sd = np.std(x, ddof=1)
    assert_allclose([row["b_per_sd"], row["beta_std"]], [b * sd, b * sd / np.std(y, ddof=1)],
                    rtol=RTOL_CLOSED_FORM)
    assert row["df"] == J - 1


def test_p10_p90_contrast_cr2_uses_coefficient_se_and_df():
    x, y, dist, scores, outcomes = _small_example()
    res = link(scores, outcomes, controls=())
    c = res.coefficients.set_index("term").loc["score"]
    row = res.effects.set_index("predictor").loc["score"]
    d = _type7(x, 0.9) - _type7(x, 0.1)
    half = stats.t.ppf(0.975, c["df"]) * c["se"] * d
    assert_allclose([row["contrast"], row["ci.lower"], row["ci.upper"], row["df"]],
                    [c["est"] * d, c["est"] * d - half, c["est"] * d + half, c["df"]],
                    rtol=RTOL_CLOSED_FORM)


def test_band_predictions_at_band_median_score():
    x, y, dist, scores, outcomes = _small_example()
    res = link(scores, outcomes, controls=(), se_type="CR1")
    cf = res.coefficients.set_index("term")["est"]
    V = res.vcov.drop(columns="term").to_numpy()
    bands = res.bands.set_index("band")
    assert list(res.bands["band"]) == ["low", "mid", "high"]
    for name, xs in (("low", x[x < 40]), ("mid", x[(x >= 40) & (x < 60)]), ("high", x[x >= 60])):
        mid = np.median(xs)
        pred = cf["(Intercept)"] + cf["score"] * mid
        se = np.sqrt(np.array([1, mid]) @ V @ np.array([1, mid]))
        half = stats.t.ppf(0.975, 3) * se
        assert_allclose([bands.loc[name, "midpoint"], bands.loc[name, "predicted"],
                         bands.loc[name, "ci.lower"], bands.loc[name, "ci.upper"]],
                        [mid, pred, pred - half, pred + half], rtol=RTOL_CLOSED_FORM)
        assert bands.loc[name, "n"] == len(xs)


def test_poverty_contrast_side_by_side():
    s, o = simulate_link_data(150, 15, -0.001, seed=4)
    res = link(s, o)
    eff = res.effects.set_index("predictor")
    assert list(eff.index) == ["score", "poverty"]
    pov = res.coefficients.set_index("term").loc["poverty"]
    d = np.percentile(eff.loc["poverty", ["p10", "p90"]].to_numpy(), [0, 100])
    assert_allclose(eff.loc["poverty", "contrast"], pov["est"] * (d[1] - d[0]), rtol=RTOL_CLOSED_FORM)
    assert eff.loc["score", "contrast_pp"] < 0
    text = res.headline()
    assert f"{abs(eff.loc['score', 'contrast_pp']):.1f} percentage points lower" in text
    assert f"poverty: {eff.loc['poverty', 'contrast_pp']:.1f} points higher" in text


def test_change_model_equals_level_model_with_prior_control():
    # y - prior on (score, prior, ...) has the same score coefficient and SE as y on them
    s, o = simulate_link_data(120, 12, -0.001, seed=5)
    lev, chg = link(s, o), link(s, o, change=True)
    a, b = lev.coefficients.set_index("term"), chg.coefficients.set_index("term")
    assert_allclose(b.loc["score", ["est", "se", "df"]].to_numpy(float),
                    a.loc["score", ["est", "se", "df"]].to_numpy(float), rtol=1e-8)
    assert_allclose(b.loc["chronic_absence_prior", "est"], a.loc["chronic_absence_prior", "est"] - 1,
                    rtol=1e-8)
    no_prior = link(s, o, change=True, controls=("poverty", "grade_band"))
    assert "chronic_absence_prior" not in set(no_prior.coefficients["term"])


# --------------------------------------------------------------------------------------------
# coverage on simulated data with a known effect
# --------------------------------------------------------------------------------------------
def test_cr2_ci_covers_truth_in_simulation():
    beta, reps, hits = -0.001, 200, 0
    for r in range(reps):
        s, o = simulate_link_data(60, 12, beta, seed=1000 + r, forms=("teacher",), constructs=())
        t = s[(s["form"] == "teacher") & (s["construct"] == "overall") & ~s["suppressed"]]
        m = t[["school_id", "score"]].merge(o, on="school_id")
        X, names = design_matrix(m, ["score", "poverty", "chronic_absence_prior", "grade_band",
                                     "enrollment"])
        f = cluster_fit(m["chronic_absence"].to_numpy(float), X, m["district_id"].to_numpy(),
                        names=names)
        q = stats.t.ppf(0.975, f.df[1])
        hits += abs(f.params[1] - beta) <= q * f.se[1]
    assert hits / reps >= 0.93, hits / reps


def test_reliability_correction_recovers_beta():
    beta = -0.001
    s, o = simulate_link_data(1500, 100, beta, seed=7, reliability=0.6)
    res = link(s, o)
    dis = res.disattenuation
    b = res.score["est"]
    assert dis["reliability_source"] == "se"
    assert abs(b - 0.6 * beta) < abs(0.2 * beta)           # attenuated towards 0
    assert abs(dis["est_corrected"] - beta) < abs(b - beta) / 2  # correction removes the bias
    assert dis["ci.lower_corrected"] <= beta <= dis["ci.upper_corrected"]
    lam, r2 = dis["reliability"], dis["r2_score_controls"]
    assert_allclose(dis["reliability_residualised"], (lam - r2) / (1 - r2), rtol=RTOL_CLOSED_FORM)
    assert_allclose(dis["est_corrected"], b / dis["reliability_residualised"], rtol=RTOL_CLOSED_FORM)
    t = s[(s["form"] == "teacher") & (s["construct"] == "overall") & ~s["suppressed"]]
    assert_allclose(lam, 1 - np.mean(t["se"] ** 2) / np.var(t["mean"], ddof=1), rtol=RTOL_CLOSED_FORM)


# --------------------------------------------------------------------------------------------
# sensitivity table
# --------------------------------------------------------------------------------------------
def test_sensitivity_rows_and_consistency():
    s, o = simulate_link_data(120, 12, -0.001, seed=8)
    tab = sensitivity(s, o, constructs=["overall", "leadership"])
    assert len(tab) == 2 * 2 * 2
    assert set(tab["controls"]) == {"yes", "none"}
    one = link(s, o, form="family", construct="leadership", controls=())
    row = tab[(tab.form == "family") & (tab.construct == "leadership") & (tab.controls == "none")]
    assert_allclose(row[["est", "se", "df"]].to_numpy(float)[0],
                    one.score[["est", "se", "df"]].to_numpy(float), rtol=1e-12)
    full = sensitivity(s, o)
    assert len(full) == 2 * 6 * 2 and full["construct"].iloc[0] == "overall"


@pytest.mark.parametrize("kw", [{}, {"se_type": "CR1", "level": 0.9}])
def test_sensitivity_rows_are_links(kw):
    """Each row holds what `link` reports for that form, construct and control set, with the
    options passed on."""
    s, o = simulate_link_data(120, 12, -0.001, seed=8)
    tab = sensitivity(s, o, constructs=["overall", "leadership"], **kw)
    for row in tab.to_dict("records"):
        r = link(s, o, form=row["form"], construct=row["construct"],
                 controls=() if row["controls"] == "none" else DEFAULT_CONTROLS, **kw)
        e = r.effects.set_index("predictor").loc["score"]
        expected = {"nobs": r.nobs, **{k: r.score[k] for k in
                                      ("est", "se", "df", "pvalue", "ci.lower", "ci.upper")},
                    **{k: e[k] for k in ("b_per_sd", "beta_std", "contrast_pp", "ci.lower_pp",
                                         "ci.upper_pp")},
                    **{k: r.disattenuation[k] for k in ("reliability", "reliability_residualised",
                                                        "est_corrected")}}
        assert_allclose([row[k] for k in expected], list(expected.values()), rtol=1e-12)
    with pytest.raises(TypeError, match="sex_type"):
        sensitivity(s, o, sex_type="CR1")


# --------------------------------------------------------------------------------------------
# outcome definitions and sample accounting
# --------------------------------------------------------------------------------------------
def test_chronic_absence_rule():
    assert CHRONIC_ABSENCE.threshold == 0.10 and "Attendance Works" in CHRONIC_ABSENCE.source
    # 18/180 = exactly 10% counts; 17/180 does not
    assert chronic_absence_rate([18, 17, 40, 0], [180, 180, 180, 90]) == 0.5
    with pytest.raises(ValueError, match="rows 0"):
        chronic_absence_rate([200], [180])


def test_rates_out_of_range_name_column_and_schools():
    s, o = simulate_link_data(60, 6, seed=9)
    bad = o.copy()
    bad.loc[[3, 7], "chronic_absence"] = [12.5, 30.0]
    with pytest.raises(ValueError, match=r"'chronic_absence'.*S0004, S0008.*rates_in='percent'"):
        link(s, bad)


def test_percent_rates_converted_when_declared():
    s, o = simulate_link_data(60, 6, seed=10)
    pct = o.copy()
    for c in RATE_COLUMNS:
        pct[c] = 100 * pct[c]
    a, b = link(s, o), link(s, pct, rates_in="percent")
    assert_allclose(b.coefficients["est"], a.coefficients["est"], rtol=1e-9)
    assert_allclose(check_rates(pct, rates_in="percent")["poverty"], o["poverty"], rtol=1e-12)
    mixed = pct.assign(el_share=o["el_share"])           # one column left as proportions
    with pytest.raises(ValueError, match=r"rates_in='percent'.*\['el_share'\].*all <= 1"):
        link(s, mixed, rates_in="percent")
    over = pct.copy()
    over.loc[0, "poverty"] = 140
    with pytest.raises(ValueError, match=r"'poverty' must be a percent in \[0, 100\].*S0001"):
        link(s, over, rates_in="percent")


def test_unmatched_suppressed_and_missing_are_reported():
    s, o = simulate_link_data(80, 8, seed=11)
    t = (s["form"] == "teacher") & (s["construct"] == "overall")
    n_supp = int(s.loc[t, "suppressed"].sum())
    supp = set(s.loc[t & s["suppressed"], "school_id"])
    gone = [i for i in ("S0002", "S0003", "S0004", "S0005") if i not in supp][:2]
    o2 = o[~o["school_id"].isin(gone)].copy()                      # scores without outcomes
    extra = o.iloc[[0]].assign(school_id="X9999")                   # outcome without a score
    o2 = pd.concat([o2, extra], ignore_index=True)
    o2.loc[o2["school_id"] == "S0010", "poverty"] = np.nan         # missing control
    res = link(s, o2)
    smp = res.sample
    assert smp["n_suppressed"] == n_supp and len(smp["suppressed_ids"]) == n_supp
    assert smp["only_in_scores"] == gone
    assert smp["only_in_outcomes"] == ["X9999"]
    used_expected = 80 - n_supp - 2
    if "S0010" not in smp["suppressed_ids"]:
        assert smp["missing_values"] == {"S0010": ["poverty"]}
        used_expected -= 1
    assert res.nobs == smp["n_used"] == used_expected
    assert smp["n_scores"] == (smp["n_suppressed"] + smp["n_only_in_scores"]
                               + smp["n_missing_values"] + smp["n_used"])
    assert "suppressed" in res.summary().as_text()


@pytest.mark.parametrize("kw, msg", [
    ({"se_type": "cr2"}, "se_type= must be one of 'CR2', 'CR1'; got 'cr2'."),
    ({"outcome": "absence"}, "outcome= must be one of 'chronic_absence', 'attendance', "
                             "'ela_proficiency', 'math_proficiency'; got 'absence'."),
    ({"form": "parent"}, "form= must be one of the forms in the scores ['family', 'teacher']; got 'parent'."),
    ({"rates_in": "pct"}, "rates_in= must be one of 'proportion', 'percent'; got 'pct'."),
    ({"controls": "poverty"}, "controls= must be a sequence of column names"),
    ({"construct": "nope"}, "no rows for form='teacher', construct='nope'"),
])
def test_bad_options_rejected_with_clear_message(kw, msg):
    s, o = simulate_link_data(40, 4, seed=12)
    with pytest.raises(ValueError) as e:
        link(s, o, **kw)
    assert msg in str(e.value)


def test_bad_weights_and_missing_columns():
    s, o = simulate_link_data(40, 4, seed=13)
    o2 = o.copy()
    o2.loc[1, "enrollment"] = 0
    with pytest.raises(ValueError, match="weights column 'enrollment' must be positive.*S0002"):
        link(s, o2, weights="enrollment")
    with pytest.raises(ValueError, match=r"outcomes is missing column\(s\) \['grade_band'\]"):
        link(s, o.drop(columns="grade_band"))
    with pytest.raises(ValueError, match="outcomes has several rows for school_id"):
        link(s, pd.concat([o, o.iloc[[0]]]))


def test_suppressed_flag_read_as_text():
    s, o = simulate_link_data(60, 6, seed=15)
    txt = s.assign(suppressed=s["suppressed"].map({True: "TRUE", False: "false"}))
    assert dumps(link(txt, o).coefficients) == dumps(link(s, o).coefficients)
    bad = s.assign(suppressed=s["suppressed"].map({True: "maybe", False: "false"}))
    with pytest.raises(ValueError, match="scores column 'suppressed' must be true/false.*maybe"):
        link(bad, o)


def test_cr1_few_clusters_note():
    s, o = simulate_link_data(60, 6, seed=14)
    assert any("CR1 standard errors may be too small" in n for n in link(s, o, se_type="CR1").notes)
    assert not link(s, o).notes


# --------------------------------------------------------------------------------------------
# Bright Spots
# --------------------------------------------------------------------------------------------
def test_bright_spots_recover_planted_schools():
    bs, bo, planted = simulate_bright_spot_data(300, 30, 20, seed=21, lift=25.0)
    res = bright_spots(bs, bo)
    found = set(res.bright_spot_ids)
    recall = len(found & set(planted)) / len(planted)
    precision = len(found & set(planted)) / len(found)
    assert recall >= 0.9, recall
    assert precision >= 0.4, precision      # chance level is 20/300 = 0.067
    assert res.years == (2024, 2025)
    per_year = res.schools.groupby("year")["flagged"].sum()
    assert (per_year == 60).all()            # top 20% of 300 each year
    assert set(res.schools.loc[res.schools.bright_spot, "school_id"]) == found


def test_bright_spot_partners_meet_criteria():
    bs, bo, _ = simulate_bright_spot_data(300, 30, 20, seed=22)
    res = bright_spots(bs, bo, n_partners=3)
    last = res.schools[res.schools["year"] == 2025].merge(bo, on=["school_id", "district_id"])
    med = last["score"].median()
    info = last.set_index("school_id")
    p = res.partners
    assert len(p) > 0
    for r in p.itertuples(index=False):
        assert info.loc[r.partner_id, "district_id"] == info.loc[r.bright_spot_id, "district_id"]
        assert info.loc[r.partner_id, "grade_band"] == info.loc[r.bright_spot_id, "grade_band"]
        assert info.loc[r.partner_id, "score"] <= med
        assert r.partner_id not in set(res.bright_spot_ids)
    for _, g in p.groupby("bright_spot_id"):
        assert list(g["rank"]) == list(range(1, len(g) + 1)) and g["distance"].is_monotonic_increasing
    # Mahalanobis distance of the first partner, recomputed
    num = ["poverty", "el_share", "enrollment"]
    S = np.cov(last[num].to_numpy(float), rowvar=False)
    r0 = p.iloc[0]
    dv = info.loc[r0.bright_spot_id, num].to_numpy(float) - info.loc[r0.partner_id, num].to_numpy(float)
    assert_allclose(r0.distance, np.sqrt(dv @ np.linalg.pinv(S) @ dv), rtol=1e-9)


def test_bright_spots_single_year_and_options():
    bs, bo, _ = simulate_bright_spot_data(100, 10, 5, seed=23, years=(2025,))
    res = bright_spots(bs.drop(columns="year"), bo)
    assert res.years == (None,) and any("one year" in n for n in res.notes)
    assert res.schools["flagged"].sum() == 20 and res.rule == BRIGHT_SPOT_TOP_SHARE
    with pytest.raises(ValueError, match="top_share= must be a number in"):
        bright_spots(bs, bo, top_share=20)
    with pytest.raises(ValueError, match=r"years= \[2020\] not all in"):
        bright_spots(bs, bo, years=[2020])


# --------------------------------------------------------------------------------------------
# contracts: JSON round trip, rendering, determinism, public API, CLI
# --------------------------------------------------------------------------------------------
def test_link_result_round_trip_and_render():
    s, o = simulate_link_data(80, 8, seed=30)
    res = link(s, o, weights="enrollment")
    back = LinkResult.from_dict(json.loads(dumps(res)))
    assert dumps(back) == dumps(res)
    tab = res.summary()
    assert isinstance(tab, Table)
    for text in (tab.as_text(), tab.as_markdown(), tab.as_html()):
        assert "poverty" in text and "P10-" in text and "per 1,000" in text
    assert dumps(link(*simulate_link_data(80, 8, seed=30), weights="enrollment")) == dumps(res)


def test_bright_spot_result_round_trip_and_render():
    bs, bo, _ = simulate_bright_spot_data(120, 12, 8, seed=31)
    res = bright_spots(bs, bo)
    back = BrightSpotResult.from_dict(json.loads(dumps(res)))
    assert dumps(back) == dumps(res) and back.bright_spot_ids == res.bright_spot_ids
    assert "Bright Spot" in res.summary().as_markdown()


def test_public_api_exports():
    assert ins.link is link and ins.sensitivity is sensitivity and ins.bright_spots is bright_spots


def test_cli_link(tmp_path):
    s, o = simulate_link_data(80, 8, seed=32)
    s.to_csv(tmp_path / "scores.csv", index=False)
    o.to_csv(tmp_path / "outcomes.csv", index=False)
    out = tmp_path / "link.json"
    r = CliRunner().invoke(main, ["link", str(tmp_path / "scores.csv"), str(tmp_path / "outcomes.csv"),
                                  "--outcome", "chronic_absence", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "P10->P90" in r.output
    res = LinkResult.from_dict(json.loads(out.read_text()))
    assert_allclose(res.score["est"], link(s, o).score["est"], rtol=1e-9)
    bad = CliRunner().invoke(main, ["link", str(tmp_path / "scores.csv"), str(tmp_path / "outcomes.csv"),
                                    "--construct", "nope"])
    assert bad.exit_code != 0 and "construct='nope'" in bad.output
