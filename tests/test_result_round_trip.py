"""A fit result survives ``to_dict()`` -> JSON -> ``from_dict()`` with everything its methods
need: the summary, modification indices, residuals, the standardized solution and factor
scores (ML, MLR, FIML), and for WLSMV the sample statistics behind the Satorra (2000)
difference test and the per-group chi-squares."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import instrument as ins
from instrument.sem.estimators.categorical import group_chisq_wls, satorra2000_diff
from instrument.results import JSONResult, Meta, dumps

FIX = Path(__file__).parent / "fixtures"
HS_MODEL = ("visual =~ x1 + a*x2 + b*x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9\n"
            "ab := a*b")
ITEMS = [f"x{i}" for i in range(1, 10)]


@lru_cache(maxsize=None)
def _hs() -> pd.DataFrame:
    return pd.read_csv(FIX / "cfa" / "HolzingerSwineford1939.csv")


@lru_cache(maxsize=None)
def _ordinal() -> pd.DataFrame:
    d = _hs()
    return d[ITEMS].apply(lambda c: pd.qcut(c, 4, labels=False) + 1)


def _fit(kind: str, model: str = HS_MODEL):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ML":
            return ins.cfa(model, _hs())
        if kind == "MLR":
            return ins.cfa(model, _hs(), estimator="MLR")
        if kind == "FIML":
            return ins.cfa(model, pd.read_csv(FIX / "mlrfiml" / "hs_mcar8.csv"),
                           estimator="MLR", missing="fiml")
        return ins.cfa(model, _ordinal(), ordered=True, estimator="WLSMV")


@lru_cache(maxsize=None)
def fit_and_back(kind: str):
    fit = _fit(kind)
    text = dumps(fit.to_dict())
    return fit, type(fit).from_dict(json.loads(text)), text


@pytest.mark.parametrize("kind", ["ML", "MLR", "FIML", "WLSMV"])
def test_round_trip_is_equal_and_summary_identical(kind):
    fit, back, text = fit_and_back(kind)
    assert dumps(back.to_dict()) == text
    assert back == fit
    assert back.summary().as_text() == fit.summary().as_text()
    assert "Defined Parameters" in back.summary().as_text()
    assert_allclose(back.vcov.drop(columns="name").to_numpy(float),
                    fit.vcov.drop(columns="name").to_numpy(float))


@pytest.mark.parametrize("kind", ["ML", "MLR", "FIML"])
def test_round_trip_keeps_post_estimation(kind):
    fit, back, _ = fit_and_back(kind)
    pd.testing.assert_frame_equal(back.modindices(), fit.modindices())
    pd.testing.assert_frame_equal(back.standardized_solution(), fit.standardized_solution())
    pd.testing.assert_frame_equal(back.residuals("standardized")["cov"],
                                  fit.residuals("standardized")["cov"])
    assert back.r2 == fit.r2
    pd.testing.assert_frame_equal(back.factor_scores(_hs().head(20)),
                                  fit.factor_scores(_hs().head(20)))


def test_wlsmv_state_is_a_declared_field_that_serialises():
    fit, back, text = fit_and_back("WLSMV")
    assert back.categorical_stats == fit.categorical_stats
    assert json.loads(text)["categorical_stats"]["groups"][0]["NACOV"]
    assert group_chisq_wls(back) == group_chisq_wls(fit)
    assert_allclose(sum(group_chisq_wls(back)), fit.fit_measures["chisq"], rtol=1e-10)


def test_wlsmv_difference_test_from_round_tripped_fits():
    h1, back_h1, _ = fit_and_back("WLSMV")
    h0 = _fit("WLSMV", HS_MODEL + "\na == b")
    back_h0 = type(h0).from_dict(json.loads(dumps(h0.to_dict())))
    assert h0.fit_measures["df"] == h1.fit_measures["df"] + 1
    d_orig, d_back = satorra2000_diff(h1, h0), satorra2000_diff(back_h1, back_h0)
    assert d_orig["df.diff"] == 1
    for k in ("chisq.diff", "pvalue", "a", "b"):
        assert d_back[k] == d_orig[k]
    assert np.isfinite(d_orig["chisq.diff"]) and d_orig["chisq.diff"] >= 0


def test_wlsmv_model_state_is_built_once_per_result_and_dropped_with_it():
    import gc

    from instrument.sem.estimators import categorical as cat

    fit = _fit("WLSMV")
    first = cat.model_state(fit)
    assert cat.model_state(fit) is first
    other = type(fit).from_dict(json.loads(dumps(fit.to_dict())))   # an equal result of its own
    assert cat.model_state(other) is not first
    assert_allclose(cat.model_state(other)["x"], first["x"])
    key = id(fit)
    del fit
    gc.collect()
    assert key not in cat._MODEL_STATES


@dataclass(frozen=True)
class _Declared(JSONResult):
    items: tuple[str, ...]
    theta: np.ndarray
    table: pd.DataFrame
    note: str = "none"
    meta: Meta = field(default_factory=Meta)


def test_json_result_restores_declared_field_types():
    """`JSONResult`: tuples, float arrays (null -> NaN), DataFrames and `Meta` come back as
    declared after JSON; a field absent from the dict takes its default."""
    r = _Declared(("a", "b"), np.array([[1.0, np.nan], [0.5, 2.0]]),
                  pd.DataFrame({"x": [1.5, np.nan]}), meta=Meta(options={"k": 1}, seed=3))
    back = _Declared.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.items == ("a", "b") and isinstance(back.items, tuple)
    assert_allclose(back.theta, r.theta)          # NaN in the same place
    pd.testing.assert_frame_equal(back.table, r.table)
    assert back.meta == r.meta and back.note == "none"
    d = r.to_dict()
    del d["note"], d["meta"]
    assert _Declared.from_dict(d).note == "none" and _Declared.from_dict(d).meta.seed is None


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", "string[python]", object])
def test_frame_columns_serialise_like_their_values(dtype):
    """A DataFrame's columns, converted at once, give what converting each value gives: strings
    as they are, every missing value None, objects of other types converted one by one."""
    from instrument.results import from_jsonable, to_jsonable

    text = pd.Series(["a", None, "ü", np.nan, ""], dtype=dtype)
    mixed = pd.Series(["x", 1.5, np.float64(np.inf), np.int64(3), [1.0, np.nan]], dtype=object)
    df = pd.DataFrame({"text": text, "mixed": mixed, "n": np.arange(5)})
    out = to_jsonable(df)
    assert out["columns"] == ["text", "mixed", "n"]
    assert out["data"] == [[to_jsonable(a), to_jsonable(b), int(c)]
                           for a, b, c in zip(text, mixed, df["n"])]
    assert [r[0] for r in out["data"]] == ["a", None, "ü", None, ""]
    assert [r[1] for r in out["data"]] == ["x", 1.5, None, 3, [1.0, None]]
    assert from_jsonable(json.loads(json.dumps(out)))["text"].isna().tolist() == [
        False, True, False, True, False]
