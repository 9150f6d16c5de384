"""Factor scores of a FIML fit score incomplete rows from their answered items, as lavaan's
lavPredict (fixtures/factor_scores_fiml, R script beside the reference); a listwise fit leaves
them NaN and says so."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument import cfa

FIX = Path(__file__).parent / "fixtures"
REF = json.loads((FIX / "factor_scores_fiml" / "lavpredict_fiml.json").read_text())
DATA = pd.read_csv(FIX / "mlrfiml" / "hs_mcar8.csv")
MODEL = "visual =~ x1 + x2 + x3\n textual =~ x4 + x5 + x6\n speed =~ x7 + x8 + x9"
# estimates agree with lavaan to ~1e-6 (FIML, gradient 1e-9); scores are linear in them
ATOL_SCORES = 1e-4


@pytest.fixture(scope="module")
def fit():
    return cfa(MODEL, DATA, missing="fiml")


@pytest.mark.parametrize("method, key", [("regression", "regression"), ("Bartlett", "bartlett")])
def test_every_row_scored_as_lavpredict(fit, method, key):
    fs = fit.factor_scores(DATA, method=method)
    assert DATA[[f"x{i}" for i in range(1, 10)]].isna().any(axis=1).sum() == REF["n_incomplete"][0]
    assert fs.notna().all().all()
    assert_allclose(fs.to_numpy(), np.array(REF[key]), atol=ATOL_SCORES)


def test_listwise_fit_says_rows_are_left_out():
    with pytest.warns(UserWarning, match="145 of 301 rows .* dropped"):
        lw = cfa(MODEL, DATA)
    with pytest.warns(UserWarning, match="145 of 301 rows have a missing value .* NaN"):
        fs = lw.factor_scores(DATA)
    assert fs.isna().any(axis=1).sum() == 145
