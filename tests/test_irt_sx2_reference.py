"""S-X2 against a base-R computation from the definition for the same graded model
(tests/fixtures/irt_itemfit/)."""
import json
from pathlib import Path

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.irt import irt, s_x2

FIX = Path(__file__).parent / "fixtures"
REF = json.loads((FIX / "irt_itemfit" / "sx2_reference.json").read_text())
PARS = json.loads((FIX / "irt_itemfit" / "parameters.json").read_text())


@pytest.fixture(scope="module")
def fit_and_data():
    df = pd.read_csv(FIX / "data" / "irt_sx2.csv")
    return irt(df, se=False, tol=1e-8), df


def test_parameters_are_those_the_reference_used(fit_and_data):
    fit, _ = fit_and_data
    for it, p in PARS.items():
        a, d = fit.item_params(it)
        assert_allclose([a, *d], [p["a"], *p["d"]], atol=1e-8)


def test_s_x2_matches_r(fit_and_data):
    fit, df = fit_and_data
    ours = s_x2(fit, df).set_index("item")
    ref = pd.DataFrame(REF["items"]).set_index("item")
    assert_allclose(ours.loc[ref.index, "S_X2"], ref["S_X2"], rtol=1e-8)
    assert (ours.loc[ref.index, "df"] == ref["df"]).all()
    assert_allclose(ours.loc[ref.index, "p"], ref["p"], rtol=1e-6)
    assert ours["S_X2"].idxmax() == "i06" and ours.loc["i06", "flagged"]
