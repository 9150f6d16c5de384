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


# ---------------------------------------------------------------------------------------------
# one set of checks: constant items, n <= p, small groups (lavaan 0.6-14 stops on the first
# with "some variables have no variance in group g" / "ordered variable(s) has/have only 1
# level", and warns "small number of observations (nobs < nvar)")
# ---------------------------------------------------------------------------------------------
HS6 = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6"
ITEMS6 = [f"x{i}" for i in range(1, 7)]


def hs_ordinal() -> pd.DataFrame:
    d = HS.copy()
    for v in ITEMS6:
        d[v] = pd.cut(d[v], 3, labels=False).astype(int) + 1
    return d


FITS = {"ML": {}, "MLR": {"estimator": "MLR"}, "FIML": {"missing": "fiml"},
        "WLSMV": {"ordered": ITEMS6}}


def _data(kind: str) -> pd.DataFrame:
    return hs_ordinal() if kind == "WLSMV" else HS.copy()


@pytest.mark.parametrize("kind", list(FITS))
def test_constant_item_is_one_error_for_every_estimator(kind):
    d = _data(kind)
    d["x2"] = 2
    with pytest.raises(ValueError) as err:
        ins.cfa(HS6, d, **FITS[kind])
    assert str(err.value) == (
        "data= variable(s) ['x2'] are constant (every observed value: x2 = 2); expected at "
        "least two different values (for an ordered item, two categories), as lavaan does: "
        "drop the item.")


@pytest.mark.parametrize("kind", list(FITS))
def test_item_constant_within_a_group_is_one_error_for_every_estimator(kind):
    d = _data(kind)
    d.loc[d["school"] == "Pasteur", "x2"] = 2
    with pytest.raises(ValueError) as err:
        ins.cfa(HS6, d, group="school", **FITS[kind])
    assert str(err.value) == (
        "data= variable(s) ['x2'] are constant within group 'Pasteur' of 'school' (every "
        "observed value: x2 = 2); expected at least two different values (for an ordered item, "
        "two categories) in every group, as lavaan does: drop the item, or drop or merge the "
        "group.")


def test_item_unobserved_in_a_group_is_an_error():
    d = HS.copy()
    d.loc[d["school"] == "Pasteur", "x2"] = np.nan
    with pytest.raises(ValueError, match=r"\['x2'\] have no observed value within group "
                                         r"'Pasteur' of 'school'"):
        ins.cfa(HS6, d, group="school", missing="fiml")


def _with_small_group(kind: str) -> pd.DataFrame:
    """Pasteur's rows and a second group of 6 rows (p = 6) in which every item takes every
    category 1, 2, 3."""
    d = _data(kind)
    d = d[d["school"] == "Pasteur"].copy()
    small = pd.DataFrame([[1, 2, 3, 1, 2, 3], [2, 3, 1, 2, 3, 1], [3, 1, 2, 3, 1, 2],
                          [1, 2, 3, 2, 3, 1], [2, 3, 1, 3, 1, 2], [3, 1, 2, 1, 2, 3]],
                         columns=ITEMS6)
    small["school"] = "Small"
    d = pd.concat([d[ITEMS6 + ["school"]], small], ignore_index=True)
    if kind != "WLSMV":
        d[ITEMS6] = d[ITEMS6].astype(float)
    return d


def test_small_group_warns_n_le_p_with_ordered_items():
    d = _with_small_group("WLSMV")
    _, msgs = caught(_try_fit, HS6, d, group="school", **FITS["WLSMV"])
    assert "too few observations in group Small: n = 6 <= number of variables p = 6" in msgs


@pytest.mark.parametrize("kind", ["ML", "MLR"])
def test_small_group_stops_complete_data_ml(kind):
    # lavaan: "small number of observations (nobs < nvar) in group 2", then "sample covariance
    # matrix is not positive-definite"
    d = _with_small_group(kind)
    with pytest.raises(ValueError, match=r"data= the sample covariance matrix in group Small is "
                                         r"not positive definite \(smallest eigenvalue .*; n = 6 "
                                         r"rows for p = 6 variables\); expected more rows than "
                                         r"variables in every group"):
        ins.cfa(HS6, d, group="school", **FITS[kind])


def _try_fit(*a, **kw):
    """The fit may be refused afterwards (lavaan stops on such data too): only the data
    step's warning is looked at here."""
    try:
        return ins.cfa(*a, **kw)
    except ValueError:
        return None
