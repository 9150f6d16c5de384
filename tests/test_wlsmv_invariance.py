"""Ordinal (WLSMV) invariance ladder by gender, Wu & Estabrook (2016) identification, theta
parameterization: refs case j (semTools measEq.syntax output fitted through cfa())."""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from threadpoolctl import threadpool_limits

from instrument.sem.cfa import cfa
from instrument.sem.estimators.categorical import satorra2000_diff

FIX = Path(__file__).parent / "fixtures" / "wlsmv"


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Small dense algebra: BLAS threads only oversubscribe the shared cores."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
RTOL_CHISQ, RTOL_SE = 1e-6, 1e-4
# theta-parameterization estimates are on a stretched scale (thresholds up to 2.9, loadings
# 1.5): lavaan's nlminb stops at a relative objective change of 1e-10, which leaves its
# estimates within ~5e-5 of the optimum here while every chi-square agrees to 1e-7
ATOL_EST_THETA = 1e-4
ITEMS = [f"{a}{i}" for a in "ACN" for i in range(1, 6)]
STEPS = ("configural", "thresholds", "loadings", "intercepts", "residuals")


@lru_cache(maxsize=None)
def ref() -> dict:
    return json.loads((FIX / "j_bfi_ordinal_invariance.json").read_text())


@lru_cache(maxsize=None)
def bfi() -> pd.DataFrame:
    d = pd.read_csv(FIX / "bfi_complete25.csv")
    d["sex"] = np.where(d["gender"] == 1, "male", "female")
    return d


@lru_cache(maxsize=None)
def fits() -> dict:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in STEPS:
            syn = (FIX / f"j_syntax_{s}.lav").read_text()
            out[s] = cfa(syn, bfi(), group="sex", group_order=["male", "female"],
                         ordered=ITEMS, parameterization="theta")
    return out


@pytest.mark.parametrize("step", STEPS)
def test_step_fit_measures(step):
    fm, r = fits()[step].fit_measures, ref()["fit"][step]
    assert fits()[step].converged
    for k in ("npar", "chisq", "df", "chisq.scaled", "df.scaled", "chisq.scaling.factor",
              "cfi", "tli", "cfi.scaled", "tli.scaled", "rmsea", "rmsea.scaled"):
        assert_allclose(fm[k], r[k], rtol=RTOL_CHISQ, atol=1e-12, err_msg=f"{step} {k}")
    assert_allclose(fm["srmr"], r["srmr"], atol=1e-6)
    if r["cfi.robust"] is None:
        # lavaan 0.6-14 gives NA once thresholds are held equal (its catML refit fails)
        assert "cfi.robust" not in fm and "rmsea.robust" not in fm
    else:
        assert_allclose(fm["cfi.robust"], r["cfi.robust"], rtol=RTOL_CHISQ)
        # sqrt of a difference (XX3 - c3 df3) of two close numbers: relative error doubles
        assert_allclose(fm["rmsea.robust"], r["rmsea.robust"], rtol=2 * RTOL_CHISQ)


def test_lavTestLRT_satorra2000():
    f = fits()
    lrt = ref()["lavTestLRT"]
    for prev, step, r in zip(STEPS[:-1], STEPS[1:], lrt[1:]):
        assert r["model"] == step
        o = satorra2000_diff(f[prev], f[step])
        assert o["df.diff"] == r["Df diff"]
        assert_allclose(o["chisq.diff"], r["Chisq diff"], rtol=RTOL_CHISQ, err_msg=step)
        assert_allclose(o["pvalue"], r["Pr(>Chisq)"], rtol=1e-4, err_msg=step)
    # the README's headline: intercepts do not hold (184.2 on 12 df)
    assert abs(satorra2000_diff(f["loadings"], f["intercepts"])["chisq.diff"] - 184.2) < 0.05


def test_intercepts_step_estimates():
    pe = pd.DataFrame(ref()["parameter_estimates_intercepts"])
    pe["rhs"] = pe["rhs"].fillna("")
    m = fits()["intercepts"].estimates.merge(pe, on=["lhs", "op", "rhs", "group"],
                                             suffixes=("", "_ref"))
    assert len(m) == len(pe)
    assert_allclose(m["est"], m["est_ref"], atol=ATOL_EST_THETA)
    free = m["se_ref"] > 0
    assert_allclose(m.loc[free, "se"], m.loc[free, "se_ref"], rtol=RTOL_SE)


def test_lrt_from_a_result_read_back_from_json():
    import json

    from instrument.sem.result import CFAResult
    from instrument.results import dumps
    f = fits()
    back = CFAResult.from_dict(json.loads(dumps(f["loadings"].to_dict())))
    assert satorra2000_diff(f["thresholds"], back) == satorra2000_diff(f["thresholds"],
                                                                      f["loadings"])


# ---------------------------------------------------------------------------------------------
# the ladder through invariance(ordered=): our Wu-Estabrook syntax, satorra.2000 tests, verdicts
# ---------------------------------------------------------------------------------------------

MODEL = "A =~ A1 + A2 + A3 + A4 + A5\nC =~ C1 + C2 + C3 + C4 + C5\nN =~ N1 + N2 + N3 + N4 + N5"
OUR_STEP = dict(zip(("configural", "thresholds", "metric", "scalar", "strict"), STEPS))
GROUP_EQUAL = {"configural": (), "thresholds": ("thresholds",),
               "loadings": ("thresholds", "loadings"),
               "intercepts": ("thresholds", "loadings", "intercepts"),
               "residuals": ("thresholds", "loadings", "intercepts", "residuals")}


def _equality_classes(frame: pd.DataFrame) -> list:
    """The free rows of a table grouped by the parameter they share (label, else plabel)."""
    lab = np.where(frame["label"] != "", frame["label"], frame["plabel"])
    out: dict = {}
    for i, (free, name) in enumerate(zip(frame["free"], lab)):
        if free > 0:
            out.setdefault(name, []).append(i)
    return sorted(map(tuple, out.values()))


def assert_table_is_semtools(model: str, data: pd.DataFrame, items: list, lav: Path,
                             group_equal=(), group_partial=(), parameterization="theta"):
    """The table `build_partable` writes with id_cat="Wu.Estabrook.2016" is the one lavaan's
    syntax gives for semTools' measEq.syntax output ``lav``: the same rows in the same order,
    the same free/fixed rows and fixed values, the same equalities."""
    from instrument.sem.partable import build_partable
    from instrument.sem.syntax import parse_syntax
    nlev = {v: int(data[v].nunique()) for v in items}
    common = dict(ngroups=2, meanstructure=True, ordered=tuple(items), nlevels=nlev,
                  parameterization=parameterization)
    ref = build_partable(parse_syntax(lav.read_text()), **common).frame
    ours = build_partable(model, group_equal=group_equal, group_partial=group_partial,
                          std_lv=True, id_cat="Wu.Estabrook.2016", **common).frame
    cols = ["lhs", "op", "rhs", "group", "free", "ustart"]
    pd.testing.assert_frame_equal(ours[cols], ref[cols])
    assert _equality_classes(ours) == _equality_classes(ref)


@pytest.mark.parametrize("step", STEPS)
def test_wu_estabrook_table_equals_semtools(step):
    assert_table_is_semtools(MODEL, bfi(), ITEMS, FIX / f"j_syntax_{step}.lav",
                             group_equal=GROUP_EQUAL[step])


@lru_cache(maxsize=None)
def ladder():
    from instrument.invariance import invariance
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return invariance(MODEL, bfi(), group="sex", ordered=True, rule_set="chen2007")


def test_invariance_ladder_ordinal_matches_lavaan():
    res = ladder()
    assert list(res.table["step"]) == list(OUR_STEP)
    for _, row in res.table.iterrows():
        r = ref()["fit"][OUR_STEP[row["step"]]]
        for k in ("npar", "chisq", "df", "chisq.scaled", "cfi.scaled", "rmsea.scaled", "cfi",
                  "rmsea"):
            assert_allclose(row[k], r[k], rtol=RTOL_CHISQ, err_msg=f"{row['step']} {k}")
    lrt = {r["model"]: r for r in ref()["lavTestLRT"]}
    for _, row in res.table.iloc[1:].iterrows():
        r = lrt[OUR_STEP[row["step"]]]
        assert_allclose(row["chisq.diff"], r["Chisq diff"], rtol=RTOL_CHISQ)
        assert row["df.diff"] == r["Df diff"]
    assert res.meta.options["lrt_method"] == "satorra.2000"


def test_ladder_thresholds_rung_score_tests_match_lavTestScore():
    """lavTestScore() of the case-j thresholds step (j_score_tests.json) from the ladder's own
    fit, whose equalities the parameter table wrote (.pN. labels in place of semTools' names)."""
    from instrument.invariance import score_test_equality
    r = json.loads((FIX / "j_score_tests.json").read_text())
    st = score_test_equality(ladder().fits["thresholds"])
    assert_allclose(st.attrs["total"]["X2"], r["test"][0]["X2"], rtol=RTOL_CHISQ)
    u = pd.DataFrame(r["uni"])
    u["parameter"] = u["rhs_name"].str.replace(".g2", "", regex=False)
    m = st.merge(u, on="parameter", suffixes=("", "_ref"))
    assert len(m) == len(u) == 75
    assert (m["lhs"] == m["lhs_ref"]).all() and (m["rhs"] == m["rhs_ref"]).all()
    assert_allclose(m["X2"], m["X2_ref"], rtol=1e-4, atol=1e-5)


def test_invariance_ordinal_verdicts_and_caveat():
    res = ladder()
    t = res.table.set_index("step")
    # scalar (intercepts) fails: Δχ² 184.2 on 12 df and ΔCFI(scaled) -0.0079 < -0.005
    assert not t.loc["scalar", "holds"]
    assert t.loc["metric", "holds"]
    for v in t["verdict"].iloc[1:]:
        assert "derived for ML with continuous (normal) data" in v and "ordinal" in v
    # per-group contributions add up to the chi-square
    gc = res.group_chisq
    for step, g in gc.groupby("step"):
        assert_allclose(g["chisq"].sum(), t.loc[step, "chisq"], rtol=1e-10)


def test_invariance_ordinal_rejects_mlr():
    from instrument.invariance import invariance
    with pytest.raises(ValueError, match="WLSMV"):
        invariance(MODEL, bfi(), group="sex", ordered=True, estimator="MLR")


# ---------------------------------------------------------------------------------------------
# simulated two-language data with one non-invariant threshold (y3|t2 +0.8 in "es")
# ---------------------------------------------------------------------------------------------

DIF_MODEL = "F1 =~ y1 + y2 + y3 + y4\nF2 =~ y5 + y6 + y7 + y8"


@lru_cache(maxsize=None)
def dif_ladder():
    from instrument.invariance import invariance
    d = pd.read_csv(FIX / "ordinal_dif_2lang.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = invariance(DIF_MODEL, d, group="language", ordered=True)
        return res, res.partial()


def test_dif_threshold_flagged_and_released():
    res, part = dif_ladder()
    t = res.table.set_index("step")
    # the shifted threshold fails the thresholds test, but with the item's latent-response
    # intercept and scale free in "es" at that step, little of it reaches the expected score
    assert t.loc["thresholds", "pvalue.diff"] < 1e-6
    assert t.loc["thresholds", "dmacs.item"] == "y3"
    assert t.loc["thresholds", "dmacs.max"] < 0.20 and t.loc["thresholds", "holds"]
    assert "threshold non-invariance" in t.loc["thresholds", "verdict"]
    assert "Wu & Estabrook (2016)" in t.loc["thresholds", "verdict"]
    # fixing the intercepts exposes it: the scalar step is rejected on y3 alone
    assert not t.loc["scalar", "holds"] and t.loc["scalar", "dmacs.item"] == "y3"
    assert t.loc["scalar", "dmacs.max"] >= 0.20
    assert list(part.releases["item"]) == ["y3"]
    assert list(part.releases["parameter"]) == ["y3~1"]
    pt = part.table.set_index("step")
    assert list(pt.index) == ["configural", "thresholds", "metric", "scalar", "scalar (partial)",
                              "strict"]
    assert pt.loc[["scalar (partial)", "strict"], "holds"].all()
    # the released intercept is free in "es" in the partial model
    e = part.fits["scalar (partial)"].estimates
    y3 = e[(e.lhs == "y3") & (e.op == "~1")]
    assert y3["est"].iloc[0] == 0 and abs(y3["est"].iloc[1]) > 0.2


def test_score_tests_wlsmv_total_equals_lrt_difference():
    """For the thresholds step the total score statistic approximates the unscaled DWLS
    chi-square difference (both quadratic in the same residuals)."""
    from instrument.invariance import score_test_equality
    res, _ = dif_ladder()
    fit = res.fits["thresholds"]
    st = score_test_equality(fit)
    assert st["parameter"].str.contains(r"\|t").all()
    assert st.sort_values("X2").iloc[-1]["parameter"] == "y3|t2"
    d_unscaled = fit.fit_measures["chisq"] - res.fits["configural"].fit_measures["chisq"]
    assert_allclose(st.attrs["total"]["X2"], d_unscaled, rtol=0.05)


def test_cli_invariance_ordered(tmp_path):
    from click.testing import CliRunner
    from instrument.cli import main
    out = tmp_path / "ladder.json"
    r = CliRunner().invoke(main, ["invariance", DIF_MODEL, str(FIX / "ordinal_dif_2lang.csv"),
                                  "--group", "language", "--ordered", "all", "--partial",
                                  "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "Estimator WLSMV" in r.output and "y3~1" in r.output and "cfi.scaled" in r.output
    assert out.exists()


def test_cli_cfa_ordered():
    from click.testing import CliRunner
    from instrument.cli import main
    r = CliRunner().invoke(main, ["cfa", "A =~ A1 + A2 + A3 + A4 + A5",
                                  str(FIX / "bfi_complete25.csv"), "--ordered", "all"])
    assert r.exit_code == 0, r.output
    assert "lavaan-compatible WLSMV" in r.output and "chisq.scaled" in r.output


def test_cli_cfa_wu_estabrook_rung(tmp_path):
    """One rung of the ordinal ladder from the command line (--id-cat) gives case j's fit."""
    from click.testing import CliRunner
    from instrument.cli import main
    out = tmp_path / "fit.json"
    r = CliRunner().invoke(main, ["cfa", MODEL, str(FIX / "bfi_complete25.csv"), "--ordered",
                                  "all", "--group", "gender", "--equal", "thresholds,loadings",
                                  "--std-lv", "--parameterization", "theta", "--id-cat",
                                  "Wu.Estabrook.2016", "--json", str(out)])
    assert r.exit_code == 0, r.output
    fm = json.loads(out.read_text())["fit_measures"]
    for k in ("npar", "df", "chisq", "chisq.scaled"):
        assert_allclose(fm[k], ref()["fit"]["loadings"][k], rtol=RTOL_CHISQ, err_msg=k)
    r = CliRunner().invoke(main, ["cfa", MODEL, str(FIX / "bfi_complete25.csv"), "--group",
                                  "gender", "--id-cat", "Wu.Estabrook.2016"])
    assert r.exit_code != 0 and "give --ordered" in r.output


# ---------------------------------------------------------------------------------------------
# lavaan's own multiple-group identification (marker, delta): cfa(group=, group_equal=)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("step", ["configural", "thresholds", "loadings", "intercepts"])
def test_lavaan_default_multigroup_delta(step):
    r = json.loads((FIX / "mg_delta_refs.json").read_text())[step]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = cfa(MODEL, bfi(), group="sex", group_order=["male", "female"], ordered=ITEMS,
                  group_equal=GROUP_EQUAL[step])
    for k in ("npar", "chisq", "df", "chisq.scaled", "chisq.scaling.factor", "cfi.scaled",
              "rmsea.scaled"):
        assert_allclose(fit.fit_measures[k], r["fit_measures"][k], rtol=RTOL_CHISQ,
                        err_msg=f"{step} {k}")
    assert_allclose(fit.fit_measures["srmr"], r["fit_measures"]["srmr"], atol=1e-6)
    e = fit.estimates
    for row in r["free"]:
        ours = e[(e.lhs == row["lhs"]) & (e.op == row["op"]) & (e.rhs == (row["rhs"] or ""))
                 & (e.group == 2)]
        assert len(ours) == 1, row
        assert (ours["se"].iloc[0] > 0) == (row["se"] > 0), row
        assert_allclose(ours["est"].iloc[0], row["est"], atol=1e-4, err_msg=str(row))


@pytest.mark.parametrize("case", ["single_delta", "groups_delta_thresholds_loadings",
                                  "groups_theta_thresholds"])
def test_ordinal_partable_is_lavaans(case):
    """The table of ordered indicators is lavaan's row for row (order, plabels, fixed values,
    free rows: thresholds after the user's rows, scales after the latent covariances; with
    equal thresholds the scales (delta) or residual variances (theta) free in group 2), and
    the fit matches (partable_order_refs.json)."""
    ref = json.loads((FIX / "partable_order_refs.json").read_text())
    r = ref[case]
    lav = pd.DataFrame(r["partable"])
    ge = r["group_equal"]
    ge = [] if ge == "" else [ge] if isinstance(ge, str) else ge
    groups = {} if case.startswith("single") else {"group": "sex",
                                                   "group_order": ["male", "female"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = cfa(ref["meta"]["model"], bfi(), ordered=ref["meta"]["ordered"], group_equal=ge,
                  parameterization=r["parameterization"], **groups)
    ours = fit.partable
    cols = ["lhs", "op", "rhs", "user", "group", "plabel"]
    pd.testing.assert_frame_equal(ours[cols].reset_index(drop=True),
                                  lav[cols].fillna("").reset_index(drop=True), check_dtype=False)
    assert_allclose(ours["ustart"].to_numpy(float), lav["ustart"].to_numpy(float))
    assert ((ours["free"] > 0).to_numpy() == (lav["free"] > 0).to_numpy()).all()
    for k, v in r["fit_measures"].items():
        assert_allclose(fit.fit_measures[k], v, rtol=RTOL_CHISQ, err_msg=f"{case} {k}")


def test_score_tests_match_lavTestScore():
    """lavTestScore() on the case-j thresholds step (j_score_tests.json)."""
    from instrument.invariance import score_test_equality
    r = json.loads((FIX / "j_score_tests.json").read_text())
    st = score_test_equality(fits()["thresholds"])
    assert_allclose(st.attrs["total"]["X2"], r["test"][0]["X2"], rtol=RTOL_CHISQ)
    u = pd.DataFrame(r["uni"])
    u["parameter"] = u["rhs_name"].str.replace(".g2", "", regex=False)
    m = st.merge(u, on="parameter", suffixes=("", "_ref"))
    assert len(m) == len(u) == 75
    # lavaan's estimates sit ~5e-5 from the optimum (theta scale): tiny statistics differ by
    # ~1e-6 absolute, the informative ones (X2 > 0.1) agree to ~3e-6 relative
    assert_allclose(m["X2"], m["X2_ref"], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# binary and three-category items (we_binary_*: semTools syntax and lavaan fits)
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def bfi_binary() -> pd.DataFrame:
    d = bfi().copy()
    d["A1"] = (d["A1"] > 3).astype(int)
    d["A2"] = d["A2"].sub(3).clip(1, 3)
    return d


@pytest.mark.parametrize("step", STEPS)
def test_wu_estabrook_binary_items(step):
    from instrument.invariance import ORDINAL_LADDER_OPTIONS
    model = "A =~ A1 + A2 + A3 + A4 + A5\nN =~ N1 + N2 + N3 + N4 + N5"
    items = [f"{a}{i}" for a in "AN" for i in range(1, 6)]
    assert bfi_binary()["A1"].nunique() == 2 and bfi_binary()["A2"].nunique() == 3
    assert_table_is_semtools(model, bfi_binary(), items, FIX / f"we_binary_{step}.lav",
                             group_equal=GROUP_EQUAL[step])
    r = json.loads((FIX / "we_binary_refs.json").read_text())[step]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = cfa(model, bfi_binary(), group="sex", group_equal=GROUP_EQUAL[step],
                  group_order=["male", "female"], ordered=True, **ORDINAL_LADDER_OPTIONS)
    for k in ("npar", "chisq", "df", "chisq.scaled", "cfi.scaled", "rmsea.scaled"):
        assert_allclose(fit.fit_measures[k], r[k], rtol=RTOL_CHISQ, err_msg=f"{step} {k}")


@pytest.mark.parametrize("case", ["thresholds", "intercepts", "residuals"])
def test_wu_estabrook_group_partial(case):
    """Released thresholds, intercepts, loadings and residual variances (group_partial) change
    which latent-response parameters are free in group 2 as semTools' rules do: one equal
    threshold frees the intercept, two (or one and an equal intercept) the residual variance
    (we_partial_<case>.lav, fitted by lavaan in we_partial_refs.json)."""
    from instrument.invariance import ORDINAL_LADDER_OPTIONS
    model = "A =~ A1 + A2 + A3 + A4 + A5\nN =~ N1 + N2 + N3 + N4 + N5"
    items = [f"{a}{i}" for a in "AN" for i in range(1, 6)]
    r = json.loads((FIX / "we_partial_refs.json").read_text())[case]
    assert_table_is_semtools(model, bfi_binary(), items, FIX / f"we_partial_{case}.lav",
                             group_equal=r["group_equal"], group_partial=r["group_partial"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = cfa(model, bfi_binary(), group="sex", group_equal=r["group_equal"],
                  group_partial=r["group_partial"], group_order=["male", "female"],
                  ordered=True, **ORDINAL_LADDER_OPTIONS)
    for k in ("npar", "chisq", "df", "chisq.scaled", "cfi.scaled", "rmsea.scaled"):
        assert_allclose(fit.fit_measures[k], r[k], rtol=RTOL_CHISQ, err_msg=f"{case} {k}")


@pytest.mark.parametrize("case", ["configural", "thresholds", "loadings", "intercepts",
                                  "intercepts_partial"])
def test_wu_estabrook_delta(case):
    """The delta parameterization: the scales take the residual variances' place in groups
    2..G (semTools measEq.syntax with parameterization = "delta"; we_delta_refs.json)."""
    model = "A =~ A1 + A2 + A3 + A4 + A5\nN =~ N1 + N2 + N3 + N4 + N5"
    items = [f"{a}{i}" for a in "AN" for i in range(1, 6)]
    r = json.loads((FIX / "we_delta_refs.json").read_text())[case]
    ge = [] if r["group_equal"] == "" else [r["group_equal"]] if isinstance(
        r["group_equal"], str) else r["group_equal"]
    gp = [] if r["group_partial"] == "" else r["group_partial"]
    assert_table_is_semtools(model, bfi_binary(), items, FIX / f"we_delta_{case}.lav",
                             group_equal=ge, group_partial=gp, parameterization="delta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = cfa(model, bfi_binary(), group="sex", group_equal=ge, group_partial=gp,
                  group_order=["male", "female"], ordered=True, std_lv=True,
                  id_cat="Wu.Estabrook.2016")
    for k in ("npar", "chisq", "df", "chisq.scaled", "cfi.scaled", "rmsea.scaled"):
        assert_allclose(fit.fit_measures[k], r[k], rtol=RTOL_CHISQ, err_msg=f"{case} {k}")


@pytest.mark.parametrize("options, message", [
    ({"id_cat": "Millsap.Tein.2004"}, "id_cat= must be one of 'Wu.Estabrook.2016'"),
    ({"id_cat": "Wu.Estabrook.2016", "parameterization": "theta"}, "std_lv=True"),
    ({"id_cat": "Wu.Estabrook.2016", "std_lv": True, "group_equal": ["residuals"]},
     "residual variances are not parameters"),
])
def test_id_cat_refusals(options, message):
    options = {"group_equal": ["thresholds"], **options}
    with pytest.raises(ValueError, match=message) as e:
        cfa(MODEL, bfi(), group="sex", ordered=True, **options)
    assert "\n" not in str(e.value)


def test_id_cat_needs_ordered_items_and_a_measurement_model():
    from instrument.invariance import ORDINAL_LADDER_OPTIONS
    with pytest.raises(ValueError, match="give ordered="):
        cfa(MODEL, bfi(), group="sex", **ORDINAL_LADDER_OPTIONS)
    with pytest.raises(ValueError, match="may only hold '=~' lines"):
        cfa(MODEL + "\nA1 ~~ A2", bfi(), group="sex", ordered=True, **ORDINAL_LADDER_OPTIONS)


def test_fast_traces_equal_dense_formula():
    """`scaled_shifted` (parameter-sized algebra) equals the dense reference
    `dwls_scaled_shifted` on a two-group fit."""
    from instrument.sem.estimators.categorical import model_state
    from instrument.sem.test.scaled_shifted import scaled_shifted as scaled_shifted_fast
    from tests.reference.dwls import dwls_scaled_shifted
    f = fits()["loadings"]
    st = model_state(f)
    D = st["model"].wls_delta(st["x"])
    a = dwls_scaled_shifted(f.fit_measures["chisq"], f.fit_measures["df"], D, st["cstats"])
    b = scaled_shifted_fast(f.fit_measures["chisq"], f.fit_measures["df"], D, st["cstats"])
    for k in ("trace.UGamma", "trace.UGamma2", "chisq.scaling.factor", "chisq.shift.parameters",
              "chisq.scaled"):
        assert_allclose(b[k], a[k], rtol=1e-12, err_msg=k)


def _uniform_shift_data(seed: int = 11, n: int = 1500) -> pd.DataFrame:
    """Two factors x 4 five-category items; in "es" every threshold of y6 is shifted by +0.6
    (an intercept difference on the latent-response scale)."""
    rng = np.random.default_rng(seed)
    lam = np.array([.8, .7, .75, .65, .8, .7, .75, .65])
    tau = np.array([-1.3, -0.5, 0.3, 1.0])
    frames = []
    for lang in ("en", "es"):
        eta = rng.multivariate_normal([0, 0] if lang == "en" else [0.2, -0.1],
                                      [[1, .4], [.4, 1]], n)
        L = np.zeros((8, 2))
        L[:4, 0], L[4:, 1] = lam[:4], lam[4:]
        ystar = eta @ L.T + rng.normal(0, np.sqrt(1 - lam ** 2), (n, 8))
        shift = np.zeros(8)
        if lang == "es":
            shift[5] = 0.6
        codes = 1 + (ystar[:, :, None] > (tau[None, None, :] + shift[None, :, None])).sum(axis=2)
        df = pd.DataFrame(codes, columns=[f"y{i}" for i in range(1, 9)])
        df["language"] = lang
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def test_intercept_dif_is_found_at_the_scalar_step_and_released_by_score_test():
    """Under Wu–Estabrook identification a uniform threshold shift is absorbed by the item's
    free intercept at the thresholds step and shows at the scalar step, where intercepts are
    fixed rather than equated: partial() score-tests freeing each fixed intercept (lavaan's
    "add" mode) and frees exactly the shifted item's intercept."""
    from instrument.invariance import invariance
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = invariance(DIF_MODEL, _uniform_shift_data(), group="language", ordered=True)
        t = res.table.set_index("step")
        assert t.loc["thresholds", "holds"] and not t.loc["scalar", "holds"]
        part = res.partial("scalar")
    assert list(part.releases["parameter"]) == ["y6~1"]
    assert part.table.set_index("step").loc["scalar (partial)", "holds"]


def test_repeated_elements_merge_within_a_statement_only():
    """lavaan merges the modifiers of an element repeated within one statement (semTools writes
    ``c(NA, NA)*x + c(l, l)*x``) for every estimator, and refuses one repeated in another
    statement ("duplicate model element")."""
    from instrument.sem.partable import build_partable
    pt = build_partable("f =~ NA*x1 + a*x1 + x2 + x3\nf ~~ 1*f")
    f = pt.frame
    x1 = f[(f.op == "=~") & (f.rhs == "x1")]
    assert len(x1) == 1 and x1["free"].iat[0] > 0 and x1["label"].iat[0] == "a"
    with pytest.raises(ValueError, match=r"line 2: f =~ x1 is given twice \(first on line 1\)"):
        build_partable("f =~ x1 + x2 + x3\nf =~ a*x1")


def test_scales_only_for_ordered_indicators():
    with pytest.raises(ValueError, match=r"line 2: A1 ~\*~ A1 is a scale"):
        cfa("A =~ A1 + A2 + A3\nA1 ~*~ 1*A1", bfi())
