"""Panels (issue 12): simulated survey years with known district, school and change effects, and
the policy instrument (variance components, band accuracy, change, change_link, suppression) and
CFA factor-score school means checked against the planted truth (fixed seeds)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument import policy
from instrument.plans import PlanError
from instrument.population import load_plan
from instrument.responses import ResponseSet
from instrument.results import dumps
from instrument.scores import (benchmark_table, respondent_factor_scores, respondent_scores,
                               school_scores)
from instrument.simulate import (Simulation, Truth, Z90_MINUS_Z10, expected_icc_of_mean,
                                 simulate, true_school_means)

# Named tolerances (sampling error at the sizes used; measured values in the comments)
ATOL_SHARE_REALIZED = 0.06   # REML district share vs the realised share of the true school
#                              means, 800 schools / 200 districts (measured |diff| .01-.05)
ATOL_SHARE_POPULATION = 0.12  # vs the population share: + sampling of 200 districts (SE ~.05)
ATOL_ICC_TOTAL = 0.03        # (tau_d + tau_s) / total vs the model-implied ICC of the raw mean
RTOL_SIGMA2 = 0.05           # within-school variance vs model-implied, ~20,000 respondents
ATOL_ACCURACY = 0.03         # expected band accuracy vs realised share over replications
ATOL_REL_CHANGE = 0.05       # reliability of change vs var(true change) / var(observed change)
RTOL_CHANGE_EFFECT = 0.35    # reliability-corrected change effect vs the planted one (SE ~15%)
C = "communication"          # the construct checked (teacher ICC .25 in the panel plan)


def panel_spec(*, schools=None, districts=None, teachers=None, change_sd=None) -> dict:
    """The shipped panel plan with a token family form (the checks use the teacher form)."""
    s = copy.deepcopy(dict(load_plan("panel").spec))
    sim = s["simulation"]
    sim["forms"]["family"]["respondents"] = {"mean": 2, "dispersion": 5.0}
    if schools:
        sim["schools"].update(n=schools, districts=districts)
    if teachers:
        sim["forms"]["teacher"]["respondents"] = {"mean": teachers, "dispersion": 50.0}
    if change_sd is not None:
        sim["years"]["change_sd"] = change_sd
    return s


def year_set(rs: ResponseSet, year: int) -> ResponseSet:
    d = rs.data[rs.data["year"] == year].drop(columns="year")
    return ResponseSet(form=rs.form, data=d, items=rs.items, source=rs.source)


def realised_components(values: pd.Series, district: pd.Series) -> tuple[float, float]:
    """Method-of-moments district and school-within-district variance of school values."""
    g = values.groupby(district)
    n = g.size()
    S, D = len(values), len(n)
    within = float(((values - g.transform("mean")) ** 2).sum() / (S - D))
    msb = float((n * (g.mean() - values.mean()) ** 2).sum() / (D - 1))
    n0 = (S - (n ** 2).sum() / S) / (D - 1)
    return (msb - within) / n0, within


# --- the simulator ----------------------------------------------------------------------------------

class TestPanelSimulation:
    def test_shape_and_truth(self, toy_bank):
        sim = simulate("panel", bank=toy_bank)
        assert sim.meta.options["years"] == [2025, 2026]
        for rs in (sim.teacher, sim.family):
            d = rs.data
            assert list(d.columns[:5]) == ["respondent_id", "school_id", "district_id",
                                           "language", "year"]
            assert set(d["year"]) == {2025, 2026} and d["respondent_id"].is_unique
            assert "year" in rs.background
        o = sim.outcomes
        assert list(o.columns[:3]) == ["school_id", "district_id", "year"]
        assert len(o) == 2 * 400 and not o.duplicated(["school_id", "year"]).any()
        # the later year's prior is the earlier year's current value
        wide = o.pivot(index="school_id", columns="year", values=["chronic_absence",
                                                                   "chronic_absence_prior"])
        assert_allclose(wide[("chronic_absence_prior", 2026)], wide[("chronic_absence", 2025)])
        p = sim.truth.panel
        assert len(p) == 800 and p.loc[p["year"] == 2025, "engagement_change"].isna().all()
        w = p.pivot(index="school_id", columns="year", values="engagement")
        ch = p[p["year"] == 2026].set_index("school_id")["engagement_change"]
        assert_allclose(w[2026] - w[2025], ch.loc[w.index])
        assert 0.4 < ch.std() < 0.6                            # change_sd .50
        # persistent construct parts: the change of a school effect is sqrt(icc) g change
        u = p.pivot(index="school_id", columns="year", values=f"u.teacher.{C}")
        assert_allclose(u[2026] - u[2025], np.sqrt(0.25) * 0.8 * ch.loc[u.index], atol=1e-12)
        v = sim.truth.variance.set_index(["year", "form", "construct"])
        # engagement: r^2 p + (1 - r^2) q = .04 * .3 + .96 * .4
        assert_allclose(v.loc[(2025, "", "engagement"), "district"], 0.396)
        assert_allclose(v.loc[(2025, "teacher", C), "district_share"], 0.64 * 0.396)
        assert_allclose(v.loc[(2026, "teacher", C), "change"], 0.25 * 0.64 * 0.25)
        eff = sim.truth.effects
        assert (eff["predictor"] == "engagement_change").sum() == 4

    def test_year_zero_is_the_one_year_simulation(self, toy_bank):
        spec = panel_spec()
        one = copy.deepcopy(spec)
        del one["simulation"]["years"]
        a, b = simulate(spec, seed=4, bank=toy_bank), simulate(one, seed=4, bank=toy_bank)
        first = year_set(a.teacher, 2025).data.drop(columns="respondent_id")
        pd.testing.assert_frame_equal(first.reset_index(drop=True),
                                      b.teacher.data.drop(columns="respondent_id"))
        o = a.outcomes[a.outcomes["year"] == 2025].drop(columns="year").reset_index(drop=True)
        pd.testing.assert_frame_equal(o, b.outcomes)
        assert b.truth.panel is None and "year" not in b.outcomes.columns

    def test_reproducible_and_round_trips(self, toy_bank):
        spec = panel_spec(schools=30, districts=6)
        a, b = simulate(spec, seed=3, bank=toy_bank), simulate(spec, seed=3, bank=toy_bank)
        pd.testing.assert_frame_equal(a.teacher.data, b.teacher.data)
        pd.testing.assert_frame_equal(a.outcomes, b.outcomes)
        pd.testing.assert_frame_equal(a.truth.panel, b.truth.panel)
        c = simulate(spec, seed=3, bank=toy_bank, respondent_seed=9)
        pd.testing.assert_frame_equal(c.truth.panel, a.truth.panel)      # same schools ...
        pd.testing.assert_frame_equal(c.truth.items, a.truth.items)
        assert not c.teacher.data.equals(a.teacher.data)                 # ... new respondents
        back = Simulation.from_dict(json.loads(dumps(a)))
        pd.testing.assert_frame_equal(back.truth.variance, a.truth.variance)
        pd.testing.assert_frame_equal(back.truth.panel, a.truth.panel, check_dtype=False)
        pd.testing.assert_frame_equal(back.teacher.data, a.teacher.data)
        t2 = Truth.from_dict(json.loads(json.dumps(a.truth.to_dict())))
        assert t2.panel is not None and len(t2.panel) == len(a.truth.panel)

    def test_plan_schema(self):
        s = panel_spec()
        s["simulation"]["years"]["change_engagement_effect"]["reading"] = 0.1
        with pytest.raises(PlanError) as e:
            load_plan(s)
        assert str(e.value) == (
            "<dict>: simulation.years.change_engagement_effect.reading: unknown key; expected one "
            "of ['attendance', 'chronic_absence', "
            "'ela_proficiency', 'math_proficiency']")
        s = panel_spec()
        s["simulation"]["years"]["n"] = 0
        with pytest.raises(PlanError) as e:
            load_plan(s)
        assert str(e.value) == "<dict>: simulation.years.n: expected a whole number >= 1; got 0"

    def test_outcome_change_follows_true_engagement_change(self, toy_bank):
        # OLS of the 2026 outcome change on the true engagement change (and the other true
        # predictors) recovers b_D = contrast / (z90 - z10) / change_sd per unit change.
        spec = panel_spec(schools=3000, districts=100)
        sim = simulate(spec, seed=5, bank=toy_bank)
        o = sim.outcomes[sim.outcomes["year"] == 2026].set_index("school_id")
        p = sim.truth.panel.pivot(index="school_id", columns="year", values="engagement")
        dG = sim.truth.panel[sim.truth.panel["year"] == 2026].set_index("school_id")[
            "engagement_change"]
        z = sim.truth.schools.set_index("school_id")["poverty_z"]
        X = np.column_stack([np.ones(len(o)), p.loc[o.index, 2025], z.loc[o.index],
                             dG.loc[o.index]])
        y = (o["math_proficiency"] - o["math_proficiency_prior"]).to_numpy()
        b = np.linalg.lstsq(X, y, rcond=None)[0]
        assert abs(b[3] - 0.025 / Z90_MINUS_Z10 / 0.5) < 0.0033  # 3 SE (SE ~ .0011)


# --- variance components ------------------------------------------------------------------------------

class TestVarianceComponentsRecovery:
    """REML (policy.variance_components) on respondents' raw construct means, year 2025."""

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def setup(cls, toy_bank):
        spec = panel_spec(schools=800, districts=200, teachers=25)
        sim = simulate(spec, seed=2, bank=toy_bank)
        rs = respondent_scores(year_set(sim.teacher, 2025), bank=toy_bank)
        cls.vc = policy.variance_components(rs, C)
        cls.true_means = true_school_means(sim.truth, "teacher", C, bank=toy_bank, year=2025)
        cls.between, cls.within = expected_icc_of_mean(sim.truth, "teacher", C)
        v = sim.truth.variance
        cls.pop_share = float(v.loc[(v["year"] == 2025) & (v["form"] == "teacher")
                                    & (v["construct"] == C), "district_share"].iloc[0])

    def test_converged(self):
        assert self.vc.converged and self.vc.n_districts == 200

    def test_district_share_against_realised_truth(self):
        tm = self.true_means
        tau_d, tau_s = realised_components(tm["mean"], tm["district_id"])
        share = self.vc.tau_district / (self.vc.tau_district + self.vc.tau_school)
        assert abs(share - tau_d / (tau_d + tau_s)) < ATOL_SHARE_REALIZED
        assert abs(self.vc.tau_school - tau_s) < 0.15 * tau_s

    def test_district_share_against_population(self):
        share = self.vc.tau_district / (self.vc.tau_district + self.vc.tau_school)
        assert abs(share - self.pop_share) < ATOL_SHARE_POPULATION

    def test_school_level_share_and_within(self):
        icc = (self.vc.tau_district + self.vc.tau_school) / self.vc.total
        assert abs(icc - self.between / (self.between + self.within)) < ATOL_ICC_TOTAL
        assert_allclose(self.vc.sigma2, self.within, rtol=RTOL_SIGMA2)


# --- band accuracy and change reliability over measurement replications ---------------------------

N_REPS = 12


@pytest.fixture(scope="module")
def replications(toy_bank):
    """The same 400 schools measured N_REPS times (new respondents each time, both years)."""
    spec = panel_spec(teachers=20, change_sd=1.0)
    base = simulate(spec, seed=8, bank=toy_bank)
    tm = {y: true_school_means(base.truth, "teacher", C, bank=toy_bank, year=y)
          .set_index("school_id")["mean"] for y in (2025, 2026)}
    # one fixed benchmark from the true 2025 means, so true and observed scores share a scale;
    # its SD is 1.5 x theirs so that (nearly) no score is clipped at 1 or 99 in either year
    # (clipping truncates errors, and the change-reliability formula then understates it)
    mu, sd = float(tm[2025].mean()), 1.5 * float(tm[2025].std())
    bench = {c: (mu, sd) if c == C else (0.0, 1.0)
             for c in ("mindsets", "communication", "language_culture", "overall")}
    true_score = {y: pd.Series(np.clip(50 + 20 * (m - mu) / sd, 1, 99), index=m.index)
                  for y, m in tm.items()}
    reps = []
    for r in range(N_REPS):
        sim = simulate(spec, seed=8, bank=toy_bank, respondent_seed=100 + r)
        sc = school_scores(sim.teacher, bank=toy_bank, outcomes=sim.outcomes, benchmark=bench)
        reps.append(sc[sc["construct"] == C])
    return {"reps": reps, "true_score": true_score, "sd": sd}


class TestBandAccuracyOverReplications:
    def test_expected_accuracy_matches_realised(self, replications):
        realised, expected, rudner = [], [], []
        for sc in replications["reps"]:
            for y in (2025, 2026):
                g = sc[(sc["year"] == y) & ~sc["suppressed"]]
                score_se = 20 * g["se"].to_numpy() / replications["sd"]
                true_band = policy.band_of(replications["true_score"][y].loc[g["school_id"]])
                realised.append(np.mean(policy.band_of(g["score"].to_numpy()) == true_band))
                expected.append(policy.classification_accuracy(
                    g["score"].to_numpy(), score_se).overall["accuracy"])
                rudner.append(policy.classification_accuracy(
                    g["score"].to_numpy(), score_se, method="rudner").overall["accuracy"])
        # measured: realised .63-.66, bayes within .01-.02, Rudner slightly higher
        assert abs(np.mean(expected) - np.mean(realised)) < ATOL_ACCURACY
        assert abs(np.mean(rudner) - np.mean(realised)) < ATOL_ACCURACY + 0.01
        assert 0.3 < np.mean(realised) < 0.95   # not a degenerate case


class TestChangeReliabilityOverReplications:
    def test_reliability_of_change_recovers_true_change_variance(self, replications):
        est, true = [], []
        dT = replications["true_score"][2026] - replications["true_score"][2025]
        for sc in replications["reps"]:
            res = policy.change(sc)
            row = res.summary_frame.iloc[0]
            ids = res.by_school["school_id"]
            est.append(row["reliability_change"])
            true.append(float(dT.loc[ids].var(ddof=1)) / row["var_change"])
        # measured: mean estimate within ~.02 of the true ratio (~.5)
        assert abs(np.mean(est) - np.mean(true)) < ATOL_REL_CHANGE
        assert 0.3 < np.mean(true) < 0.8

    def test_change_se_matches_spread_of_replications(self, replications):
        # SE of a school's change vs the SD of its change over replications
        ch = pd.concat([policy.change(sc).by_school.assign(rep=k)
                        for k, sc in enumerate(replications["reps"])])
        g = ch.groupby("school_id")
        sd = g["change"].std(ddof=1)[g.size() == N_REPS]
        se = g["se"].apply(lambda s: np.sqrt(np.mean(s ** 2)))[sd.index]
        assert abs(np.mean(sd ** 2) / np.mean(se ** 2) - 1) < 0.10


# --- change in practice vs change in outcomes -------------------------------------------------------

class TestChangeLink:
    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def setup(cls, toy_bank):
        spec = panel_spec(schools=800, districts=200, teachers=25, change_sd=1.0)
        sim = simulate(spec, seed=6, bank=toy_bank)
        cls.sim = sim
        cls.scores = school_scores(sim.teacher, bank=toy_bank, outcomes=sim.outcomes)
        cls.res = policy.change_link(cls.scores, sim.outcomes, outcome="chronic_absence",
                                     construct=C)
        # slope of the true score change on the true engagement change (score points per unit)
        bm = benchmark_table(cls.scores[cls.scores["year"] == 2025]).set_index("construct")
        sd = bm.loc[C, "sd"]
        tm = {y: true_school_means(sim.truth, "teacher", C, bank=toy_bank, year=y)
              .set_index("school_id")["mean"] for y in (2025, 2026)}
        dT = 20 * (tm[2026] - tm[2025]) / sd
        p = sim.truth.panel
        dG = p[p["year"] == 2026].set_index("school_id")["engagement_change"].loc[dT.index]
        # est_corrected estimates b_D cov(dG, dT) / var(dT) per score point, so b_D is
        # est_corrected * k with k = var(dT) / cov(dT, dG)
        cls.k = float(np.var(dT, ddof=1) / np.cov(dT, dG)[0, 1])

    def test_result_is_change_on_change(self):
        r = self.res
        assert r.change and r.meta.options["years"] == [2025, 2026]
        assert r.meta.options["score"] == "change"
        assert any("change in the teacher communication score from 2025 to 2026" in n
                   for n in r.notes)
        assert r.sample["n_used"] + r.sample["n_suppressed"] == 800
        assert r.disattenuation["reliability_source"] == "se"

    def test_improvement_in_practice_predicts_improvement_in_outcomes(self):
        # planted: P90-P10 of the true engagement change lowers chronic absence by 4.0 points;
        # per unit of engagement change b_D = -.040 / 2.563 / 1.0
        b_true = -0.040 / Z90_MINUS_Z10 / 1.0
        sc = self.res.score
        assert sc["ci.upper"] < 0                                   # detected
        # the corrected coefficient per score point, times score points per unit of true
        # engagement change (k = var(dT) / cov(dT, dG)), is the effect per unit change
        b_hat = self.res.disattenuation["est_corrected"] * self.k
        assert abs(b_hat - b_true) < RTOL_CHANGE_EFFECT * abs(b_true)

    def test_no_planted_effect_no_finding(self, toy_bank):
        spec = panel_spec(schools=400, districts=80, change_sd=1.0)
        spec["simulation"]["years"]["change_engagement_effect"] = {}
        sim = simulate(spec, seed=6, bank=toy_bank)
        sc = school_scores(sim.teacher, bank=toy_bank, outcomes=sim.outcomes)
        r = policy.change_link(sc, sim.outcomes, outcome="chronic_absence", construct=C)
        assert r.score["ci.lower"] < 0 < r.score["ci.upper"]

    def test_outcomes_without_year_column(self):
        late = self.sim.outcomes[self.sim.outcomes["year"] == 2026].drop(columns="year")
        r = policy.change_link(self.scores, late, outcome="chronic_absence", construct=C)
        assert_allclose(r.score["est"], self.res.score["est"], rtol=1e-10)

    def test_needs_two_years(self):
        with pytest.raises(ValueError, match="at least two"):
            policy.change_link(self.scores[self.scores["year"] == 2025], self.sim.outcomes)


# --- suppression of small districts everywhere ------------------------------------------------------

class TestDistrictSuppressionEverywhere:
    """District P: 3 respondents per school (privacy gate). District R: 10 respondents per school,
    rosters of 1000 (response rate < .50: representativeness gate).
    Both years, both forms. Their schools and the districts must be hidden in every output."""

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def setup(cls, toy_bank):
        spec = panel_spec(schools=120, districts=20)
        spec["simulation"]["forms"]["family"]["respondents"] = {"mean": 30, "dispersion": 50.0}
        sim = simulate(spec, seed=12, bank=toy_bank)
        counts = sim.outcomes[sim.outcomes["year"] == 2025].groupby("district_id").size()
        big = counts[counts >= 3].index
        cls.P, cls.R = big[0], big[1]
        outcomes = sim.outcomes.copy()
        outcomes.loc[outcomes["district_id"] == cls.R, ["roster_teachers", "roster_families"]] = 1000
        frames = []
        for rs in (sim.teacher, sim.family):
            d = rs.data
            k = d.groupby(["school_id", "year"]).cumcount()
            keep = ~((d["district_id"] == cls.P) & (k >= 3)) & ~((d["district_id"] == cls.R)
                                                                   & (k >= 10))
            small = ResponseSet(form=rs.form, data=d[keep], items=rs.items, source="test")
            icc1 = {c: 0.10 for c in ("mindsets", "communication", "language_culture", "overall")}
            frames.append(school_scores(small, bank=toy_bank, outcomes=outcomes, icc1=icc1))
        cls.scores = pd.concat(frames, ignore_index=True)
        cls.outcomes = outcomes
        cls.hidden = set(cls.scores.loc[cls.scores["district_id"].isin([cls.P, cls.R]),
                                        "school_id"])

    def test_school_rows_suppressed_by_the_right_gate(self):
        s = self.scores
        p = s[s["district_id"] == self.P]
        r = s[s["district_id"] == self.R]
        assert p["suppressed"].all() and p["suppression_reason"].str.contains("privacy").all()
        assert r["suppressed"].all()
        r10 = r[r["n"] >= 10]       # schools that had 10 or more respondents to begin with
        assert len(r10) > 0 and r10["suppression_reason"].str.contains("representativeness").all()
        assert not r10["suppression_reason"].str.contains("privacy").any()
        assert s.loc[s["district_id"].isin([self.P, self.R]), ["mean", "se", "score"]
                     ].isna().all().all()
        assert (~s["suppressed"]).sum() > 0.5 * len(s)   # the others are mostly shown

    def test_rollup(self):
        for y in (2025, 2026):
            out = policy.rollup(self.scores[self.scores["year"] == y]).set_index("unit")
            for d in (self.P, self.R):
                rows = out.loc[[d]]
                assert rows["suppressed"].all() and rows["score"].isna().all()
                assert rows["se"].isna().all() and (rows["n_schools"] == 0).all()
            assert not out.drop(index=[self.P, self.R])["suppressed"].all()
            state = policy.rollup(self.scores[self.scores["year"] == y], level="state")
            shown = self.scores[(self.scores["year"] == y) & ~self.scores["suppressed"]]
            n = shown.groupby(["form", "construct"]).size()
            assert (state.set_index(["form", "construct"])["n_schools"] == n).all()

    def test_equity(self):
        o = self.outcomes[self.outcomes["year"] == 2025]
        sc = self.scores[self.scores["year"] == 2025]
        gaps = policy.equity_gaps(sc, o, by="grade_band")
        n = gaps[~gaps["subgroup"].str.startswith("gap")].groupby(["form", "construct"])[
            "n_schools"].sum()
        shown = sc[~sc["suppressed"]].groupby(["form", "construct"]).size()
        assert (n == shown.loc[n.index]).all()
        assert not (set(sc.loc[sc["district_id"].isin([self.P, self.R]), "school_id"])
                    & set(sc.loc[~sc["suppressed"], "school_id"]))

    def test_convergence(self):
        sc = self.scores[self.scores["year"] == 2025]
        conv = policy.convergence(sc).set_index("construct")
        vis = sc[~sc["suppressed"]]
        both = vis[vis["form"] == "teacher"].merge(vis[vis["form"] == "family"],
                                                   on=["school_id", "construct"])
        assert not set(both["school_id"]) & self.hidden
        assert (conv["n_schools"] == both.groupby("construct").size().loc[conv.index]).all()

    def test_change_and_change_link(self):
        res = policy.change(self.scores)
        assert not set(res.by_school["school_id"]) & self.hidden
        assert res.by_school["change"].notna().all()
        r = policy.change_link(self.scores, self.outcomes, outcome="attendance")
        assert self.hidden <= set(r.sample["suppressed_ids"])


# --- CFA factor-score school means ------------------------------------------------------------------

class TestFactorScoreSchoolMeans:
    MODEL = ("mindsets =~ t_mind_1 + t_mind_2 + t_mind_3 + t_mind_4\n"
             "communication =~ t_comm_1 + t_comm_2 + t_comm_3 + t_comm_4\n"
             "language_culture =~ t_lang_1 + t_lang_2 + t_lang_3 + t_lang_4")

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def setup(cls, toy_bank):
        from instrument import cfa
        sim = simulate(panel_spec(schools=150, districts=30), seed=21, bank=toy_bank)
        cls.sim = sim
        cls.rs = year_set(sim.teacher, 2025)
        cls.rec = toy_bank.recode_reverse(cls.rs.item_frame(), form="teacher")
        cls.fit = cfa(cls.MODEL, cls.rec)
        o = sim.outcomes
        o = o[o["year"] == 2025].drop(columns="year") if "year" in o.columns else o
        cls.scores = school_scores(cls.rs, bank=toy_bank, fit=cls.fit, outcomes=o)
        cls.raw = school_scores(cls.rs, bank=toy_bank, outcomes=o)

    def test_fit_on_recoded_items_has_positive_loadings(self):
        est = self.fit.estimates
        lam = est[(est["op"] == "=~")]
        assert (lam["std.all"] > 0.3).all()

    def test_school_means_are_means_of_factor_scores(self, toy_bank):
        fs = self.fit.factor_scores(self.rec.reset_index(drop=True), method="regression")
        fs["school_id"] = self.rs.data["school_id"].to_numpy()
        fs["overall"] = fs[["mindsets", "communication", "language_culture"]].mean(axis=1)
        for c in ("mindsets", "communication", "language_culture", "overall"):
            g = fs.groupby("school_id")[c]
            sc = self.scores[self.scores["construct"] == c].set_index("school_id")
            shown = sc[~sc["suppressed"]]
            assert_allclose(shown["mean"], g.mean().loc[shown.index], rtol=1e-10)
            assert_allclose(shown["se"], (g.std(ddof=1) / np.sqrt(g.count())).loc[shown.index],
                            rtol=1e-10)
            assert (sc["n"] == g.count().reindex(sc.index).fillna(0)).all()

    def test_reverse_keyed_item_recoded_first(self, toy_bank):
        # scoring raw codes instead would reverse t_mind_4's contribution
        wrong = self.fit.factor_scores(self.rs.item_frame().reset_index(drop=True))
        right = respondent_factor_scores(self.rs, self.fit, bank=toy_bank)
        assert_allclose(right["mindsets"], self.fit.factor_scores(
            self.rec.reset_index(drop=True))["mindsets"], rtol=1e-12)
        assert np.nanmax(np.abs(wrong["mindsets"].to_numpy() - right["mindsets"].to_numpy())) > 0.1

    def test_tracks_raw_means_and_truth(self, toy_bank):
        fs = self.scores[(self.scores["construct"] == C) & ~self.scores["suppressed"]]
        raw = self.raw[(self.raw["construct"] == C) & ~self.raw["suppressed"]]
        fs = fs[fs["school_id"].isin(raw["school_id"])]
        raw = raw.set_index("school_id").loc[fs["school_id"]]
        assert len(fs) > 50
        assert np.corrcoef(fs["mean"], raw["mean"])[0, 1] > 0.95
        u = self.sim.truth.schools.set_index("school_id")[f"u.teacher.{C}"].loc[fs["school_id"]]
        assert np.corrcoef(fs["mean"], u)[0, 1] > 0.7
        assert fs["score"].between(1, 99).all() and fs["band"].notna().all()

    def test_bad_fit_arguments(self, toy_bank):
        with pytest.raises(TypeError, match="fit= must be a CFAResult"):
            school_scores(self.rs, bank=toy_bank, fit=object())
        fam = year_set(self.sim.family, 2025)
        with pytest.raises(ValueError, match="not items of the family responses"):
            school_scores(fam, bank=toy_bank, fit=self.fit)


# --- per-year school scores ------------------------------------------------------------------------

def test_school_scores_by_year_share_first_year_benchmark(toy_bank):
    sim = simulate(panel_spec(schools=60, districts=10), seed=2, bank=toy_bank)
    sc = school_scores(sim.teacher, bank=toy_bank, outcomes=sim.outcomes)
    assert list(sc.columns[:3]) == ["school_id", "district_id", "year"]
    one = {y: school_scores(year_set(sim.teacher, y), bank=toy_bank,
                            outcomes=sim.outcomes[sim.outcomes["year"] == y].drop(columns="year"),
                            benchmark=benchmark_table(sc[sc["year"] == 2025]))
           for y in (2025, 2026)}
    for y, ref in one.items():
        got = sc[sc["year"] == y].drop(columns="year").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ref)
    b25 = benchmark_table(sc[sc["year"] == 2025])
    assert_allclose(b25["mean"], benchmark_table(one[2025])["mean"])
    # a year's rosters come from that year's outcome rows
    o = sim.outcomes.set_index(["school_id", "year"])["roster_teachers"]
    row = sc[(sc["year"] == 2026) & (sc["n"] > 0)].iloc[0]
    assert_allclose(row["response_rate"], row["n"] / o.loc[(row["school_id"], 2026)])


# --- CLI ---------------------------------------------------------------------------------------------

def test_cli_simulate_writes_panel_and_change_runs(tmp_path, monkeypatch, toy_bank):
    from click.testing import CliRunner

    from instrument.cli import data as cli_data
    from instrument.cli import main

    monkeypatch.setattr(cli_data, "_bank", lambda: toy_bank)
    plan = tmp_path / "small_panel.yaml"
    import yaml
    plan.write_text(yaml.safe_dump(panel_spec(schools=40, districts=8)))
    res = CliRunner().invoke(main, ["simulate", str(plan), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "Panel: survey years 2025, 2026" in res.output
    t = pd.read_csv(tmp_path / "o" / "teacher.csv")
    o = pd.read_csv(tmp_path / "o" / "outcomes.csv")
    assert set(t["year"]) == {2025, 2026} and set(o["year"]) == {2025, 2026}
    truth = json.loads((tmp_path / "o" / "truth.json").read_text())["truth"]
    assert "panel" in truth and "variance" in truth
    items = tuple(toy_bank.items_for("teacher"))
    rs = ResponseSet(form="teacher", data=t.astype({"school_id": "str", "district_id": "str",
                                                    "language": "str"}), items=items)
    sc = school_scores(rs, bank=toy_bank, outcomes=o)
    sc.to_csv(tmp_path / "scores.csv", index=False)
    res = CliRunner().invoke(main, ["change", str(tmp_path / "scores.csv")])
    assert res.exit_code == 0, res.output
    assert "School change 2025 to 2026" in res.output
    res = CliRunner().invoke(main, ["change", str(tmp_path / "scores.csv"), "--outcomes",
                                    str(tmp_path / "o" / "outcomes.csv"), "--outcome",
                                    "math_proficiency"])
    assert res.exit_code == 0, res.output
    assert "change in math_proficiency" in res.output
    assert "Score = change in the teacher overall score from 2025 to 2026" in res.output


def test_construct_without_shown_schools_in_first_year_takes_a_later_benchmark(toy_bank):
    sim = simulate(panel_spec(schools=40, districts=5), seed=4, bank=toy_bank)
    d = sim.teacher.data
    d = d[~((d["year"] == 2025) & (d.groupby(["school_id", "year"]).cumcount() >= 4))]
    rs = ResponseSet(form="teacher", data=d, items=sim.teacher.items)   # 2025: all suppressed
    sc = school_scores(rs, bank=toy_bank, outcomes=sim.outcomes)
    assert sc.loc[sc["year"] == 2025, "suppressed"].all()
    later = sc[sc["year"] == 2026]
    ref = school_scores(year_set(rs, 2026), bank=toy_bank,
                        outcomes=sim.outcomes[sim.outcomes["year"] == 2026].drop(columns="year"))
    pd.testing.assert_frame_equal(later.drop(columns="year").reset_index(drop=True), ref)


def test_one_year_responses_with_panel_outcomes_is_a_clear_error(toy_bank):
    sim = simulate(panel_spec(schools=30, districts=6), seed=2, bank=toy_bank)
    with pytest.raises(ValueError, match="several rows for school_id.*pass one year's outcome"):
        school_scores(year_set(sim.teacher, 2025), bank=toy_bank, outcomes=sim.outcomes)


def test_policy_outputs_of_a_panel_are_per_year(toy_bank):
    spec = panel_spec(schools=60, districts=6)
    spec["simulation"]["forms"]["family"]["respondents"] = {"mean": 40, "dispersion": 50.0}
    sim = simulate(spec, seed=4, bank=toy_bank)
    sim_f = school_scores(sim.family, bank=toy_bank, outcomes=sim.outcomes)
    sc = pd.concat([school_scores(sim.teacher, bank=toy_bank, outcomes=sim.outcomes), sim_f],
                   ignore_index=True)
    for fn, kw in ((policy.rollup, {"outcomes": sim.outcomes, "weight": "enrollment"}),
                   (policy.equity_gaps, {"outcomes": sim.outcomes}),
                   (policy.convergence, {}), (policy.scores_accuracy, {})):
        both = fn(sc, **kw)
        assert list(both.columns[:1]) == ["year"] and set(both["year"]) == {2025, 2026}, fn
        for y in (2025, 2026):
            one_kw = dict(kw)
            if "outcomes" in kw:
                one_kw["outcomes"] = sim.outcomes[sim.outcomes["year"] == y].drop(columns="year")
            one = fn(sc[sc["year"] == y].drop(columns="year"), **one_kw)
            got = both[both["year"] == y].drop(columns="year").reset_index(drop=True)
            pd.testing.assert_frame_equal(got, one.reset_index(drop=True))
