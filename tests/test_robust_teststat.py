"""Scaled difference tests (lavTestLRT) and robust fit-index formulas against lavaan 0.6-14."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from instrument.sem.fit import cfi as fcfi, rmsea as frmsea
from instrument.sem.test.satorra_bentler import DiffTest, lrt, rmsea_d, satorra_bentler_2001
from tests.reference.lrt import information_is_pd, lrt_table, satorra_bentler_2010

FIX = Path(__file__).parent / "fixtures" / "robust"
RTOL_CHISQ, TOL_HAND = 1e-6, 1e-8
LADDER = ("configural", "metric", "scalar", "strict", "means")


@lru_cache(maxsize=None)
def shared() -> dict:
    return json.loads((FIX / "shared_refs_subset.json").read_text())


def mlr_models():
    fit = shared()["b_hs_invariance"]["MLR"]["fit"]
    return [{"name": k, "chisq": fit[k]["chisq"], "df": fit[k]["df"],
             "scaling_factor": fit[k]["chisq.scaling.factor"]} for k in LADDER]


def test_sb2001_ladder_from_lavaans_statistics():
    ref = shared()["b_hs_invariance"]["MLR"]["lrt_successive_satorra_bentler_2001"]
    mods = mlr_models()
    for a, b, r in zip(mods[:-1], mods[1:], ref[1:]):
        t = satorra_bentler_2001(a["chisq"], a["df"], a["scaling_factor"], b["chisq"], b["df"],
                                 b["scaling_factor"])
        assert_allclose(t.chisq_diff, r["Chisq diff"], rtol=TOL_HAND, err_msg=r["model"])
        assert t.df_diff == r["Df diff"]
        assert_allclose(t.pvalue, r["Pr(>Chisq)"], rtol=1e-7, err_msg=r["model"])
    # README case b: metric 6.567 on 6 df, p = .363; scalar 40.838 on 6 df
    t = satorra_bentler_2001(mods[0]["chisq"], 48, mods[0]["scaling_factor"], mods[1]["chisq"], 54,
                             mods[1]["scaling_factor"])
    assert round(t.chisq_diff, 3) == 6.567 and round(t.pvalue, 3) == 0.363


def test_lrt_table_default_is_sb2001_for_mlr_and_sorted_by_df():
    ref = shared()["b_hs_invariance"]["MLR"]["lrt_successive_satorra_bentler_2001"]
    tab = lrt_table(list(reversed(mlr_models())))
    assert list(tab["model"]) == list(LADDER)
    assert_allclose(tab["Chisq diff"].to_numpy()[1:], [r["Chisq diff"] for r in ref[1:]],
                    rtol=TOL_HAND)
    assert np.isnan(tab["RMSEA"]).all()        # lavaan shows no RMSEA column for scaled tests


def test_plain_lrt_and_rmsea_d():
    fit = shared()["b_hs_invariance"]["ML_fit"]
    mods = [{"name": k, "chisq": fit[k]["chisq"], "df": fit[k]["df"]} for k in LADDER]
    tab = lrt_table(mods, ntotal=301, ngroups=2)
    # README case b (ML): metric 8.192 (6), p = .2244; scalar 40.059 (6)
    assert_allclose(tab["Chisq diff"].iloc[1], 124.043544179993 - 115.851343875559, rtol=1e-12)
    assert round(tab["Pr(>Chisq)"].iloc[1], 4) == 0.2244
    d = tab["Chisq diff"].iloc[2]
    assert_allclose(tab["RMSEA"].iloc[2], np.sqrt(2) * np.sqrt(max(d / (301 * 6) - 1 / 301, 0)),
                    rtol=1e-12)
    assert rmsea_d(3.0, 6, 301, ngroups=2) == 0.0
    t = lrt(115.85, 48, 124.04, 54)
    assert t.method == "standard" and t.df_diff == 6


def test_sb2010_formula_and_pd_warning():
    # with c10 == c1 the 2010 statistic equals the 2001 one
    a, b = mlr_models()[:2]
    t01 = satorra_bentler_2001(a["chisq"], 48, a["scaling_factor"], b["chisq"], 54,
                               b["scaling_factor"])
    t10 = satorra_bentler_2010(a["chisq"], 48, a["scaling_factor"], b["chisq"], 54,
                               b["scaling_factor"])
    assert_allclose(t10.chisq_diff, t01.chisq_diff, rtol=1e-12)
    # lavaan's recorded 2010 statistic implies c10; recover it and check the round trip
    ref = shared()["b_hs_invariance"]["MLR"]["lrt_successive_satorra_bentler_2010"][1]
    cd = (b["chisq"] - a["chisq"]) / ref["Chisq diff"]
    c10 = (54 * b["scaling_factor"] - 6 * cd) / 48
    t = satorra_bentler_2010(a["chisq"], 48, c10, b["chisq"], 54, b["scaling_factor"])
    assert_allclose(t.chisq_diff, ref["Chisq diff"], rtol=1e-12)
    assert_allclose(t.pvalue, ref["Pr(>Chisq)"], rtol=1e-9)
    with pytest.warns(RuntimeWarning, match="M10 model is not positive definite"):
        satorra_bentler_2010(1.0, 1, 1.0, 3.0, 2, 1.0, m10_information=np.diag([1.0, -1.0]))
    assert information_is_pd(np.eye(2)) and not information_is_pd(np.diag([1.0, -1e-3]))


def test_sb2001_negative_scaling_factor_warns():
    with pytest.warns(RuntimeWarning, match="scaling factor is negative"):
        t = satorra_bentler_2001(10.0, 10, 2.0, 12.0, 11, 0.5)
    assert np.isnan(t.chisq_diff)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="method= must be one of"):
        lrt_table(mlr_models(), method="sb2001")
    with pytest.raises(ValueError, match="more restricted"):
        lrt(10.0, 5, 12.0, 4)
    with pytest.raises(ValueError, match="c10="):
        lrt_table(mlr_models(), method="satorra.bentler.2010")


def test_difftest_round_trip_and_summary():
    t = satorra_bentler_2001(115.85, 48, 0.95, 124.04, 54, 0.98)
    assert DiffTest.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    assert "satorra.bentler.2001" in t.summary().as_text()


def test_robust_formulas_reduce_to_standard_when_c_is_one():
    assert fcfi.cfi(85.3, 24, 918.85, 36) == fcfi.cfi(85.3, 24, 918.85, 36, c=1.0, c_b=1.0)
    assert_allclose(fcfi.cfi(85.3055217699727, 24, 918.851589292384, 36), 0.930559651799336,
                    rtol=1e-9)
    assert_allclose(fcfi.tli(85.3055217699727, 24, 918.851589292384, 36), 0.895839477699004,
                    rtol=1e-9)
    assert_allclose(frmsea.rmsea(85.3055217699727, 24, 301), 0.0921214845101686, rtol=1e-9)
    lo, up = frmsea.rmsea_ci(85.3055217699727, 24, 301)
    assert_allclose([lo, up], [0.0714184904399382, 0.113678016811963], rtol=1e-5)
    assert fcfi.cfi(10.0, 20, 918.0, 36) == 1.0
    assert frmsea.rmsea(10.0, 0, 301) == 0.0


def test_sb2010_c10_from_m10_ingredients():
    """M10 = the configural model (M1) at the metric model's (M0) estimates, HS by school."""
    import pandas as pd

    from tests.reference.mlr_slow import (RobustGroup, firstorder_information,
                                          observed_information)
    from tests.reference.lrt import satorra_bentler_2010_c10
    from instrument.sem.test.yuan_bentler import h1_trace_complete
    from tests.reference.tiny_cfa import TinyCFA, ref_rows

    s10 = json.loads((FIX / "robust_refs.json").read_text())["sb2010_configural_metric"]
    hs = pd.read_csv(FIX / "HolzingerSwineford1939.csv")
    ov = [f"x{i}" for i in range(1, 10)]
    models, data = [], []
    for gi, school in ((1, "Pasteur"), (2, "Grant-White")):
        rows = ref_rows(s10["partable_configural"], group=gi)
        est = {(r["lhs"], r["op"], r["rhs"]): r["est"] for r in s10["partable_metric"]
               if r["group"] == gi}
        for r in rows:
            r["est"] = est[(r["lhs"], r["op"], r["rhs"])]
        models.append(TinyCFA(rows, ov, meanstructure=True))
        data.append(hs.loc[hs["school"] == school, ov].to_numpy(float))
    nx = [m.x0.size for m in models]

    def delta_fn(x):
        out, off = [], 0
        for m, k in zip(models, nx):
            D = np.zeros((54, sum(nx)))
            D[:, off:off + k] = m.delta(x[off:off + k])
            out.append(D)
            off += k
        return out

    x0 = np.concatenate([m.x0 for m in models])
    groups = [RobustGroup(X, *m.implied(m.x0), D) for m, X, D in zip(models, data, delta_fn(x0))]
    E = observed_information(groups, delta_fn=delta_fn, x=x0)
    assert_allclose(np.sort(np.linalg.eigvalsh(E)), np.sort(s10["m10_information_eigenvalues"]),
                    rtol=1e-6, atol=1e-9)
    _, per = firstorder_information(groups)
    tr = [h1_trace_complete(X, meanstructure=True)[0] for X in data]
    c10 = satorra_bentler_2010_c10(h1_traces=tr, m10_information=E, m10_B0_group=per,
                                   nobs=[156, 145], df1=48)
    assert_allclose(c10, s10["c10"], rtol=RTOL_CHISQ)
    a, b = mlr_models()[:2]
    t = satorra_bentler_2010(a["chisq"], 48, c10, b["chisq"], 54, b["scaling_factor"],
                             m10_information=E)
    # README case b: lavTestLRT(..., method = "satorra.bentler.2010"): 5.323 on 6 df, p = .503
    assert_allclose(t.chisq_diff, s10["lrt"][1]["Chisq diff"], rtol=RTOL_CHISQ)
    assert_allclose(t.pvalue, s10["lrt"][1]["Pr(>Chisq)"], rtol=RTOL_CHISQ)
