"""Simulation: plan schema, reproducibility, and recovery of the planted truth (fixed seeds)."""
from __future__ import annotations

import copy
import json
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import instrument as ins
from instrument.plans import PlanError
from instrument.population import load_plan
from instrument.results import dumps
from instrument.scores import _icc1_anova
from instrument.simulate import (Simulation, Truth, Z90_MINUS_Z10, expected_icc_of_mean,
                                 implied_code_covariance, simulate)

# Named tolerances (sampling error at the sizes used; see each test)
ATOL_CATEGORY_SHARE = 0.03   # marginal category proportions, N ~ 6000 clustered respondents
ATOL_ICC_MEAN = 0.04         # ICC1 of construct means, 200 schools x 40: SE ~ .013
ATOL_PA_LOADING = 0.04       # principal-axis loadings vs model-implied, N ~ 6000
ATOL_DIF_SHIFT = 0.12        # probit shift of a DIF item, ~3000 per language
ATOL_EFFECT_P90_P10 = 0.006  # outcome effect contrast, 3000 schools: SE ~ .0014
ATOL_ITEM_REST_GAP = 0.10    # en-es item-rest correlation gap of a non-DIF item: SE ~ .03
MIN_LOADING_DIF_GAP = 0.15   # the gap of an item whose Spanish loading is .4 lower


def tiny_spec() -> dict:
    return copy.deepcopy(dict(load_plan("tiny").spec))


def big_teacher_spec(*, schools=200, per_school=30, icc=0.05, mcar=0.0) -> dict:
    s = tiny_spec()
    sim = s["simulation"]
    sim["schools"]["n"] = schools
    sim["schools"]["districts"] = 10
    t = sim["forms"]["teacher"]
    t["respondents"] = {"mean": per_school, "dispersion": 1000.0}
    t["icc"] = {"default": icc}
    t["spanish_share"] = {"base": 0.0, "per_el_share": 0.0}
    t["missing"] = {"mcar": mcar}
    sim["forms"]["family"]["respondents"] = {"mean": 2, "dispersion": 5.0}
    return s


# --- plans ------------------------------------------------------------------------------------------

class TestPlan:
    def test_shipped_plans_load(self):
        d = load_plan()
        assert d.name == "default" and d.seed == 20261125
        assert d.simulation["schools"]["n"] == 300 and d.simulation["schools"]["districts"] == 40
        assert load_plan("tiny").simulation["schools"]["n"] == 12

    @pytest.mark.parametrize("mutate, expected", [
        (lambda s: s["simulation"]["schools"].update(foo=1),
         "simulation.schools.foo: unknown key; expected one of ['n', 'districts', "
         "'district_concentration', 'grade_band', 'locale', 'enrollment', 'poverty', 'el_share', "
         "'engagement_poverty_correlation', 'engagement_district_share']"),
        (lambda s: s["simulation"]["schools"].pop("n"),
         "simulation.schools.n: required key missing"),
        (lambda s: s["simulation"]["forms"]["teacher"]["loadings"].update(low="high"),
         "simulation.forms.teacher.loadings.low: expected a number in (0, 1); got 'high'"),
        (lambda s: s["simulation"]["schools"].update(grade_band={"elementary": 0.5, "high": 0.2}),
         "simulation.schools.grade_band: expected shares summing to 1; got 0.7"),
        (lambda s: s["simulation"]["schools"].update(grade_band={"elementary": 0.5, "hi": 0.5}),
         "simulation.schools.grade_band.hi: expected one of 'elementary', 'middle' or 'high'; "
         "got 'hi'"),
        (lambda s: s["simulation"]["schools"].update(districts=13),
         "simulation.schools.districts: expected <= schools.n (12); got 13"),
        (lambda s: s["simulation"]["forms"]["family"]["icc"].pop("default"),
         "simulation.forms.family.icc.default: required key missing"),
        (lambda s: s["simulation"]["forms"]["family"]["icc"].update(leadership=1),
         "simulation.forms.family.icc.leadership: expected a number in [0, 1); got 1"),
        (lambda s: s["simulation"]["forms"].pop("family"),
         "simulation.forms.family: required key missing"),
        (lambda s: s["simulation"]["forms"]["teacher"]["category_probabilities"].update(
            {"4": [0.5, 0.5]}), "simulation.forms.teacher.category_probabilities.4: expected a "
                                "list of 4 probabilities > 0 summing to 1; got [0.5, 0.5]"),
        (lambda s: s["simulation"]["forms"]["teacher"]["category_probabilities"].update(
            {"four": [0.5, 0.5]}), "simulation.forms.teacher.category_probabilities.four: "
                                   "expected the number of categories as key (quoted, e.g. \"4\"); "
                                   "got 'four'"),
        (lambda s: s["simulation"]["forms"]["teacher"]["loadings"].update(low=0.9, high=0.5),
         "simulation.forms.teacher.loadings: expected low <= high; got low 0.9, high 0.5"),
        (lambda s: s["simulation"]["forms"]["teacher"]["missing"].update(
            mar={"variable": "age", "below": 1, "extra": 0.1}),
         "simulation.forms.teacher.missing.mar.variable: expected one of 'years_at_school'; "
         "got 'age'"),
        (lambda s: s["simulation"]["forms"]["teacher"].update(difficulty_sd=float("nan")),
         "simulation.forms.teacher.difficulty_sd: expected a number >= 0; got nan"),
        (lambda s: s["simulation"]["schools"].update(n=True),
         "simulation.schools.n: expected a whole number >= 2; got True"),
        (lambda s: s.update(seed=-1), "seed: expected a whole number >= 0; got -1"),
    ])
    def test_schema_errors_name_key_path(self, mutate, expected):
        s = tiny_spec()
        mutate(s)
        with pytest.raises(PlanError) as e:
            load_plan(s)
        assert str(e.value) == f"<dict>: {expected}"

    def test_every_problem_is_reported_at_once(self):
        s = tiny_spec()
        s["simulation"]["schools"].update(foo=1, n=1)
        s["simulation"]["forms"]["family"]["icc"].pop("default")
        with pytest.raises(PlanError) as e:
            load_plan(s)
        assert [ln.split(": ")[1] for ln in str(e.value).splitlines()] == [
            "simulation.schools.n", "simulation.schools.foo", "simulation.forms.family.icc.default"]

    def test_yaml_file_errors_name_file(self, tmp_path):
        p = tmp_path / "bad.yaml"
        p.write_text("simulation:\n  schools: [1, 2\n")
        with pytest.raises(PlanError, match=r"bad\.yaml:\d+: invalid YAML"):
            load_plan(p)
        p.write_text("name: x\nsimulation: {schools: 1}\n")
        with pytest.raises(PlanError) as e:
            load_plan(p)
        assert str(e.value).splitlines() == [
            f"{p}:2: simulation.schools: expected a mapping of key: value; got int",
            f"{p}:2: simulation.forms: required key missing",
            f"{p}:2: simulation.outcomes: required key missing"]

    def test_bad_plan_and_seed_arguments(self, toy_bank):
        with pytest.raises(TypeError, match=r"plan= must be a YAML path"):
            load_plan(3)
        with pytest.raises(PlanError, match=r"nope: plan file not found; expected a YAML file or "
                                            r"one of \[.*'default'.*\]"):
            load_plan("nope")
        with pytest.raises(ValueError, match=r"seed= must be a non-negative integer; got -2"):
            simulate("tiny", seed=-2, bank=toy_bank)

    def test_bank_dependent_errors(self, toy_bank):
        s = tiny_spec()
        s["simulation"]["forms"]["teacher"]["icc"]["leadershipp"] = 0.2
        with pytest.raises(ValueError, match=r"simulation.forms.teacher.icc.leadershipp: construct "
                                             r"'leadershipp' is not on this form"):
            simulate(s, bank=toy_bank)
        s = tiny_spec()
        s["simulation"]["forms"]["family"]["dif"] = [{"item": "communication[9]",
                                                      "threshold_shift": 0.3}]
        with pytest.raises(ValueError, match=r"dif\[0\].item: 'communication\[9\]' names no item"):
            simulate(s, bank=toy_bank)


# --- reproducibility and shape ------------------------------------------------------------------------

class TestReproducible:
    def test_same_seed_identical_different_seed_differs(self, toy_bank):
        a = simulate("tiny", seed=11, bank=toy_bank)
        b = simulate("tiny", seed=11, bank=toy_bank)
        c = simulate("tiny", seed=12, bank=toy_bank)
        for form in ("teacher", "family"):
            pd.testing.assert_frame_equal(a.responses(form).data, b.responses(form).data)
        pd.testing.assert_frame_equal(a.outcomes, b.outcomes)
        pd.testing.assert_frame_equal(a.truth.items, b.truth.items)
        assert not a.teacher.data.equals(c.teacher.data)
        assert not a.outcomes.equals(c.outcomes)

    def test_plan_seed_is_default(self, toy_bank):
        a = simulate("tiny", bank=toy_bank)
        b = simulate("tiny", seed=7, bank=toy_bank)
        pd.testing.assert_frame_equal(a.family.data, b.family.data)
        assert a.meta.seed == 7

    def test_contract_columns(self, toy_bank):
        sim = simulate("tiny", bank=toy_bank)
        assert isinstance(sim, Simulation) and isinstance(sim.teacher, ins.ResponseSet)
        for rs in (sim.teacher, sim.family):
            d = rs.data
            assert list(d.columns[:4]) == ["respondent_id", "school_id", "district_id", "language"]
            assert list(rs.items) == toy_bank.items_for(rs.form)
            assert set(d["language"]) <= {"en", "es"}
            assert d["respondent_id"].is_unique
            for it in rs.items:
                sc = toy_bank.scales[toy_bank.items.set_index("item_id").loc[it, "scale"]]
                vals = d[it].dropna()
                assert vals.isin(sc.codes).all() and vals.dtype == np.float64
        cols = ["school_id", "district_id", "grade_band", "enrollment", "poverty", "el_share",
                "locale", "attendance", "attendance_prior", "chronic_absence",
                "chronic_absence_prior", "ela_proficiency", "ela_proficiency_prior",
                "math_proficiency", "math_proficiency_prior", "roster_teachers", "roster_families"]
        assert list(sim.outcomes.columns) == cols
        rates = sim.outcomes[[c for c in cols[7:15]] + ["poverty", "el_share"]]
        assert ((rates >= 0) & (rates <= 1)).all().all()
        n = sim.teacher.data.groupby("school_id").size()
        roster = sim.outcomes.set_index("school_id")["roster_teachers"]
        assert (roster.reindex(n.index) >= n).all()

    def test_truth_round_trips_json(self, toy_bank):
        sim = simulate("tiny", bank=toy_bank)
        tab = sim.truth.summary().frame
        assert len(tab) == len(sim.truth.icc)
        assert "communication" in tab.loc[tab["form"] == "family", "construct"].tolist()
        assert any(tab["dif_items"] != "")
        assert "chronic_absence ~ engagement: -0.062" in sim.truth.summary().as_text()
        t2 = Truth.from_dict(sim.truth.to_dict())
        pd.testing.assert_frame_equal(t2.icc, sim.truth.icc)
        pd.testing.assert_frame_equal(t2.dif, sim.truth.dif)
        assert np.allclose(t2.schools["engagement"], sim.truth.schools["engagement"])
        rs = ins.ResponseSet.from_dict(sim.family.to_dict())
        pd.testing.assert_frame_equal(rs.data, sim.family.data)
        back = Simulation.from_dict(json.loads(dumps(sim)))
        pd.testing.assert_frame_equal(back.teacher.data, sim.teacher.data)
        pd.testing.assert_frame_equal(back.outcomes, sim.outcomes)
        assert back.meta.seed == sim.meta.seed

    def test_default_plan_is_fast_and_shaped(self, toy_bank):
        t0 = time.perf_counter()
        sim = simulate("default", bank=toy_bank)
        elapsed = time.perf_counter() - t0
        assert elapsed < 5.0, elapsed
        assert len(sim.outcomes) == 300 and sim.outcomes["district_id"].nunique() == 40
        nt = sim.teacher.data.groupby("school_id").size()
        nf = sim.family.data.groupby("school_id").size()
        assert 12 < nt.mean() < 18 and nt.std() > 3       # NB mean 15, unequal
        assert 34 < nf.mean() < 46 and nf.std() > 10      # NB mean 40
        es = sim.family.data.groupby("school_id")["language"].apply(lambda x: (x == "es").mean())
        assert es.std() > 0.05                             # Spanish share varies by school
        assert 0.01 < sim.family.data[list(sim.family.items)].isna().to_numpy().mean() < 0.10


# --- recovery of the truth -----------------------------------------------------------------------------

class TestRecovery:
    def test_category_proportions(self, toy_bank):
        sim = simulate(big_teacher_spec(), seed=3, bank=toy_bank)
        rec = toy_bank.recode_reverse(sim.teacher.item_frame(), form="teacher")
        for row in sim.truth.items[sim.truth.items["form"] == "teacher"].itertuples():
            codes = toy_bank.scales[row.scale].codes
            expected = np.diff(np.concatenate([[0], stats.norm.cdf(row.thresholds), [1]]))
            observed = rec[row.item_id].value_counts(normalize=True).reindex(codes, fill_value=0)
            assert np.allclose(observed.to_numpy(), expected, atol=ATOL_CATEGORY_SHARE), row.item_id

    def test_reverse_item_generated_reversed(self, toy_bank):
        it = toy_bank.items[toy_bank.items["form"] == "teacher"]
        rev = it[it["reverse"]].iloc[0]
        same = it[(it["construct"] == rev["construct"]) & ~it["reverse"]]["item_id"].iloc[0]
        pair = [same, rev["item_id"]]
        sim = simulate(big_teacher_spec(), seed=3, bank=toy_bank)
        d = sim.teacher.data
        raw = d[pair].corr().iloc[0, 1]
        rec = toy_bank.recode_reverse(d, form="teacher")[pair].corr().iloc[0, 1]
        assert raw < -0.1 and rec > 0.1 and np.isclose(raw, -rec)

    def test_icc_of_construct_means(self, toy_bank):
        spec = big_teacher_spec(schools=200, per_school=40, icc=0.2)
        sim = simulate(spec, seed=5, bank=toy_bank)
        rec = toy_bank.recode_reverse(sim.teacher.item_frame(), form="teacher")
        for c in ("mindsets", "communication", "language_culture"):
            m = rec[toy_bank.items_for("teacher", c)].mean(axis=1).to_numpy()
            observed = _icc1_anova(m, sim.teacher.data["school_id"].to_numpy())
            between, within = expected_icc_of_mean(sim.truth, "teacher", c)
            assert abs(observed - between / (between + within)) < ATOL_ICC_MEAN, c
            # the school means track the true school effects
            sm = pd.Series(m).groupby(sim.teacher.data["school_id"].to_numpy()).mean()
            u = sim.truth.schools.set_index("school_id")[f"u.teacher.{c}"].reindex(sm.index)
            assert np.corrcoef(sm, u)[0, 1] > 0.8

    def test_loadings_via_principal_axis(self, toy_bank):
        spec = big_teacher_spec(icc=0.02)
        items = toy_bank.items_for("teacher", "communication")
        planted = np.linspace(0.35, 0.85, len(items))[np.random.default_rng(0).permutation(
            len(items))]
        spec["simulation"]["forms"]["teacher"]["items"] = {
            i: {"loading": float(v)} for i, v in zip(items, planted)}
        sim = simulate(spec, seed=9, bank=toy_bank)
        x = toy_bank.recode_reverse(sim.teacher.data, form="teacher")[items].to_numpy(float)

        def principal_axis(R, iters=200):
            R = np.array(R, float)
            h = 1 - 1 / np.diag(np.linalg.inv(R))        # SMC start
            for _ in range(iters):
                Rh = R.copy()
                np.fill_diagonal(Rh, h)
                w, v = np.linalg.eigh(Rh)
                lam = v[:, -1] * np.sqrt(w[-1])
                h = lam ** 2
            return np.abs(lam)

        observed = principal_axis(np.corrcoef(x, rowvar=False))
        cov = implied_code_covariance(sim.truth, "teacher", "communication").to_numpy()
        sd = np.sqrt(np.diag(cov))
        implied = principal_axis(cov / np.outer(sd, sd))
        true = sim.truth.items.set_index("item_id").loc[items, "loading"].to_numpy()
        assert np.allclose(observed, implied, atol=ATOL_PA_LOADING)
        assert list(np.argsort(observed)) == list(np.argsort(true))
        # categorisation attenuates Pearson-based loadings only mildly for 5 categories
        assert np.all((observed / true > 0.8) & (observed / true < 1.05))

    def test_dif_items_show_planted_shift(self, toy_bank):
        s = tiny_spec()
        sim_ = s["simulation"]
        sim_["schools"]["n"] = 100
        f = sim_["forms"]["family"]
        f["respondents"] = {"mean": 60, "dispersion": 1000.0}
        f["spanish_share"] = {"base": 0.5, "per_el_share": 0.0}
        f["icc"] = {"default": 0.02}
        f["missing"] = {"mcar": 0.0}
        comm = toy_bank.items_for("family", "communication")
        lang = toy_bank.items_for("family", "language_culture")
        f["items"] = {comm[1]: {"loading": 0.7}, comm[2]: {"loading": 0.7},
                      lang[0]: {"loading": 0.7}}
        f["dif"] = [{"item": "communication[2]", "threshold_shift": 0.5},
                    {"item": lang[0], "loading_diff": -0.4}]
        sim = simulate(s, seed=21, bank=toy_bank)
        d = toy_bank.recode_reverse(sim.family.data, form="family")   # construct-aligned codes
        es = d["language"] == "es"
        assert set(sim.truth.dif["item_id"]) == {comm[1], lang[0]}

        def probit_gap(item):
            gaps = []
            for k in (2, 3, 4):
                p_es = (d.loc[es, item] >= k).mean()
                p_en = (d.loc[~es, item] >= k).mean()
                gaps.append(stats.norm.ppf(p_es) - stats.norm.ppf(p_en))
            return float(np.mean(gaps))

        shift = probit_gap(comm[1]) - probit_gap(comm[2])
        assert abs(shift - 0.5) < ATOL_DIF_SHIFT, shift
        assert abs(probit_gap(comm[2])) < ATOL_DIF_SHIFT

        def item_rest(item, mask):
            rest = [i for i in lang if i not in (item, lang[0])]  # rest without the DIF item
            return np.corrcoef(d.loc[mask, item], d.loc[mask, rest].mean(axis=1))[0, 1]

        gap_dif = item_rest(lang[0], ~es) - item_rest(lang[0], es)
        gap_ok = item_rest(lang[1], ~es) - item_rest(lang[1], es)
        assert gap_dif > MIN_LOADING_DIF_GAP
        assert abs(gap_ok) < ATOL_ITEM_REST_GAP

    def test_outcome_effects(self, toy_bank):
        s = tiny_spec()
        s["simulation"]["schools"]["n"] = 3000
        s["simulation"]["schools"]["districts"] = 40
        for f in ("teacher", "family"):
            s["simulation"]["forms"][f]["respondents"] = {"mean": 1, "dispersion": 5.0}
        for o in s["simulation"]["outcomes"].values():   # keep every rate away from 0 and 1,
            o.update(prior_mean=0.5, prior_poverty=0.02)  # so clipping does not bend the effects
        sim = simulate(s, seed=4, bank=toy_bank)
        assert not sim.outcomes[["chronic_absence", "math_proficiency"]].isin([0.0, 1.0]).any().any()
        o = sim.outcomes.merge(sim.truth.schools, on=["school_id", "district_id"])
        X = np.column_stack([np.ones(len(o)), o["engagement"], o["poverty_z"]])
        for name, eng, pov in (("chronic_absence", -0.062, 0.057), ("math_proficiency", 0.029,
                                                                     -0.025)):
            y = o[name] - o[f"{name}_prior"]
            b = np.linalg.lstsq(X, y, rcond=None)[0]
            assert abs(b[1] * Z90_MINUS_Z10 - eng) < ATOL_EFFECT_P90_P10
            assert abs(b[2] * Z90_MINUS_Z10 - pov) < ATOL_EFFECT_P90_P10
        eff = sim.truth.effects.set_index(["outcome", "predictor"])
        assert eff.loc[("chronic_absence", "engagement"), "p90_p10"] == -0.062
        # poverty is a monotone transform of z, so its P90-vs-P10 contrast is z's
        assert stats.spearmanr(o["poverty"], o["poverty_z"]).statistic == pytest.approx(1.0)


def test_pipeline_stage(toy_bank, tmp_path):
    from instrument.simulate import pipeline_stage
    ctx = {"plan_path": None, "bank": toy_bank, "out_dir": tmp_path}
    out = pipeline_stage(ctx)
    assert isinstance(ctx["simulation"], Simulation)
    assert (tmp_path / "data" / "truth.json").exists()
    assert out["meta"]["seed"] == 20261125
    assert "respondent_id" not in json.dumps(out, default=str)


def test_missingness_mcar_and_mar(toy_bank):
    spec = big_teacher_spec(schools=100, per_school=30)
    spec["simulation"]["forms"]["teacher"]["missing"] = {
        "mcar": 0.05, "mar": {"variable": "years_at_school", "below": 3, "extra": 0.20}}
    sim = simulate(spec, seed=8, bank=toy_bank)
    d = sim.teacher.data
    miss = d[list(sim.teacher.items)].isna().to_numpy().mean(axis=1)
    low = (d["years_at_school"] < 3).to_numpy()
    assert abs(miss[~low].mean() - 0.05) < 0.01
    # P(missing) = 1 - (1 - mcar)(1 - extra) for the low group
    assert abs(miss[low].mean() - (1 - 0.95 * 0.80)) < 0.02


def test_responseset_validates(toy_bank):
    sim = simulate("tiny", bank=toy_bank)
    d = sim.teacher.data.copy()
    d.loc[0, "language"] = "français"     # a language code is checked against the bank at ingest;
    with pytest.raises(ValueError,     # here only its form is
                       match=r"column 'language' holds \['français'\]; expected language codes"):
        ins.ResponseSet(form="teacher", data=d, items=sim.teacher.items)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['school_id'\]"):
        ins.ResponseSet(form="teacher", data=d.drop(columns=["school_id"]),
                        items=sim.teacher.items)
    with pytest.raises(ValueError, match=r"form= must be a form id of the bank"):
        ins.ResponseSet(form="2nd form", data=sim.teacher.data, items=sim.teacher.items)
    assert "respondent_id" not in sim.teacher.without_ids().columns
    assert sim.teacher.summary().frame["respondents"].sum() == sim.teacher.n
