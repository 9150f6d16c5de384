"""Equality constraints (``==``, linear and nonlinear) and defined parameters (``:=``) against
lavaan 0.6-14.

References: tests/fixtures/constraints/ (make_constraints_refs.R). Every estimator goes through
the same reparametrisation (`instrument.sem.constraints`), so each is checked: ML, MLR, MLR with
FIML, two groups, WLSMV; nonlinear constraints with ML, MLR and WLSMV.
"""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import instrument as ins
from instrument.sem.constraints import ConstraintError, parse_expression
from instrument.sem.syntax import ModelSyntaxError, parse_syntax

FIX = Path(__file__).parent / "fixtures"
# shared/refs/README.md, "Suggested tolerances"
RTOL_CHISQ, ATOL_EST, RTOL_SE = 1e-6, 1e-5, 1e-4
FIT_KEYS = ("npar", "df", "chisq", "pvalue", "baseline.chisq", "cfi", "tli", "rmsea",
            "rmsea.ci.lower", "rmsea.ci.upper", "srmr", "logl", "aic", "bic", "chisq.scaled",
            "cfi.scaled", "tli.scaled", "rmsea.scaled", "cfi.robust", "rmsea.robust")


@lru_cache(maxsize=None)
def refs() -> dict:
    return json.loads((FIX / "constraints" / "constraints_refs.json").read_text())


@lru_cache(maxsize=None)
def _csv(rel: str) -> pd.DataFrame:
    return pd.read_csv(FIX / rel)


def _fit(case: str):
    d = refs()["meta"]
    models = d["models"]
    hs = _csv("cfa/HolzingerSwineford1939.csv")
    calls = {
        "ml_linear": lambda: ins.cfa(models["M_LINEAR"], hs),
        "mlr_linear": lambda: ins.cfa(models["M_LINEAR"], hs, estimator="MLR"),
        "fiml_linear": lambda: ins.cfa(models["M_LINEAR"], _csv("mlrfiml/hs_mcar8.csv"),
                                       estimator="MLR", missing="fiml"),
        "ml_groups": lambda: ins.cfa(models["M_GROUPS"], hs, group="school",
                                     group_equal=["intercepts"]),
        "wlsmv": lambda: ins.cfa(models["M_ORD"], _csv("wlsmv/bfi_complete25_reversed.csv"),
                                 ordered=d["ordered"], estimator="WLSMV"),
        "ml_nonlinear": lambda: ins.cfa(models["M_NONLINEAR"], hs),
        "mlr_nonlinear": lambda: ins.cfa(models["M_NONLINEAR"], hs, estimator="MLR"),
        "wlsmv_nonlinear": lambda: ins.cfa(models["M_ORD_NONLINEAR"],
                                           _csv("wlsmv/bfi_complete25_reversed.csv"),
                                           ordered=d["ordered"], estimator="WLSMV"),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return calls[case]()


@lru_cache(maxsize=None)
def fitted(case: str):
    return _fit(case)


def _merged(case: str) -> pd.DataFrame:
    pe = pd.DataFrame(refs()["fits"][case]["parameter_estimates"])
    pe = pe[pe["op"] != "=="]
    if "group" not in pe.columns:
        pe["group"] = 1
    pe.loc[pe["op"].isin(["==", ":="]), "group"] = 0
    return pe.merge(fitted(case).estimates, on=["lhs", "op", "rhs", "group"],
                    suffixes=("_ref", ""), how="left", validate="one_to_one")


CASES = ("ml_linear", "mlr_linear", "fiml_linear", "ml_groups", "wlsmv", "ml_nonlinear",
         "mlr_nonlinear", "wlsmv_nonlinear")


@pytest.mark.parametrize("case", CASES)
def test_estimates_and_standard_errors(case):
    m = _merged(case)
    assert not m["est"].isna().any(), "a lavaan row is missing from the estimates"
    assert_allclose(m["est"], m["est_ref"], atol=ATOL_EST)
    assert_allclose(m["se"], m["se_ref"].astype(float), rtol=RTOL_SE, atol=1e-7)


@pytest.mark.parametrize("case", CASES)
def test_defined_parameters_delta_method(case):
    m = _merged(case)
    d = m[m["op"] == ":="]
    assert len(d) >= 2
    assert (d["se"] > 0).all()
    for col in ("est", "se", "z", "ci.lower", "ci.upper"):
        assert_allclose(d[col], d[f"{col}_ref"].astype(float),
                        rtol=RTOL_SE, atol=ATOL_EST, err_msg=col)
    assert_allclose(d["pvalue"], d["pvalue_ref"].astype(float), rtol=RTOL_SE, atol=1e-5)
    assert (d["label"] == d["lhs"]).all()


@pytest.mark.parametrize("case", CASES)
def test_constraints_hold(case):
    fit = fitted(case)
    assert len(fit.constraints) >= 1
    est = fit.estimates
    values = {lab: v for lab, v in zip(est["label"], est["est"]) if lab}
    for lhs, rhs in fit.constraints:
        gap = parse_expression(lhs).evaluate(values) - parse_expression(rhs).evaluate(values)
        assert abs(gap) < 1e-9, (lhs, rhs, gap)
    # lavaan's parameterEstimates() leaves the == rows out (remove.eq = TRUE)
    assert not (est["op"] == "==").any()


@pytest.mark.parametrize("case", CASES)
def test_fit_measures_and_df(case):
    ours = fitted(case).fit_measures
    ref = refs()["fits"][case]["fit_measures"]
    assert ours["npar"] == ref["npar"] == refs()["fits"][case]["npar"]
    assert ours["df"] == ref["df"]
    checked = 0
    for k in FIT_KEYS:
        if k in ours and ref.get(k) is not None and np.isfinite(ours[k]):
            rtol = RTOL_CHISQ if k in ("chisq", "baseline.chisq", "logl", "aic", "bic") else 1e-5
            assert_allclose(ours[k], ref[k], rtol=rtol, atol=1e-8, err_msg=k)
            checked += 1
    assert checked >= 10


def test_label_equality_and_linear_constraint_reduce_parameters():
    fit = fitted("ml_linear")
    e = fit.estimates.set_index(["lhs", "op", "rhs"])["est"]
    assert e[("visual", "=~", "x2")] == e[("visual", "=~", "x3")]
    assert_allclose(e[("textual", "=~", "x5")], 1.2 * e[("textual", "=~", "x6")], rtol=1e-12)
    # the vcov is over the 19 unique parameters; the eliminated loading has its se via K V K'
    assert fit.vcov.shape == (19, 20)


def test_vcov_of_all_free_rows_matches_lavaan():
    fit, ref = fitted("ml_groups"), refs()["fits"]["ml_groups"]
    model, x, _ = fit._rebuilt()
    V = model.vcov_free(fit.vcov.drop(columns="name").to_numpy(float))
    pt = pd.DataFrame(ref["partable"])
    free = pt[pt["free"] > 0].sort_values("free")
    ours_free = fit.partable[fit.partable["free"] > 0]
    key = list(zip(ours_free["lhs"], ours_free["op"], ours_free["rhs"], ours_free["group"]))
    pos = {k: i for i, k in enumerate(key)}
    idx = [pos[(r.lhs, r.op, r.rhs, r.group)] for r in free.itertuples()]
    assert_allclose(V[np.ix_(idx, idx)], np.array(ref["vcov"]), rtol=RTOL_SE, atol=1e-7)


@pytest.mark.parametrize("case", ["ml_linear", "ml_nonlinear"])
def test_round_trip_keeps_constraints_and_definitions(case):
    fit = fitted(case)
    back = type(fit).from_dict(json.loads(json.dumps(fit.to_dict())))
    assert back == fit
    assert back.defined == fit.defined and len(back.defined) >= 2
    assert_allclose(back.modindices()["mi"], fit.modindices()["mi"])
    assert_allclose(back.standardized_solution()["se"], fit.standardized_solution()["se"])


def test_constraints_on_defined_parameters_are_refused():
    hs = _csv("cfa/HolzingerSwineford1939.csv")
    with pytest.raises(ConstraintError, match="line 3: .*defined parameter"):
        ins.cfa("visual =~ x1 + a*x2 + b*x3\nab := a*b\nab == 1", hs)


def test_syntax_errors_name_line_and_column():
    with pytest.raises(ModelSyntaxError, match=r"line 2, column \d+: .*only numbers"):
        parse_syntax("f =~ x1 + a*x2 + b*x3\nab := a[1]")
    with pytest.raises(ModelSyntaxError, match="line 1.*not a valid name"):
        parse_syntax("2x := a*b")
    with pytest.raises(ModelSyntaxError, match="inequality"):
        parse_syntax("f =~ x1 + a*x2\na > 0")
    hs = _csv("cfa/HolzingerSwineford1939.csv")
    with pytest.raises(ConstraintError, match=r"line 2: .*unknown label\(s\) \['zz'\]"):
        ins.cfa("visual =~ x1 + a*x2 + b*x3\nd := a - zz", hs)
    with pytest.raises(ConstraintError, match="line 3: .*defines a name that is already a label"):
        ins.cfa("visual =~ x1 + a*x2 + b*x3\n\na := b*2", hs)


def test_expressions_are_r_arithmetic_only():
    e = parse_expression("exp(c) - d^2 + .p3./2")
    assert e.text == "exp(c)-d^2+.p3./2" and e.names == ("c", "d", ".p3.")
    assert_allclose(e.evaluate({"c": 0.5, "d": 2.0, ".p3.": 1.0}), np.exp(0.5) - 4 + 0.5)
    for bad in ("__import__('os')", "a if b else c", "[a][0]", "f(a)", "'x'"):
        with pytest.raises(ConstraintError):
            parse_expression(bad)
