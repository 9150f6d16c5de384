"""Dynamic fit index cut-offs: misspecification levels as defined by McNeish & Wolf (the
``dynamic`` package's cfaHB / cfaOne), the 95/5 and categorical cut-off rules, and end-to-end runs
(ML and WLSMV)."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import instrument as ins
from instrument.montecarlo.dfi import (DFIResult, StandardizedModel, _cutoffs_categorical,
                                       _cutoffs_ml, dynamic_cutoffs, misspecifications,
                                       standardized_solution)
from instrument.results import dumps

HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"


@pytest.fixture(scope="module")
def hs_fit():
    d = pd.read_csv("tests/fixtures/cfa/HolzingerSwineford1939.csv")
    return ins.cfa(HS, d)


def test_hs_levels_match_the_published_magnitudes(hs_fit):
    # dynamic's vignette (cfaHB on this fit): two levels, cross-loadings of .424 and .570
    miss = misspecifications(standardized_solution(hs_fit))
    lev1 = [m for m in miss if m["level"] == 1]
    lev2 = [m for m in miss if m["level"] == 2]
    assert [(m["lhs"], m["rhs"]) for m in lev1] == [("textual", "x2")]
    assert [(m["lhs"], m["rhs"]) for m in lev2] == [("textual", "x2"), ("textual", "x7")]
    assert [round(m["magnitude"], 3) for m in lev2] == [0.424, 0.570]


def test_cross_loading_is_capped_below_the_admissible_maximum():
    std = StandardizedModel(
        ov_names=("a1", "a2", "a3", "b1", "b2", "b3"), lv_names=("A", "B"),
        loadings={("A", "a1"): 0.9, ("A", "a2"): 0.9, ("A", "a3"): 0.85,
                  ("B", "b1"): 0.9, ("B", "b2"): 0.9, ("B", "b3"): 0.9},
        factor_cor={("A", "B"): 0.8, ("B", "A"): 0.8}, residual_cor={}, thresholds={})
    (m,) = misspecifications(std)
    lam, phi = 0.85, 0.8
    cap = round(0.95 * (np.sqrt(lam ** 2 * phi ** 2 + 1 - lam ** 2) - lam * phi), 4)
    assert (m["lhs"], m["rhs"]) == ("B", "a3") and m["magnitude"] == pytest.approx(cap)
    cov = std.covariance([("B", "a3", m["magnitude"])])
    np.testing.assert_allclose(np.diag(cov), 1.0)
    assert np.linalg.eigvalsh(cov).min() > 0


def test_one_factor_levels_follow_cfaone():
    # the vignette's one-factor example: six items, three levels of 1, 2 and 3 residual
    # correlations of .30 between consecutive pairs of the lowest-loading items
    lam = {"x1": .419, "x2": .212, "x3": .203, "x4": .852, "x5": .847, "x6": .840}
    std = StandardizedModel(tuple(lam), ("F",), {("F", k): v for k, v in lam.items()}, {}, {}, {})
    miss = misspecifications(std)
    by = {lev: [(m["lhs"], m["rhs"]) for m in miss if m["level"] == lev] for lev in (1, 2, 3)}
    assert by[1] == [("x2", "x3")]
    assert by[2] == [("x2", "x3"), ("x6", "x1")]
    assert by[3] == [("x2", "x3"), ("x6", "x1"), ("x4", "x5")]
    assert {m["magnitude"] for m in miss} == {0.3}
    cov = std.covariance(resid=[(a, b, 0.3) for a, b in by[3]])
    i, j = 1, 2
    th = [1 - .212 ** 2, 1 - .203 ** 2]
    assert cov[i, j] == pytest.approx(.212 * .203 + 0.3 * np.sqrt(th[0] * th[1]))


def _frame(srmr, rmsea, cfi):
    return pd.DataFrame({"srmr": srmr, "rmsea": rmsea, "cfi": cfi})


def test_ml_rule_95_5_then_90_10_then_none():
    q = np.linspace(0, 1, 101)
    true = _frame(q * 0.05, q * 0.05, 1 - q * 0.05)
    # srmr: misspecified far above (95/5 holds); rmsea: overlap that only 90/10 separates;
    # cfi: identical to the correct model (no cut-off)
    mis = _frame(0.1 + q * 0.05, 0.040 + q * 0.1, 1 - q * 0.05)
    rows = {r["index"]: r for r in _cutoffs_ml(true, [mis])}
    assert rows["srmr"]["rule"] == "95/5"
    assert rows["srmr"]["cutoff"] == pytest.approx(np.quantile(mis["srmr"], 0.05))
    assert rows["rmsea"]["rule"] == "90/10"
    assert rows["rmsea"]["cutoff"] == pytest.approx(np.quantile(mis["rmsea"], 0.10))
    assert rows["cfi"]["rule"] == "none" and np.isnan(rows["cfi"]["cutoff"])


def test_categorical_rule_reports_sensitivity():
    q = np.linspace(0, 1, 1001)
    true = _frame(q * 0.05, q * 0.05, 1 - q * 0.05)
    mis = _frame(0.03 + q * 0.05, 0.0 + q * 0.05, 1 - q * 0.05)
    rows = _cutoffs_categorical(true, [mis])
    lev0 = {r["index"]: r for r in rows if r["level"] == 0}
    assert lev0["srmr"]["cutoff"] == pytest.approx(np.quantile(true["srmr"], 0.95))
    lev1 = {r["index"]: r for r in rows if r["level"] == 1}
    # srmr: the misspecified q-quantile first reaches the correct model's 95th near q = .35
    assert lev1["srmr"]["sensitivity"] == pytest.approx(0.65, abs=0.011)
    assert lev1["srmr"]["rule"] == "specificity 95%"
    # rmsea: identical distributions, sensitivity 5% < 50%: no cut-off
    assert lev1["rmsea"]["rule"] == "none" and np.isnan(lev1["rmsea"]["cutoff"])


def test_hs_end_to_end_ml(hs_fit, tmp_path):
    res = dynamic_cutoffs(hs_fit, reps=60, seed=3, path=tmp_path / "dfi")
    assert set(res.cutoffs["level"]) == {1, 2} and res.n == 301
    # the vignette: the fitted model exceeds the level-1 and level-2 cut-offs on every index
    assert res.verdict.set_index("index")["level"].to_dict() == {"srmr": 2, "rmsea": 2, "cfi": 2}
    assert res.fitted["rmsea"] == pytest.approx(hs_fit.fit_measures["rmsea"])
    assert len(res.distributions) == 3 * 60
    back = DFIResult.from_dict(json.loads(dumps(res)))
    assert dumps(back) == dumps(res)
    assert "Dynamic fit index cut-offs" in res.summary().as_text()
    # the same study on a process pool gives the same bytes
    again = dynamic_cutoffs(hs_fit, reps=60, seed=3, scheduler="processes", workers=2)
    assert dumps(again.cutoffs) == dumps(res.cutoffs)
    assert dumps(again.distributions) == dumps(res.distributions)


def test_end_to_end_wlsmv():
    rng = np.random.default_rng(4)
    lam = np.array([0.8, 0.7, 0.6, 0.75, 0.65, 0.7])
    eta = rng.multivariate_normal([0, 0], [[1, .4], [.4, 1]], size=400)
    x = np.column_stack([lam[k] * eta[:, k // 3] + np.sqrt(1 - lam[k] ** 2) *
                         rng.standard_normal(400) for k in range(6)])
    d = pd.DataFrame(1 + (x[:, :, None] > np.array([-0.8, 0.3, 1.0])).sum(axis=2),
                     columns=["a1", "a2", "a3", "b1", "b2", "b3"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ins.cfa("A =~ a1 + a2 + a3\nB =~ b1 + b2 + b3", d, ordered=True)
    res = dynamic_cutoffs(fit, reps=12, seed=1)
    assert res.estimator == "WLSMV"
    assert set(res.cutoffs["level"]) == {0, 1}
    lev0 = res.cutoffs[res.cutoffs["level"] == 0]
    assert (lev0["rule"] == "specificity 95%").all()
    assert res.fitted["cfi"] == pytest.approx(fit.fit_measures["cfi.scaled"])
    ok = res.distributions[res.distributions["status"] == "ok"]
    assert len(ok) >= 20 and ok["cfi"].between(0, 1).all()


def test_cli_dfi(tmp_path):
    from click.testing import CliRunner
    from instrument.cli import main
    out = tmp_path / "dfi.json"
    r = CliRunner().invoke(main, ["dfi", HS, "tests/fixtures/cfa/HolzingerSwineford1939.csv",
                                  "--reps", "10", "--scheduler", "inprocess", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "Dynamic fit index cut-offs" in r.output
    assert DFIResult.from_dict(json.loads(out.read_text())).reps == 10
    bad = CliRunner().invoke(main, ["dfi", "f =~ x1 + x2 + nope",
                                    "tests/fixtures/cfa/HolzingerSwineford1939.csv"])
    assert bad.exit_code != 0 and "nope" in bad.output and "Traceback" not in bad.output
