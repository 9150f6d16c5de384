"""The one data step (`instrument.sem.data`): every estimator gets the same checks and the same
messages, each emitted once per fit."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import instrument as ins

FIX = Path(__file__).parent / "fixtures"
HS = pd.read_csv(FIX / "cfa" / "HolzingerSwineford1939.csv")
HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
BFI = pd.read_csv(FIX / "cfa" / "bfi_complete25.csv")
A_MODEL = "A =~ A1 + A2 + A3 + A4 + A5"


def caught(fn, *a, **kw):
    """The fit and every warning it emitted (messages as text)."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        fit = fn(*a, **kw)
    return fit, [str(w.message) for w in got]


def hs_with_missing() -> pd.DataFrame:
    d = HS.copy()
    d.loc[[0, 5, 9], "x2"] = np.nan
    return d


LISTWISE_ML = ("3 of 301 rows (1%) have a missing value on a model variable and were dropped "
               "(missing='listwise', lavaan's default); missing='fiml' keeps them")


@pytest.mark.parametrize("estimator", ["ML", "MLR"])
def test_listwise_deletion_is_one_message_once(estimator):
    fit, msgs = caught(ins.cfa, HS_MODEL, hs_with_missing(), estimator=estimator)
    assert fit.fit_measures["ntotal"] == 298
    assert [m for m in msgs if "row" in m] == [LISTWISE_ML]
    assert [w for w in fit.warnings if "row" in w] == [LISTWISE_ML]
    assert fit.summary().as_text().count("3 of 301 rows") == 1


def test_listwise_deletion_ordinal_is_one_message_once():
    d = BFI[[f"A{i}" for i in range(1, 6)]].copy()
    d.iloc[:40, 0] = np.nan
    fit, msgs = caught(ins.cfa, A_MODEL, d, ordered=True)
    n = len(d)
    expected = (f"40 of {n} rows (2%) have a missing value on a model variable and were dropped "
                "(missing='listwise', lavaan's default); missing='pairwise' keeps them")
    assert [m for m in msgs if "row" in m] == [expected]
    assert fit.fit_measures["ntotal"] == n - 40


def test_listwise_deletion_twolevel_is_one_message_once():
    d = pd.read_csv(FIX / "twolevel" / "teachers.csv")
    d.loc[[3, 4], "y1"] = np.nan
    model = json.loads((FIX / "twolevel" / "twolevel_ref.json").read_text())["model"]
    fit, msgs = caught(ins.cfa, model, d, cluster="school_id")
    assert [m for m in msgs if "row" in m] == [
        f"2 of {len(d)} rows (0%) have a missing value on a model variable and were dropped "
        "(missing='listwise', lavaan's default)"]
    assert fit.N == len(d) - 2
