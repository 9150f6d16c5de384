"""Ordinal logistic regression DIF against MASS::polr (tests/fixtures/irt_dif/) and purification on
simulated data with planted DIF."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.irt import dif
from instrument.irt.dif import lr_dif_item, polr

FIX = Path(__file__).parent / "fixtures"
REF = json.loads((FIX / "irt_dif" / "polr_reference.json").read_text())
ATOL_CHISQ = 1e-5     # polr stops BFGS at reltol 1e-14 here; our Fisher scoring at 1e-10 in ll
ATOL_COEF = 1e-4
PLANTED = ["i03", "i06"]   # make_data.py: i03 uniform, i06 non-uniform DIF


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(FIX / "data" / "irt_dif.csv")


@pytest.mark.parametrize("k", range(8))
def test_regressions_match_polr(data, k):
    ref = REF["items"][k]
    g = (data["language"] == "es").to_numpy(float)
    ours = lr_dif_item(data[ref["item"]].to_numpy(int), data["theta"].to_numpy(), g)
    for key in ("ll1", "ll2", "ll3", "chi12", "chi13", "chi23", "R2_12", "R2_13"):
        assert_allclose(ours[key], ref[key], atol=ATOL_CHISQ, err_msg=key)
    for key in ("p12", "p13", "p23"):
        assert_allclose(ours[key], ref[key], rtol=1e-4, atol=1e-12, err_msg=key)
    for key in ("beta1_m1", "beta2_m2", "beta3_m3"):
        assert_allclose(ours[key], ref[key], atol=ATOL_COEF, err_msg=key)
    zeta, _, _ = polr(data[ref["item"]].to_numpy(int), data["theta"].to_numpy()[:, None])
    assert_allclose(zeta, ref["zeta_m1"], atol=ATOL_COEF)


def test_purified_run_flags_the_planted_items(data):
    res = dif(data, [f"i{j:02d}" for j in range(1, 9)], group="language")
    assert res.flagged == PLANTED
    assert set(res.anchors) == ({f"i{j:02d}" for j in range(1, 9)} - set(PLANTED)
                                | {f"{it}@{g}" for it in PLANTED for g in ("en", "es")})
    # the fixture's theta column was written by this same run (make_data.py)
    assert_allclose(res.theta, data["theta"].to_numpy(), atol=1e-8)
    t = res.table.set_index("item")
    assert t.loc["i03", "p12"] < 0.01          # uniform
    assert t.loc["i06", "p23"] < 0.01          # non-uniform


def test_bad_group_is_named(data):
    with pytest.raises(ValueError, match="expected two groups"):
        dif(data.assign(language="en"), ["i01", "i02"], group="language")
    with pytest.raises(ValueError, match="criterion="):
        dif(data, ["i01", "i02"], group="language", criterion="beta")


def test_drop_purification_matches_on_the_unflagged_items_only(data):
    split = dif(data, ["i01", "i02", "i03", "i04", "i06"], group="language")
    drop = dif(data, ["i01", "i02", "i03", "i04", "i06"], group="language", purification="drop")
    assert split.flagged == drop.flagged == ["i03", "i06"]
    assert drop.anchors == ("i01", "i02", "i04")
    # flagged items split by group still inform the matching theta: it is more reliable
    assert np.corrcoef(split.theta, data["theta"])[0, 1] > np.corrcoef(drop.theta, data["theta"])[0, 1]
    with pytest.raises(ValueError, match="purification="):
        dif(data, ["i01", "i02"], group="language", purification="none")


def test_purification_stops_before_matching_on_one_item(data):
    # with two of three items carrying DIF, the contaminated matching flags all three in round 1
    res = dif(data, ["i01", "i03", "i06"], group="language")
    assert {"i03", "i06"} <= set(res.flagged) and res.iterations == 1
    assert "purification stopped" in res.note and res.anchors == ("i01", "i03", "i06")
