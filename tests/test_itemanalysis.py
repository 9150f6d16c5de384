"""Item analysis: hand-checkable counts, rule flags, groups, and agreement with psych's r.drop."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument import alpha, item_analysis
from instrument.itemanalysis import ITEM_RULES, ItemAnalysis
from instrument.results import dumps
from instrument.rules import (ITEM_MAX_FLOOR_CEILING, ITEM_MIN_CATEGORY_COUNT,
                              ITEM_MIN_CATEGORY_SHARE, ITEM_MIN_ITEM_REST_R)

FIX = Path(__file__).parent / "fixtures" / "reliability"
ATOL_FORMULA = 1e-10


@pytest.fixture(scope="module")
def toy():
    # 40 respondents, 4-point items; q3 never uses category 4 and piles on category 1;
    # q4 is noise (low item-rest r); group = form language
    rng = np.random.default_rng(0)
    t = rng.normal(size=40)
    q1 = np.clip(np.round(2.5 + t + rng.normal(scale=0.5, size=40)), 1, 4)
    q2 = np.clip(np.round(2.5 + t + rng.normal(scale=0.5, size=40)), 1, 4)
    q3 = np.where(t < 0.3, 1.0, 2.0)
    q3[:3] = 3.0
    q4 = rng.integers(1, 5, size=40).astype(float)
    q1[5] = np.nan
    lang = np.array(["en"] * 25 + ["es"] * 15)
    return pd.DataFrame({"q1": q1, "q2": q2, "q3": q3, "q4": q4, "lang": lang})


def test_counts_shares_floor_ceiling_by_hand(toy):
    ia = item_analysis(toy, ["q1", "q2", "q3", "q4"], categories=[1, 2, 3, 4])
    d = ia.distribution[ia.distribution["item"] == "q3"].set_index("category")
    q3 = toy["q3"]
    assert list(d["count"]) == [int((q3 == c).sum()) for c in [1, 2, 3, 4]]
    assert d.loc[4.0, "count"] == 0
    row = ia.items.set_index("item").loc["q3"]
    assert row["n_empty"] == 1 and row["n"] == 40
    assert_allclose(row["floor"], (q3 == 1).mean(), atol=ATOL_FORMULA)
    assert row["ceiling"] == 0.0
    flags = row["flags"].split("; ")
    assert ITEM_MIN_CATEGORY_COUNT.key in flags and ITEM_MIN_CATEGORY_SHARE.key in flags
    assert ITEM_MAX_FLOOR_CEILING.key in flags
    q1 = ia.items.set_index("item").loc["q1"]
    assert q1["n"] == 39 and q1["missing_share"] == pytest.approx(1 / 40)
    assert_allclose(q1["mean"], toy["q1"].mean(), atol=ATOL_FORMULA)
    assert_allclose(q1["sd"], toy["q1"].std(), atol=ATOL_FORMULA)


def test_low_discrimination_flag_and_item_rest_r_by_hand(toy):
    items = ["q1", "q2", "q3", "q4"]
    ia = item_analysis(toy, items, categories=[1, 2, 3, 4])
    rows = ia.items.set_index("item")
    assert ITEM_MIN_ITEM_REST_R.key in rows.loc["q4", "flags"]
    assert ITEM_MIN_ITEM_REST_R.key not in rows.loc["q1", "flags"]
    cc = toy[items].dropna()  # with complete data, r.drop is corr(item, sum of the others)
    ia_cc = item_analysis(cc, items, categories=[1, 2, 3, 4]).items.set_index("item")
    for it in items:
        rest = cc[[o for o in items if o != it]].sum(axis=1)
        assert_allclose(ia_cc.loc[it, "r.drop"], np.corrcoef(cc[it], rest)[0, 1], atol=1e-12)


def test_groups_analysed_separately(toy):
    ia = item_analysis(toy, ["q1", "q2", "q3"], categories=[1, 2, 3, 4], group="lang")
    assert list(pd.unique(ia.items["group"])) == ["(all)", "en", "es"]
    es = ia.items[(ia.items["group"] == "es") & (ia.items["item"] == "q2")].iloc[0]
    assert es["n"] == 15
    assert_allclose(es["mean"], toy.loc[toy["lang"] == "es", "q2"].mean(), atol=ATOL_FORMULA)
    # with only 15 respondents every category has < 10 answers
    assert ITEM_MIN_CATEGORY_COUNT.key in es["flags"]


def test_r_drop_matches_psych_on_bfi():
    d = json.loads((FIX / "d_bfi_reliability.json").read_text())["per_factor"]["A"]
    bfir = pd.read_csv(FIX / "bfi_complete25_reversed.csv")
    raw = bfir.copy()
    raw["A1"] = 7 - raw["A1"]
    ia = item_analysis(raw, d["items"], categories=range(1, 7), reverse=["A1"])
    assert_allclose(ia.items["r.drop"], list(d["r_drop"].values()), atol=ATOL_FORMULA)
    # A1 (reversed, r.drop .319) passes .30; the distribution is of the raw answers
    assert ia.items.loc[0, "r.drop"] > ITEM_MIN_ITEM_REST_R.threshold
    assert_allclose(ia.items.loc[0, "mean"], raw["A1"].mean(), atol=ATOL_FORMULA)
    assert_allclose(alpha(bfir[d["items"]]).item_stats["r.drop"], ia.items["r.drop"], atol=1e-12)
    assert_allclose(ia.items["alpha.drop"], list(d["alpha_if_deleted_hand"].values()),
                    atol=ATOL_FORMULA)


def test_roundtrip_summary_and_errors(toy):
    ia = item_analysis(toy, ["q1", "q2", "q3", "q4"], categories=[1, 2, 3, 4], group="lang")
    back = ItemAnalysis.from_dict(json.loads(dumps(ia)))
    assert dumps(back) == dumps(ia)
    pd.testing.assert_frame_equal(back.items, ia.items)
    assert back.rules == ITEM_RULES
    txt = ia.summary().as_text()
    assert "Terwee" in txt and "Linacre" in txt
    assert len(ia.flagged()) > 0
    with pytest.raises(ValueError, match=r"column 'q1', row .*: value 4.0 is not one of"):
        item_analysis(toy, ["q1"], categories=[1, 2, 3])
    with pytest.raises(KeyError, match="no column"):
        item_analysis(toy, ["q9"])
    with pytest.raises(KeyError, match="group="):
        item_analysis(toy, ["q1"], group="form")
    with pytest.raises(TypeError, match="not numeric"):
        item_analysis(toy, ["lang"])
