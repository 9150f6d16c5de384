"""School scores from IRT person scores (EAP of a graded model per construct) with the person
measurement error carried into the school SE."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import instrument as ins
from instrument.irt import fscores, irt
from instrument.scores import respondent_irt_scores, school_scores


@pytest.fixture(scope="module")
def case():
    sim = ins.simulate("analyses/tiny.yaml", seed=2)
    bank = ins.load_bank()
    return sim, bank, school_scores(sim.teacher, bank=bank, outcomes=sim.outcomes, scoring="irt")


def test_person_scores_are_graded_model_eaps(case):
    sim, bank, _ = case
    scores, se = respondent_irt_scores(sim.teacher, bank=bank)
    con = "communication"
    its = bank.items_for("teacher", con)
    x = bank.recode_reverse(sim.teacher.item_frame(), form="teacher")[its].reset_index(drop=True)
    x = x - x.min()
    ref = fscores(irt(x, its, se=False, tol=1e-5), x)
    assert_allclose(scores[con], ref["theta"], atol=1e-12)
    assert_allclose(se[con], ref["se"], atol=1e-12)
    assert (se[con].dropna() > 0).all()


def test_school_se_carries_person_error(case):
    sim, bank, out = case
    scores, se = respondent_irt_scores(sim.teacher, bank=bank)
    con = "leadership"
    got = out[out["construct"] == con].set_index("school_id")
    for sid, g in scores.groupby("school_id"):
        e = se.loc[g.index, con]
        v = g[con].var(ddof=1) + (e**2).mean()
        naive = g[con].std(ddof=1) / np.sqrt(len(g))
        if got.loc[sid, "suppressed"]:
            continue
        assert_allclose(got.loc[sid, "mean"], g[con].mean(), atol=1e-12)
        assert_allclose(got.loc[sid, "se"], np.sqrt(v / len(g)), rtol=1e-10)
        assert got.loc[sid, "se"] > naive
    assert (~out["suppressed"]).sum() > 0


def test_irt_school_means_agree_with_raw_means(case):
    sim, bank, out = case
    raw = school_scores(sim.teacher, bank=bank, outcomes=sim.outcomes)
    a = out.set_index(["school_id", "construct"])["mean"]
    b = raw.set_index(["school_id", "construct"])["mean"]
    ok = a.notna() & b.notna()
    for con in ("mindsets", "overall"):
        sel = ok & (a.index.get_level_values("construct") == con)
        assert np.corrcoef(a[sel], b[sel])[0, 1] > 0.9


def test_scoring_option_checked(case):
    sim, bank, _ = case
    with pytest.raises(ValueError, match="scoring= must be one of"):
        school_scores(sim.teacher, bank=bank, scoring="eap")


def test_plan_scoring_option_reaches_the_scores_stage(case):
    from instrument import pipeline
    sim, bank, out = case
    ctx = {"responses": {"teacher": sim.teacher}, "bank": bank, "outcomes": sim.outcomes,
           "plan": {"analysis": {"scoring": "irt"}}}
    got = pipeline.stage_scores(ctx)["table"]
    assert_allclose(got["se"].to_numpy(float), out["se"].to_numpy(float), equal_nan=True)
    ctx["plan"]["analysis"]["scoring"] = "rasch"
    with pytest.raises(ValueError, match="analysis.scoring"):
        pipeline.stage_scores(ctx)
