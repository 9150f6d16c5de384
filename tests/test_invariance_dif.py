"""Locating non-invariant items: dMACS against an R integration reference, the item-level score
tests against lavaan's univariate lavTestScore (through `score_test_equality`), the "add" mode
against refits, and the comparison of flagged with planted DIF."""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.invariance import invariance, score_test_equality
from instrument.invariance import (compare_with_truth, dmacs_continuous, dmacs_ordinal,
                                       item_of, item_sds, release_tests)

FIX = Path(__file__).parent / "fixtures"
HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
RTOL_QUAD = 1e-7    # 61-point Gauss-Hermite against integrate(rel.tol = 1e-12)


@pytest.mark.parametrize("case", json.loads((FIX / "dmacs" / "dmacs_reference.json").read_text()))
def test_dmacs_matches_numerical_integration(case):
    if case["kind"] == "continuous":
        got = dmacs_continuous(case["nu_r"], case["lam_r"], case["nu_f"], case["lam_f"],
                               case["mean_f"], case["var_f"], case["sd"])
    else:
        def par(d):
            return {**d, "tau": np.atleast_1d(d["tau"]).astype(float)}
        got = dmacs_ordinal(par(case["ref"]), par(case["foc"]), case["mean_f"], case["var_f"],
                            case["sd"], case["codes"])
    assert_allclose(got, case["dmacs"], rtol=RTOL_QUAD)


def test_dmacs_zero_for_identical_items():
    item = {"tau": [-1.0, 0.0, 1.0], "nu": 0.2, "lam": 1.1, "theta": 1.0}
    assert dmacs_ordinal(item, item, 0.3, 1.2, 1.0, [1, 2, 3, 4]) == 0.0


@pytest.fixture(scope="module")
def hs_ladder():
    d = pd.read_csv(FIX / "invariance" / "HolzingerSwineford1939.csv")
    return d, invariance(HS_MODEL, d, group="school")


def test_item_score_tests_equal_univariate_lavtestscore(hs_ladder):
    """With two groups each item's loading (intercept) is one equality constraint, so the
    item-level test is lavaan's univariate score test of that constraint. The markers' loadings,
    fixed at 1 in every group, are tested too ("add" mode), which lavaan's equality tests skip."""
    d, res = hs_ladder
    sds, codes = item_sds(d, [f"x{i}" for i in range(1, 10)], "school", res.group_labels)
    for step, kind, op in (("metric", "loadings", "=~"), ("scalar", "intercepts", "~1")):
        fit = res.fits[step]
        ours = release_tests(fit, kind, sds=sds, codes=codes).table.set_index("parameters")
        ref = score_test_equality(fit)
        ref = ref[ref["parameter"].str.contains(op, regex=False)].set_index("parameter")
        markers = {"visual=~x1", "textual=~x4", "speed=~x7"} if kind == "loadings" else set()
        assert set(ours.index) == set(ref.index) | markers
        assert_allclose(ours.loc[ref.index, "X2"], ref["X2"], rtol=1e-8)
        assert (ours["df"] == 1).all()
        assert_allclose(ours["pvalue.bonferroni"],
                        np.minimum(ours["pvalue"] * len(ours), 1.0))


def test_add_mode_score_test_approximates_refit():
    """Under Wu-Estabrook the scalar step fixes intercepts at 0; the score test of freeing one
    (the extended table) is asymptotically the unscaled DWLS chi-square difference of the
    refit with that intercept free."""
    from instrument.invariance import ORDINAL_LADDER_OPTIONS
    from instrument.sem.cfa import cfa
    from test_wlsmv_invariance import DIF_MODEL, _uniform_shift_data

    d = _uniform_shift_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = invariance(DIF_MODEL, d, group="language", ordered=True)
        items = [f"y{i}" for i in range(1, 9)]
        sds, codes = item_sds(d, items, "language", res.group_labels)
        t = release_tests(res.fits["scalar"], "intercepts", sds=sds, codes=codes).table
        top = t.iloc[0]
        assert top["item"] == "y6" and top["parameters"] == "y6~1"
        eq = ("thresholds", "loadings", "intercepts")
        free = cfa(DIF_MODEL, d, group="language", group_equal=eq, group_partial=["y6~1"],
                   group_order=res.group_labels, ordered=True, **ORDINAL_LADDER_OPTIONS)
    diff = res.fits["scalar"].fit_measures["chisq"] - free.fit_measures["chisq"]
    assert_allclose(top["X2"], diff, rtol=0.1)
    # the other items of y6's factor absorb part of the shift through the latent mean until y6
    # is released (partial() then frees y6 alone: test_wlsmv_invariance)
    assert top["dmacs"] >= 0.2 and top["dmacs"] == t["dmacs"].max()


def test_compare_with_truth_counts():
    items = ["a1", "a2", "a3", "b1", "b2"]
    planted = pd.DataFrame({"item_id": ["a2", "b1"], "threshold_shift": [0.5, -0.4],
                            "loading_diff": [0.0, -0.2]})
    out = compare_with_truth(["a2~1", "b1~1", "a3|t1", "a3|t2"], planted, items)
    par = out["parameters"].set_index(["item", "type"])["outcome"].to_dict()
    assert par == {("a2", "intercepts"): "hit", ("b1", "intercepts"): "hit",
                   ("b1", "loadings"): "miss", ("a3", "thresholds"): "false alarm"}
    assert out["counts"]["items"] == {"hit": 2, "miss": 0, "false alarm": 1}
    assert out["counts"]["parameters"] == {"hit": 2, "miss": 1, "false alarm": 1}
    none = compare_with_truth([], planted.iloc[:0], items)
    assert none["counts"]["items"] == {"hit": 0, "miss": 0, "false alarm": 0}


@pytest.mark.parametrize("param,item", [("x1|t2", "x1"), ("f=~x10", "x10"), ("x1~1", "x1"),
                                        ("x10~~x10", "x10")])
def test_item_of(param, item):
    assert item_of(param, ["x1", "x10"]) == item


def test_search_stops_short_and_says_so():
    """With the minimum of two invariant indicators per factor, a factor of three items whose
    intercept DIF sits on two of them can release only one; the step still fails, the search
    says why, and the later step is marked as resting on it."""
    rng = np.random.default_rng(7)
    n = 800
    frames = []
    for lang, shift in (("en", 0.0), ("es", 1.0)):
        eta = rng.standard_normal((n, 2))
        y = np.column_stack([0.8 * eta[:, 0 if j < 3 else 1] + 0.6 * rng.standard_normal(n)
                             for j in range(6)])
        y[:, 0] += shift
        y[:, 1] -= shift
        df = pd.DataFrame(y, columns=[f"y{j + 1}" for j in range(6)])
        df["language"] = lang
        frames.append(df)
    d = pd.concat(frames, ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = invariance("f1 =~ y1 + y2 + y3\nf2 =~ y4 + y5 + y6", d, group="language").partial()
    t = part.table.set_index("step")
    assert len(part.releases) == 1
    assert not t.loc["scalar (partial)", "holds"]
    assert t.loc["scalar (partial)", "search"].startswith("does not hold; search stopped")
    assert "which does not hold" in t.loc["strict", "verdict"]
    # a step that holds on the strength of a failed one is not called comparable
    assert t.loc["configural", "supported"] and not t.loc["scalar (partial)", "supported"]
    assert not t.loc["strict", "supported"]
    assert "rests on 'scalar (partial)'" in t.loc["strict", "search"] or \
        "which does not hold" in t.loc["strict", "verdict"]
