"""FIML on tiny data with many missing cells: the fit measures are computed as lavaan computes
them (its EM rule for the saturated model, its RMSEA interval rules) instead of stopping in the
RMSEA interval's root finder. References: fixtures/fiml_tiny (lavaan 0.6-14)."""
from __future__ import annotations

import json
import math
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import instrument as ins
from instrument.sem.samplestats import missing_patterns
from instrument.sem.estimators.fiml_fast import em_saturated_fast, fiml_corrected_fast
from instrument.sem.fit.rmsea import rmsea_ci

FIX = Path(__file__).parent / "fixtures" / "fiml_tiny"
MODELS = {4: "f =~ x1 + x2 + x3 + x4", 6: "f =~ x1 + x2 + x3\ng =~ x4 + x5 + x6"}
RTOL_FIT = 1e-5      # h1 by lavaan's EM rule: its moments agree to ~1e-8, the statistics to 1e-6
RTOL_CI_ROOT = 1e-4  # lavaan's uniroot stops at .Machine$double.eps^0.25 on lambda
# measures from the chi-square, the h1 log-likelihood and the scaled (Yuan-Bentler) test
COMPARED = ("chisq", "df", "pvalue", "baseline.chisq", "unrestricted.logl", "logl", "cfi", "tli",
            "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.pvalue", "srmr",
            "chisq.scaled", "chisq.scaling.factor", "rmsea.scaled", "rmsea.ci.lower.scaled",
            "rmsea.ci.upper.scaled")


@lru_cache(maxsize=None)
def ref() -> dict:
    return json.loads((FIX / "fiml_tiny.json").read_text())


@pytest.mark.parametrize("case", range(7))
def test_rmsea_ci_matches_lav_fit_rmsea_ci(case):
    r = ref()["rmsea_ci"][case]
    lo, up = rmsea_ci(r["x2"], r["df"], r["n"], c=r["c"])
    for ours, theirs in ((lo, r["lower"]), (up, r["upper"])):
        if theirs is None:
            assert math.isnan(ours)
        else:
            assert_allclose(ours, theirs, rtol=RTOL_CI_ROOT, atol=1e-12)


def test_rmsea_ci_of_a_negative_statistic_is_zero_not_an_error():
    # R's pchisq is 0 below 0 where scipy's is NaN (the root finder's "value at x=0.0 is NaN")
    assert rmsea_ci(-35.46, 2, 16, c=-11.05) == (0.0, 0.0)
    assert rmsea_ci(-1e-9, 2, 16) == (0.0, 0.0)


@pytest.mark.parametrize("seed", [26, 42, 2])
@pytest.mark.parametrize("estimator", ["ML", "MLR"])
def test_tiny_fiml_fit_measures_match_lavaan(seed, estimator):
    d = pd.read_csv(FIX / f"hs_tiny_seed{seed}.csv")
    r = ref()[f"seed{seed}_{estimator}"]
    assert r["converged"]
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        fit = ins.cfa(MODELS[d.shape[1]], d, missing="fiml", estimator=estimator)
    assert fit.converged
    assert any("Heywood" in str(w.message) for w in got)
    fm, rf = fit.fit_measures, r["fit_measures"]
    for k in COMPARED:
        if k not in rf:
            continue
        if rf[k] is None:
            assert math.isnan(fm[k]), k
        else:
            assert_allclose(fm[k], rf[k], rtol=RTOL_FIT, atol=1e-8, err_msg=k)
    # the FIML-corrected robust indices come from the inverse of an h1 covariance whose smallest
    # eigenvalue is ~1e-6, which magnifies the EM's last digits: finite, not compared
    for k in ("rmsea.robust", "rmsea.ci.lower.robust", "rmsea.ci.upper.robust", "cfi.robust"):
        assert math.isfinite(fm[k]), k


def test_em_stops_by_lavaans_rule():
    d = pd.read_csv(FIX / "hs_tiny_seed42.csv")
    h = em_saturated_fast(missing_patterns(d.to_numpy(float)))
    # lavaan: "Maximum number of iterations reached when computing the sample moments using EM"
    assert (h.iterations, h.converged) == (500, False)
    assert_allclose(h.logl, ref()["seed42_ML"]["fit_measures"]["unrestricted.logl"], rtol=1e-7)


def test_fiml_corrected_is_nan_when_the_h1_based_information_is_singular():
    d = pd.read_csv(FIX / "hs_tiny_seed2.csv")
    pat = missing_patterns(d.to_numpy(float))
    h = em_saturated_fast(pat)
    p = pat.p
    rng = np.random.default_rng(1)
    D = rng.normal(size=(p + p * (p + 1) // 2, 5))
    D[:, 4] = D[:, 3]                     # two parameters with one derivative: singular
    out = fiml_corrected_fast([pat], [h], [(h.cov, h.mean)], [D], 10)
    assert out["singular"] and all(math.isnan(out[k]) for k in ("XX3", "c.hat3", "XX3.scaled"))
