"""Formula layer of the invariance module: decision rules, verdicts, score tests, category
collapsing (the difference tests themselves are tested in test_robust_teststat.py)."""
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import importlib

inv = importlib.import_module("instrument.invariance")  # the package exports a function of that name
from instrument import rules
from instrument.sem.test.score import score_tests

FIX = Path(__file__).parent / "fixtures" / "invariance"
HS = json.loads((FIX / "b_hs_invariance.json").read_text())


class TestRules:
    def test_chen_picks_large_sample_rules_for_hs(self):
        # N = 301 > 300 and groups 156/145 are of similar size
        got = inv.rules_for("metric", "chen2007", ntotal=301, group_sizes=[156, 145])
        assert got[0] is rules.DELTA_CFI_CHEN and got[2] is rules.DELTA_SRMR_CHEN_METRIC
        got = inv.rules_for("scalar", "chen2007", ntotal=301, group_sizes=[156, 145])
        assert got[2] is rules.DELTA_SRMR_CHEN_SCALAR

    def test_chen_small_or_unequal(self):
        got = inv.rules_for("scalar", "chen2007", ntotal=2436, group_sizes=[805, 1631])
        assert got[0] is rules.DELTA_CFI_CHEN_SMALL
        got = inv.rules_for("metric", "chen2007", ntotal=200, group_sizes=[100, 100])
        assert got[1] is rules.DELTA_RMSEA_CHEN_SMALL

    def test_unknown_rule_set(self):
        with pytest.raises(ValueError, match="rule_set= must be one of"):
            inv.rules_for("metric", "hu_bentler", ntotal=300, group_sizes=[150, 150])

    @pytest.mark.parametrize("i,expected", [(0, True), (1, False)])
    def test_verdict_on_lavaan_deltas(self, i, expected):
        # configural -> metric holds (ΔCFI -.0025), metric -> scalar fails (ΔCFI -.0385)
        d = HS["ML"]["delta"][i]
        delta = {"cfi.delta": d["cfi"], "rmsea.delta": d["rmsea"], "srmr.delta": d["srmr"]}
        step = d["to"]
        ok, text = inv.verdict(delta, inv.rules_for(step, "chen2007", ntotal=301,
                                                    group_sizes=[156, 145]),
                               estimator="ML", ngroups=2)
        assert ok is expected
        assert "Chen" in text and ("holds" if expected else "does not hold") in text

    def test_verdict_warns_outside_derivation_conditions(self):
        delta = {"cfi.delta": -0.001, "rmsea.delta": 0.0, "srmr.delta": 0.0}
        r = inv.rules_for("metric", "chen2007", ntotal=1000, group_sizes=[500, 500])
        _, text = inv.verdict(delta, r, estimator="WLSMV", ngroups=2)
        assert "outside the conditions" in text
        _, text = inv.verdict(delta, r, estimator="ML", ngroups=5)
        assert "applied here to 5" in text
        _, text = inv.verdict(delta, inv.rules_for("metric", "rutkowski_svetina2014", ntotal=1000,
                                                   group_sizes=[500, 500]),
                              estimator="ML", ngroups=2)
        assert "10-20 groups" in text


def test_score_tests_closed_form_equals_lavaans_bordered_inverse():
    # lavaan computes each univariate test as N g' Z+_11 g with Z the information bordered by the
    # other constraints; the closed form must give the same numbers on a random problem.
    rng = np.random.default_rng(3)
    k, n = 6, 250
    B = rng.normal(size=(k, k))
    info = B @ B.T + k * np.eye(k)
    R = np.array([[1.0, -1, 0, 0, 0, 0], [1.0, 0, -1, 0, 0, 0], [0, 0, 0, 1.0, -1, 0]])
    K = np.array([[1.0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0],
                  [0, 0, 1, 0]])[:, :3]
    D = np.zeros((k, 3))
    D[1, 0] = D[2, 1] = D[4, 2] = 1.0
    g = R.T @ rng.normal(size=3) / 10     # at a constrained optimum g'K = 0
    assert np.allclose(g @ K, 0)
    total, uni = score_tests(g, info, K, D, n)[:2]
    assert_allclose(total, n * g @ np.linalg.pinv(info) @ g, rtol=1e-12)
    for r in range(3):
        R1 = np.delete(R, r, axis=0)
        Z = np.block([[info, R1.T], [R1, np.zeros((2, 2))]])
        assert_allclose(uni[r], n * g @ np.linalg.pinv(Z)[:k, :k] @ g, rtol=1e-9)


def test_collapse_empty_categories():
    import pandas as pd

    from instrument.invariance import collapse_empty_categories

    d = pd.DataFrame({"g": ["a"] * 6 + ["b"] * 6,
                      "x": [1, 2, 3, 4, 4, 2, 2, 2, 3, 4, 3, 4],     # 1 empty in b
                      "y": [1, 2, 3, 4, 1, 2, 1, 2, 4, 4, 1, 2]})    # 3 empty in b
    out, changes = collapse_empty_categories(d, ["x", "y"], "g")
    assert changes.to_dict("records") == [
        {"item": "x", "from": 1, "to": 2, "empty_in": "b"},
        {"item": "y", "from": 3, "to": 4, "empty_in": "b"}]   # 4 is used less than 2
    assert not (pd.crosstab(out["g"], out["x"]) == 0).any().any()
    assert (out["y"] == 3).sum() == 0 and (d["y"] == 3).sum() == (out["y"] == 4).sum() - 3
