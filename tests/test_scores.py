"""School scores: ICC1 against the lme4/psych reference, scoring rules, 1-99 scale, suppression."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import instrument as ins
from instrument.responses import ResponseSet, normalize_dtypes
from instrument.scores import (SCORE_COLUMNS, _icc1_anova, band_of, benchmark_table,
                               respondent_scores, school_scores, scores_summary, spearman_brown,
                               suppression_list)
from instrument.simulate import simulate

FIX = Path(__file__).parent / "fixtures" / "scores"
RTOL_EXACT = 1e-9   # closed-form statistics vs the R reference (15 significant digits stored)


class TestICCAgainstReference:
    @classmethod
    def setup_class(cls):
        cls.ref = json.loads((FIX / "f_mathach_icc.json").read_text())["MathAch"]
        d = pd.read_csv(FIX / "MathAchieve_school_mathach.csv", dtype={"School": str})
        cls.icc = _icc1_anova(d["MathAch"].to_numpy(float), d["School"].to_numpy())

    def test_icc1_anova_n0(self):
        assert_allclose(self.icc, self.ref["anova"]["icc1_anova_n0"], rtol=RTOL_EXACT)

    def test_spearman_brown_at_n0(self):
        n0 = self.ref["anova"]["n0_adjusted_group_size"]
        assert_allclose(spearman_brown(self.icc, n0),
                        self.ref["icc2_spearman_brown"]["from_anova_icc1_n0"], rtol=RTOL_EXACT)


def make_responses(toy_bank, sizes: dict[str, int], *, seed=0, school_sd=0.6, form="teacher"):
    """Responses with a school effect: codes = clip(round(2.5 + u_s + e), 1, 4|5)."""
    rng = np.random.default_rng(seed)
    items = toy_bank.items_for(form)
    scale = toy_bank.items.set_index("item_id")["scale"]
    rows = []
    k = 0
    for s, n in sizes.items():
        u = rng.normal(0, school_sd)
        for _ in range(n):
            k += 1
            row = {"respondent_id": f"R{k}", "school_id": s, "district_id": "D1",
                   "language": "en"}
            eta = u + rng.normal()
            for it in items:
                top = max(toy_bank.scales[scale[it]].codes)
                row[it] = float(np.clip(np.round(2.5 + eta + rng.normal(0, 0.7)), 1, top))
            rows.append(row)
    data = normalize_dtypes(pd.DataFrame(rows), items)
    return ResponseSet(form=form, data=data, items=tuple(items))


def full_rosters(rs):
    """An outcomes table whose rosters equal the respondents (response rate 1)."""
    n = rs.data.groupby("school_id").size()
    return pd.DataFrame({"school_id": n.index, "district_id": "D1", "roster_teachers": n.values,
                         "roster_families": n.values})


def constructs(bank, form="teacher"):
    return list(dict.fromkeys(bank.items[bank.items["form"] == form]["construct"]))


def icc_all(bank, value, form="teacher"):
    return {c: value for c in constructs(bank, form) + ["overall"]}


class TestRespondentScores:
    def test_reverse_recoding_and_item_share(self, toy_bank):
        it = toy_bank.items[toy_bank.items["form"] == "teacher"]
        rev = it[it["reverse"]].iloc[0]
        c = rev["construct"]
        items = toy_bank.items_for("teacher", c)
        k = len(items)
        top = max(toy_bank.scales[rev["scale"]].codes)
        rs = make_responses(toy_bank, {"S1": 3})
        d = rs.data.copy()
        first = [i for i in items if i != rev["item_id"]][0]
        d.loc[0, items] = 2.0
        d.loc[0, rev["item_id"]] = 1.0                  # reverse-keyed: recoded to top
        d.loc[1, items] = np.nan
        d.loc[1, items[: (k - 1) // 2]] = 2.0           # fewer than half answered
        d.loc[2, items] = np.nan
        half = [first] + [i for i in items if i not in (first, rev["item_id"])][: -(-k // 2) - 1]
        d.loc[2, half] = 3.0                            # exactly ceil(k/2) answered
        rs = ResponseSet(form="teacher", data=d, items=rs.items)
        sc = respondent_scores(rs, bank=toy_bank)
        assert "respondent_id" not in sc.columns
        assert sc.loc[0, c] == pytest.approx((2 * (k - 1) + top) / k)
        assert np.isnan(sc.loc[1, c])
        assert sc.loc[2, c] == pytest.approx(3.0)
        cons = constructs(toy_bank)
        assert sc.loc[0, "overall"] == pytest.approx(sc.loc[0, cons].mean())
        assert sc.loc[1, "overall"] == pytest.approx(sc.loc[1, cons].mean())  # 2 of 3 constructs


class TestScaleAndBands:
    @pytest.mark.parametrize("score, band", [(1, "Very Weak"), (19.99, "Very Weak"), (20, "Weak"),
                                             (39.9, "Weak"), (40, "Neutral"), (60, "Strong"),
                                             (80, "Very Strong"), (99, "Very Strong"),
                                             (np.nan, None)])
    def test_band_cuts(self, score, band):
        assert band_of(score) == band

    def test_given_benchmark(self, toy_bank):
        rs = make_responses(toy_bank, {f"S{i}": 30 for i in range(6)}, seed=1)
        oc = full_rosters(rs)
        raw = school_scores(rs, bank=toy_bank, outcomes=oc, icc1=icc_all(toy_bank, 0.3))
        m = raw[raw["construct"] == "communication"].set_index("school_id")["mean"]
        bm = {c: {"mean": float(m["S0"]), "sd": 0.1} for c in icc_all(toy_bank, 0)}
        sc = school_scores(rs, bank=toy_bank, outcomes=oc, benchmark=bm,
                           icc1={c: 0.3 for c in bm})
        s = sc[sc["construct"] == "communication"].set_index("school_id")
        assert s.loc["S0", "score"] == pytest.approx(50.0)
        exact = np.clip(50 + 20 * (m - m["S0"]) / 0.1, 1, 99).reindex(s.index)
        assert_allclose(s["score"], np.floor(exact + 0.5))     # printed whole numbers
        assert s["score"].between(1, 99).all()
        assert_allclose(s["score_se"], 20 * s["se"] / 0.1)

    def test_default_benchmark_is_shown_schools(self, toy_bank):
        rs = make_responses(toy_bank, {f"S{i}": 25 for i in range(30)}, seed=2, school_sd=0.3)
        sc = school_scores(rs, bank=toy_bank, outcomes=full_rosters(rs))
        shown = sc[~sc["suppressed"] & (sc["construct"] == "overall")]
        assert len(shown) == 30
        m = shown["mean"]
        exact = np.clip(50 + 20 * (m - m.mean()) / m.std(ddof=1), 1, 99)
        assert_allclose(shown["score"], np.floor(exact + 0.5))
        bt = benchmark_table(sc).set_index("construct")
        assert bt.loc["overall", "n_schools"] == len(shown)

    def test_columns_and_no_respondent_ids(self, toy_bank):
        rs = make_responses(toy_bank, {"S1": 12, "S2": 14})
        sc = school_scores(rs, bank=toy_bank)
        assert tuple(sc.columns) == SCORE_COLUMNS
        assert not sc.astype(str).isin(rs.data["respondent_id"].tolist()).any().any()

    def test_se_and_reliability(self, toy_bank):
        rs = make_responses(toy_bank, {"S1": 15, "S2": 20, "S3": 11}, seed=4)
        icc = icc_all(toy_bank, 0.2)
        c0 = constructs(toy_bank)[0]
        sc = school_scores(rs, bank=toy_bank, icc1=icc, outcomes=full_rosters(rs))
        r = respondent_scores(rs, bank=toy_bank)
        s = sc[sc["construct"] == c0].set_index("school_id")
        g = r.groupby("school_id")[c0]
        assert_allclose(s["se"], (g.std(ddof=1) / np.sqrt(g.count())).reindex(s.index))
        assert_allclose(s["reliability"], s["n"] * 0.2 / (1 + (s["n"] - 1) * 0.2))

    def test_argument_checks(self, toy_bank):
        rs = make_responses(toy_bank, {"S1": 12})
        with pytest.raises(TypeError, match=r"min_n= must be an instrument.rules.Rule; got int"):
            school_scores(rs, bank=toy_bank, min_n=5)
        with pytest.raises(TypeError, match=r"responses= must be a ResponseSet; got DataFrame"):
            school_scores(rs.data, bank=toy_bank)
        with pytest.raises(ValueError, match=r"icc1= lacks construct\(s\)"):
            school_scores(rs, bank=toy_bank, icc1={"overall": 0.1})

    def test_fit_must_be_a_cfa_result(self, toy_bank):
        # factor-score school means are tested in test_panel.py (TestFactorScoreSchoolMeans)
        rs = make_responses(toy_bank, {"S1": 12})
        with pytest.raises(TypeError, match="fit= must be a CFAResult"):
            school_scores(rs, bank=toy_bank, fit=object())


class TestSuppression:
    """S_ok and S_ok2 shown; S_small below the privacy gate; S_lowrate below the representativeness gate
    (rate .15); S_reliable has a low rate (.20 < .50) and reliability >= .70 -> still not shown
    (precision never makes up for non-response); S_none has no respondents at all."""

    @pytest.fixture(autouse=True)
    def _icc(self, toy_bank):
        self.ICC = {**icc_all(toy_bank, 0.05), **icc_all(toy_bank, 0.05, "family")}

    @pytest.fixture
    def case(self, toy_bank):
        rs = make_responses(toy_bank, {"S_ok": 14, "S_small": 8, "S_lowrate": 15,
                                       "S_reliable": 50, "S_ok2": 30}, seed=3)
        outcomes = pd.DataFrame({"school_id": ["S_ok", "S_small", "S_lowrate", "S_reliable",
                                               "S_ok2", "S_none"],
                                 "district_id": "D1", "roster_teachers": [20, 10, 100, 250, 40,
                                                                          30],
                                 "roster_families": 100})
        sc = school_scores(rs, bank=toy_bank, outcomes=outcomes, icc1=self.ICC)
        return rs, outcomes, sc

    def test_gates_and_reasons(self, case):
        _, _, sc = case
        by = sc[sc["construct"] == "overall"].set_index("school_id")
        assert not by.loc["S_ok", "suppressed"]
        assert by.loc["S_ok", "precision"] == "low"          # reliability .42: shown, flagged
        assert by.loc["S_small", "suppression_reason"] == "privacy gate: n = 8 < 10"
        assert by.loc["S_small", "suppression_code"] == "privacy"
        assert by.loc["S_lowrate", "suppression_reason"] == (
            "representativeness gate: response rate 0.15 < 0.5")
        assert by.loc["S_lowrate", "suppression_code"] == "response_rate"
        assert by.loc["S_reliable", "suppressed"]
        assert by.loc["S_reliable", "response_rate"] == pytest.approx(0.2)
        assert by.loc["S_reliable", "reliability"] >= 0.70
        assert by.loc["S_none", "n"] == 0 and by.loc["S_none", "suppressed"]
        assert by.loc["S_none", "suppression_reason"].startswith("privacy gate: n = 0 < 10")
        assert by.loc["S_none", "suppression_code"] == "privacy; response_rate"

    def test_shown_scores_carry_interval_and_band_probability(self, toy_bank):
        rs = make_responses(toy_bank, {f"S{i}": 12 + i for i in range(12)}, seed=6)
        sc = school_scores(rs, bank=toy_bank, outcomes=full_rosters(rs), icc1=self.ICC)
        shown = sc[~sc["suppressed"]]
        assert len(shown) == len(sc)
        assert shown["band_probability"].between(0, 1).all()
        assert (shown["ci.lower"] <= shown["score"]).all()
        assert (shown["score"] <= shown["ci.upper"]).all()
        assert (shown["score"] == np.floor(shown["score"])).all()
        assert [band_of(v) for v in shown["score"]] == list(shown["band"])

    def test_blanked_in_every_output(self, case, tmp_path):
        _, _, sc = case
        sup = sc[sc["suppressed"]]
        assert set(sup["school_id"]) == {"S_small", "S_lowrate", "S_reliable", "S_none"}
        assert sup[["mean", "se", "score", "score_se", "ci.lower", "ci.upper",
                    "band_probability"]].isna().all().all()
        assert sup["band"].isna().all()
        shown = sc[~sc["suppressed"]]
        assert shown[["mean", "se", "score"]].notna().all().all()
        lst = suppression_list(sc)
        assert set(lst["school_id"]) == {"S_small", "S_lowrate", "S_reliable", "S_none"}
        assert "mean" not in lst.columns and "score" not in lst.columns
        summ = scores_summary(sc).frame.set_index("construct")
        assert summ.loc["overall", "suppressed"] == 4 and summ.loc["overall", "shown"] == 2
        from instrument.io import safe_to_csv
        p = tmp_path / "scores.csv"
        safe_to_csv(sc, p)
        back = pd.read_csv(p)
        bs = back[back["suppressed"]]
        assert bs[["mean", "se", "score", "band"]].isna().all().all()

    def test_unknown_roster_is_not_shown(self, toy_bank):
        rs = make_responses(toy_bank, {"A": 12, "B": 60}, seed=5)
        sc = school_scores(rs, bank=toy_bank, icc1=self.ICC)
        by = sc[sc["construct"] == "overall"].set_index("school_id")
        assert by.loc["B", "reliability"] >= 0.70 and np.isnan(by.loc["B", "response_rate"])
        for s in ("A", "B"):
            assert by.loc[s, "suppression_reason"] == (
                "representativeness gate: response rate unknown (no roster)")
            assert by.loc[s, "suppression_code"] == "response_rate_unknown"

    def test_family_form_rate_rule(self, toy_bank):
        rs = make_responses(toy_bank, {"A": 12}, form="family")
        oc = pd.DataFrame({"school_id": ["A"], "district_id": ["D1"], "roster_teachers": [1000],
                           "roster_families": [50]})
        sc = school_scores(rs, bank=toy_bank, outcomes=oc, icc1=self.ICC)
        assert not sc["suppressed"].any()                 # 12/50 = .24 >= .20 (families)
        assert sc["response_rate"].iloc[0] == pytest.approx(0.24)


def test_on_simulated_default_plan(toy_bank):
    sim = simulate("default", bank=toy_bank)
    sc = ins.school_scores(sim.teacher, bank=toy_bank, outcomes=sim.outcomes)
    assert sc["school_id"].nunique() == 300
    ov = sc[(sc["construct"] == "overall") & ~sc["suppressed"]].set_index("school_id")
    g = sim.truth.schools.set_index("school_id")["engagement"].reindex(ov.index)
    assert np.corrcoef(ov["score"], g)[0, 1] > 0.5   # scores track true school engagement
    assert sc.loc[sc["suppressed"], ["mean", "score"]].isna().all().all()
