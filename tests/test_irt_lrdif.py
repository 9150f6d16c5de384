"""IRT likelihood-ratio DIF (two-group graded model, purified anchors) against a direct BFGS
maximisation of the same likelihood in base R (tests/fixtures/irt_lrdif/)."""
import json
from pathlib import Path

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.irt.lrdif import LRDIFResult, lrdif

FIX = Path(__file__).parent / "fixtures"
REF = json.loads((FIX / "irt_lrdif" / "lrdif_reference.json").read_text())
ITEMS = [f"i{j:02d}" for j in range(1, 9)]
ATOL_G2 = 1e-4          # EM at LR_TOL against BFGS with gradient below 1e-4
ATOL_LOGLIK = 1e-4


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(FIX / "data" / "irt_dif.csv")


@pytest.fixture(scope="module")
def result(data):
    return lrdif(data, ITEMS, group="language")


def test_stage1_and_stage2_match_r(result):
    t = result.table.set_index("item")
    for stage, col in (("stage1", "G2_stage1"), ("stage2", "G2")):
        ref = pd.DataFrame(REF[stage]["rows"]).set_index("item")
        assert_allclose(t.loc[ref.index, col], ref["G2"], atol=ATOL_G2, err_msg=stage)
        assert (t.loc[ref.index, "df" if stage == "stage2" else "df_stage1"] == ref["df"]).all()
    assert_allclose(t["p"], pd.DataFrame(REF["stage2"]["rows"]).set_index("item")["p"],
                    rtol=1e-3, atol=1e-10)
    assert list(result.anchors) == REF["anchors"]
    assert_allclose(result.loglik, REF["stage2"]["base"]["loglik"], atol=ATOL_LOGLIK)
    lat = result.latent.set_index("group")
    assert_allclose(lat.loc["es", ["mean", "var"]].to_numpy(float),
                    [REF["stage2"]["base"]["mu"], REF["stage2"]["base"]["var"]], atol=1e-4)


def test_flags_the_planted_items(result):
    assert result.flagged == ["i03", "i06"]
    t = result.table.set_index("item")
    assert t.loc["i06", "a_foc"] < 0.6 * t.loc["i06", "a_ref"]      # planted: slope x 0.45
    assert not t.loc[["i03", "i06"], "anchor"].any()


def test_round_trip_and_errors(result, data):
    back = LRDIFResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.anchors == result.anchors and back.flagged == result.flagged
    with pytest.raises(ValueError, match="expected two groups"):
        lrdif(data.assign(language="en"), ITEMS[:3], group="language")
    sparse = data.copy()
    sparse.loc[(sparse["language"] == "es") & (sparse["i02"] == 0), "i02"] = 1
    with pytest.raises(ValueError, match="category 0 is never used in group 'es'"):
        lrdif(sparse, ITEMS[:3], group="language", anchors=["i01"])
