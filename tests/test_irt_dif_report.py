"""The technical report's item-level DIF table: OLR and IRT-LR by language beside the CFA
invariance releases of the same item, read from results alone."""
import re

import pandas as pd

from instrument.report.adapters import read_irt_dif
from instrument.report.render import render_html
from instrument.results import to_jsonable


def _results():
    table = pd.DataFrame({
        "construct": ["c1", "c1", "c1"], "item": ["f_a", "f_b", "f_c"],
        "olr_chi13": [1.2, 40.5, 3.3], "olr_p13": [0.55, 1e-9, 0.19],
        "olr_R2_13": [0.0001, 0.04, 0.001], "olr_magnitude": ["negligible", "moderate", "negligible"],
        "olr_flagged": [False, True, False], "lr_G2": [2.0, 51.0, 14.0], "lr_df": [5, 5, 5],
        "lr_p": [0.85, 1e-9, 0.016], "lr_flagged": [False, True, False],
        "planted": [False, True, True]})
    releases = pd.DataFrame({"round": [1], "step": ["scalar"], "item": ["f_b"],
                             "parameter": ["f_b|t1"], "X2": [30.0], "df": [1],
                             "pvalue": [1e-7], "dmacs": [0.31]})
    ladder = pd.DataFrame({"step": ["configural", "scalar"], "cfi": [0.99, 0.98]})
    return {"irt_dif": {"group": "language", "skipped": {"teacher": "too few"},
                        "forms": {"family": {"reference": "en", "focal": "es",
                                             "n": {"en": 900, "es": 400},
                                             "table": to_jsonable(table)}}},
            "invariance": {"family by language": {"table": to_jsonable(ladder),
                                                  "releases": to_jsonable(releases)}}}


def test_reader_joins_cfa_releases():
    s = read_irt_dif(_results())
    assert s.available
    cfa = s["forms"]["family"]["cfa"].set_index("item")
    assert cfa.loc["f_b", "cfa_released"] == "scalar" and cfa.loc["f_b", "cfa_dmacs"] == 0.31


def test_one_table_per_form_and_language():
    html = render_html(_results(), "technical")
    assert "Item DIF by language, family form: es vs en" in html
    assert "CFA released" in html and "IRT G2" in html and "OLR dR2" in html
    # simulated truth is scored per method: f_b found by all three, f_c by none
    assert "CFA 1 of 2 planted items, 0 false alarms" in html
    assert "OLR 1 of 2 planted items, 0 false alarms" in html
    assert "teacher form not tested: too few" in html


def test_without_a_cfa_ladder_the_table_says_so():
    r = _results()
    del r["invariance"]
    html = render_html(r, "technical")
    assert "No CFA invariance ladder of the family form by language" in html


def test_stage_skips_a_form_with_too_few_in_a_language():
    import instrument as ins
    from instrument import pipeline
    sim = ins.simulate("analyses/tiny.yaml", seed=2)
    ctx = {"responses": {"teacher": sim.teacher}, "bank": ins.load_bank(), "simulation": sim,
           "plan": {}}
    out = pipeline.stage_irt_dif(ctx)
    assert out["forms"] == {}
    # plain counts and a short citation, not a dict repr and the full reference
    assert re.fullmatch(r"respondents per language: en \d+, es \d+; DIF needs two groups of at "
                        r"least 200 respondents each \(Scott et al\. \(2009\)\)",
                        out["skipped"]["teacher"]), out["skipped"]["teacher"]
