"""Engine internals: syntax, parameter table, Jacobian, gradient, information, optimiser,
warnings, result round trip and CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from cfa_helpers import FIX, HS_MODEL, RTOL_CHISQ, data, quiet, ref
from instrument import cfa
from instrument.sem.result import CFAResult
from instrument.sem.estimators.ml import MLObjective, expected_information
from instrument.sem.optim import hessian_information
from instrument.sem.optim import optimize
from instrument.sem.model import Model, vech_indices
from instrument.sem.samplestats import GroupStats, SampleStats
from instrument.sem.fit import FIT_MEASURE_NAMES, check_names
from instrument.sem.partable import build_partable
from instrument.results import dumps
from instrument.sem.syntax import ModelSyntaxError, parse_syntax


# ---------------------------------------------------------------- syntax
def test_parse_modifiers():
    rows = parse_syntax("""
      # comment
      f =~ NA*x1 + a*x2 + 0.5*x3 + c(b, c)*x4 + start(0.7)*x5
      f ~~ 1*f; x1 ~~ x2
      x1 ~ 1
      f2 =~ x6 +
            x7
      y | t1 + t2
      a == b
    """)
    d = {(r.lhs, r.op, r.rhs): r for r in rows}
    assert math.isnan(d["f", "=~", "x1"].fixed[0])
    assert d["f", "=~", "x2"].label == ("a",)
    assert d["f", "=~", "x3"].fixed == (0.5,)
    assert d["f", "=~", "x4"].label == ("b", "c")
    assert d["f", "=~", "x5"].start == (0.7,)
    assert d["f", "~~", "f"].fixed == (1.0,)
    assert ("x1", "~1", "") in d and ("f2", "=~", "x7") in d
    assert ("y", "|", "t1") in d and ("y", "|", "t2") in d
    assert ("a", "==", "b") in d


@pytest.mark.parametrize("text,line,token", [
    ("f =~ x1 + x2\ng =~ x3 + + x4", 2, "=~"),
    ("f =~ x1\nx2 x3", 2, "x2"),
    ("f =~ x1\n  g =~ 2x", 2, "2x"),
    ("f =~ x1 + foo(1)*x2", 1, "foo(1)"),
    ("f =~ x1\nf > 0", 2, ">"),
    ("f =~ x1\nd := a*b[1]", 2, "a*b[1]"),
])
def test_syntax_errors_name_line_and_token(text, line, token):
    with pytest.raises(ModelSyntaxError) as e:
        parse_syntax(text)
    assert e.value.line == line
    assert token in str(e.value)
    assert f"line {line}" in str(e.value)


# ---------------------------------------------------------------- parameter table
def test_partable_defaults_match_lavaan_order():
    pt = build_partable(HS_MODEL)
    f = pt.frame
    assert list(f.columns[:12]) == ["id", "lhs", "op", "rhs", "user", "block", "group", "free",
                                    "ustart", "exo", "label", "plabel"]
    assert len(f) == 24 and f["free"].max() == 21
    assert f.loc[0, "free"] == 0 and f.loc[0, "ustart"] == 1.0          # marker
    assert list(f.op[9:18]) == ["~~"] * 9 and f.lhs[18] == "visual"       # auto.var
    assert (f.lhs[21], f.rhs[21]) == ("visual", "textual")               # auto.cov.lv.x
    vcov_names = ref("a_hs_cfa.json")["ml"]["vcov"]["rownames"]
    free = f[f.free > 0].sort_values("free")
    assert [f"{a}{o}{b}" for a, o, b in zip(free.lhs, free.op, free.rhs)] == vcov_names


def test_partable_std_lv_and_means():
    f = build_partable(HS_MODEL, std_lv=True, meanstructure=True).frame
    assert (f[f.op == "=~"].free > 0).all()
    lvv = f[(f.op == "~~") & (f.lhs == f.rhs) & f.lhs.isin(["visual", "textual", "speed"])]
    assert (lvv.free == 0).all() and (lvv.ustart == 1).all()
    means = f[(f.op == "~1") & f.lhs.isin(["visual"])]
    assert (means.free == 0).all()


def test_partable_group_equal_labels_and_latent_means():
    pt = build_partable(HS_MODEL, ngroups=2, group_equal=("loadings", "intercepts"),
                        group_partial=("x3~1",))
    f = pt.frame
    g2 = f[f.group == 2]
    assert g2[(g2.op == "=~") & (g2.rhs == "x2")].label.item() == ".p2."
    assert f[(f.group == 1) & (f.op == "=~") & (f.rhs == "x2")].label.item() == ".p2."
    assert g2[(g2.op == "~1") & (g2.lhs == "x3")].label.item() == ""
    assert (g2[(g2.op == "~1") & (g2.lhs == "visual")].free > 0).all()
    f1 = f[f.group == 1]
    assert (f1[(f1.op == "~1") & (f1.lhs == "visual")].free == 0).all()
    m = Model.from_partable(pt)
    assert m.nx == 60 - 6 - 8 + 3     # 60 free, 6 loadings and 8 intercepts equal, 3 means
    with pytest.raises(ValueError, match="group_equal="):
        build_partable(HS_MODEL, ngroups=2, group_equal=("loading",))


def test_c_vector_length_must_match_groups():
    with pytest.raises(ValueError, match="2 values but there are 3 groups"):
        build_partable("f =~ x1 + c(a, b)*x2 + x3", ngroups=3)


# ---------------------------------------------------------------- Jacobian / gradient
def _setup(model, ngroups=1, meanstructure=False, **kw):
    hs = data("HolzingerSwineford1939.csv")
    pt = build_partable(model, ngroups=ngroups, meanstructure=meanstructure, **kw)
    ov = list(pt.ov_names)
    if ngroups == 1:
        blocks = [hs[ov].to_numpy(float)]
    else:
        blocks = [hs.loc[hs.school == s, ov].to_numpy(float) for s in ("Pasteur", "Grant-White")]
    st = SampleStats([GroupStats.from_data(b, ov) for b in blocks])
    m = Model.from_partable(pt, st)
    rng = np.random.default_rng(1)
    x = m.start_x(st) + rng.normal(0, 0.05, m.nx)
    return m, st, x


def _moments(m, x):
    out = []
    for imp in m.implied(x):
        v = imp.sigma[m.vr, m.vc]
        out.append(v if imp.mu is None else np.concatenate([imp.mu, v]))
    return out


STRUCT = HS_MODEL + "\n speed ~ visual + b*textual\n x7 ~~ x8"


@pytest.mark.parametrize("model,kw", [
    (HS_MODEL, {}),
    (HS_MODEL, {"meanstructure": True, "std_lv": True}),
    (STRUCT, {"meanstructure": True}),
    (HS_MODEL, {"ngroups": 2, "group_equal": ("loadings", "intercepts", "residuals")}),
])
def test_delta_matches_finite_differences(model, kw):
    m, st, x = _setup(model, **kw)
    D = m.delta(x)
    h = 1e-6
    for k in range(m.nx):
        e = np.zeros(m.nx)
        e[k] = h
        num = [(a - b) / (2 * h) for a, b in zip(_moments(m, x + e), _moments(m, x - e))]
        for g in range(m.ngroups):
            assert_allclose(D[g][:, k], num[g], atol=1e-7, err_msg=f"param {k} group {g}")
    # compact form maps back through K
    Dc = m.delta_compact(x)
    for g in range(m.ngroups):
        assert_allclose(Dc[g] @ m.group_K[g], D[g], atol=1e-14)
    assert D[0].shape == (m.nstat(), m.nx)


def test_vech_order_is_lavaans():
    r, c = vech_indices(3)
    assert list(zip(r, c)) == [(0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (2, 2)]


@pytest.mark.parametrize("model,kw", [(STRUCT, {"meanstructure": True}),
                                      (HS_MODEL, {"ngroups": 2, "group_equal": ("loadings",)})])
def test_gradient_and_information(model, kw):
    m, st, x = _setup(model, **kw)
    obj = MLObjective(m, st)
    g = obj.gradient(x)
    h = 1e-6
    num = np.array([(obj.value(x + h * e) - obj.value(x - h * e)) / (2 * h) for e in np.eye(m.nx)])
    assert_allclose(g, num, rtol=1e-5, atol=1e-7)
    g2, info = obj.gradient_and_information(x)
    assert_allclose(g2, g, atol=1e-13)
    assert_allclose(info, expected_information(m, x, st), atol=1e-12)
    # at the optimum, the observed information approaches the expected one only when the
    # model fits; it must be symmetric and the optimiser must reach a zero gradient
    res = optimize(obj, x)
    assert res.converged and res.grad_max < 1e-9
    H = hessian_information(obj, res.x)
    assert_allclose(H, H.T, atol=1e-12)
    # analytic check of the Hessian: differences of the objective itself
    k = 0
    e = np.zeros(m.nx)
    e[k] = 1e-4
    num = (obj.value(res.x + e) - 2 * obj.value(res.x) + obj.value(res.x - e)) / 1e-8
    assert_allclose(2 * H[k, k], num, rtol=1e-4)


def test_optimizer_is_generic():
    """Any object with value/gradient/expected_information can be optimised."""
    class Quad:
        A = np.array([[2.0, 0.3], [0.3, 1.0]])

        def value(self, x):
            return float((x - 1) @ self.A @ (x - 1))

        def gradient(self, x):
            return 2 * self.A @ (x - 1)

        def expected_information(self, x):
            return self.A

    r = optimize(Quad(), np.zeros(2))
    assert r.converged and r.iterations <= 2
    assert_allclose(r.x, [1, 1])


# ---------------------------------------------------------------- options and warnings
def test_bad_options_give_clear_errors():
    hs = data("HolzingerSwineford1939.csv")
    with pytest.raises(ValueError, match=r"estimator= must be one of 'ML', 'MLR', 'WLSMV', 'ULSMV'; got 'mlr'\."):
        cfa(HS_MODEL, hs, estimator="mlr")
    with pytest.raises(ValueError, match="likelihood="):
        cfa(HS_MODEL, hs, likelihood="foo")
    with pytest.raises(ValueError, match="needs ordered="):   # WLSMV is for ordered items
        cfa(HS_MODEL, hs, estimator="WLSMV")
    with pytest.raises(NotImplementedError, match="ordered"):
        cfa(HS_MODEL, hs, ordered=["x1"])
    with pytest.raises(ValueError, match=r"\['x99'\]"):
        cfa("f =~ x1 + x2 + x99", hs)
    with pytest.raises(ValueError, match="group="):
        cfa(HS_MODEL, hs, group="nope")


def test_heywood_case_is_reported():
    rng = np.random.default_rng(3)
    n = 200
    f = rng.normal(size=n)
    d = pd.DataFrame({"a": f + 0.05 * rng.normal(size=n), "b": f + 0.05 * rng.normal(size=n),
                      "c": 0.3 * f + rng.normal(size=n)})
    d["a"] = d["b"] + 0.01 * rng.normal(size=n)  # a and b nearly identical -> negative residual
    with pytest.warns(UserWarning):
        fit = cfa("f =~ a + b + c", d)
    assert any("negative" in w for w in fit.warnings)
    assert "negative" in fit.summary().as_text()


def test_not_identified_model_is_refused():
    hs = data("HolzingerSwineford1939.csv")
    with pytest.warns(UserWarning), pytest.raises(
            ValueError, match=r"the model is not identified: df = -1 \(7 free parameters"):
        cfa("f =~ NA*x1 + x2 + x3", hs)     # scale not set: 7 parameters for 6 moments
    with pytest.warns(UserWarning), pytest.raises(
            ValueError, match="the model is not identified: the information matrix is singular"):
        cfa("f =~ NA*x1 + x2 + x3 + x4", hs)  # df = 1, but the factor has no scale


def test_small_groups_and_constant_variables_are_reported():
    hs = data("HolzingerSwineford1939.csv").iloc[:8].copy()
    for est in ("ML", "MLR"):          # n <= p: S is singular, which ML cannot fit (lavaan stops)
        with pytest.raises(ValueError, match=r"data= the sample covariance matrix is not "
                                             r"positive definite \(smallest eigenvalue .*; n = 8 "
                                             r"rows for p = 9 variables\)"):
            cfa(HS_MODEL, hs, estimator=est)
    hs["x3"] = 1.0                     # a constant variable is refused by the data step (lavaan)
    with pytest.raises(ValueError, match=r"data= variable\(s\) \['x3'\] are constant"):
        cfa(HS_MODEL, hs)


def test_nonconvergence_is_reported():
    from instrument.sem.ml_fit import fit_partable
    hs = data("HolzingerSwineford1939.csv")
    pt = build_partable(HS_MODEL)
    st = SampleStats([GroupStats.from_data(hs[list(pt.ov_names)].to_numpy(float), pt.ov_names)])
    with pytest.warns(UserWarning, match="did not converge"):
        fit = fit_partable(pt, st, max_iter=2)
    assert not fit.converged and "did not converge" in fit.summary().as_text()


# ---------------------------------------------------------------- results
def test_result_round_trip_and_summary():
    hs = data("HolzingerSwineford1939.csv")
    fit = quiet(cfa, HS_MODEL, hs, group="school", group_equal=("loadings",))
    d = fit.to_dict()
    text = dumps(d)
    back = CFAResult.from_dict(json.loads(text))
    assert back == fit
    assert dumps(back.to_dict()) == text
    assert_allclose(back.modindices()["mi"], fit.modindices()["mi"], rtol=1e-12)
    s = fit.summary()
    txt = s.as_text()
    assert "chisq" in txt and "Latent Variables [Pasteur]" in txt and "(.p2.)" in txt
    assert s.as_html().startswith("<table") and "|" in s.as_markdown()
    assert set(fit.fit_measures) <= set(FIT_MEASURE_NAMES)
    assert list(fit.estimates.columns) == ["lhs", "op", "rhs", "group", "label", "est", "se", "z",
                                           "pvalue", "ci.lower", "ci.upper", "std.lv", "std.all"]
    with pytest.raises(ValueError, match="unknown fit measure"):
        fit.fitmeasures(["cfi", "CFI"])
    assert fit.fitmeasures("cfi") == {"cfi": fit.fit_measures["cfi"]}
    with pytest.raises(ValueError):
        check_names(["gfi.bogus"])


def test_same_input_same_bytes():
    hs = data("HolzingerSwineford1939.csv")
    a = quiet(cfa, HS_MODEL, hs)
    b = quiet(cfa, HS_MODEL, hs)
    assert dumps(a.to_dict()) == dumps(b.to_dict())
    back = CFAResult.from_dict(json.loads(dumps(a.to_dict())))
    assert back == a and back.implied[0]["mean"] is None
    assert_allclose(back.residuals("standardized")["cov"].to_numpy(),
                    a.residuals("standardized")["cov"].to_numpy(), equal_nan=True)
    assert a.meta.data_hash and a.meta.options["likelihood"] == "normal"


# ---------------------------------------------------------------- CLI
def test_cli_cfa(tmp_path):
    from instrument.cli import main
    model = tmp_path / "hs.lav"
    model.write_text(HS_MODEL)
    out = tmp_path / "fit.json"
    res = CliRunner().invoke(main, ["cfa", str(model), str(FIX / "HolzingerSwineford1939.csv"),
                                    "--group", "school", "--equal", "loadings,intercepts",
                                    "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "chisq" in res.output
    d = json.loads(out.read_text())
    assert_allclose(d["fit_measures"]["chisq"], ref("b_hs_invariance.json")["ML"]["fit"]["scalar"]["chisq"],
                    rtol=RTOL_CHISQ)
    res = CliRunner().invoke(main, ["cfa", "f =~ x1 + + x2", str(FIX / "HolzingerSwineford1939.csv")])
    assert res.exit_code != 0 and "line 1" in res.output


def test_explicit_equality_constraint_equals_shared_label():
    hs = data("HolzingerSwineford1939.csv")
    a = quiet(cfa, "visual =~ x1 + a*x2 + b*x3\n a == b\n textual =~ x4 + x5 + x6", hs)
    b = quiet(cfa, "visual =~ x1 + a*x2 + a*x3\n textual =~ x4 + x5 + x6", hs)
    assert a.fit_measures["npar"] == b.fit_measures["npar"] == 12
    assert_allclose(a.fit_measures["chisq"], b.fit_measures["chisq"], rtol=1e-10)
    assert_allclose(a.estimates["se"], b.estimates["se"], rtol=1e-8)


def test_user_intercepts_switch_on_meanstructure_and_thresholds_parse():
    pt = build_partable("f =~ x1 + x2 + x3\n x1 ~ 1")
    assert pt.meanstructure and (pt.frame.op == "~1").sum() == 4
    pt = build_partable("f =~ y1 + y2 + y3\n y1 | t1 + t2", ordered=("y1",))
    th = pt.frame[pt.frame.op == "|"]
    assert list(th.rhs) == ["t1", "t2"] and (th.free > 0).all()
    assert not ((pt.frame.op == "~~") & (pt.frame.lhs == "y1")).any()
    with pytest.raises(NotImplementedError, match="thresholds"):
        cfa("f =~ x1 + x2 + x3\n x1 | t1", data("HolzingerSwineford1939.csv"))


def test_factor_scores_multigroup_match_single_group_fits():
    """Configural groups are independent: group-wise scores equal those of a one-group fit."""
    hs = data("HolzingerSwineford1939.csv")
    conf = quiet(cfa, HS_MODEL, hs, group="school")
    for lab in ("Pasteur", "Grant-White"):
        sub = hs[hs.school == lab]
        one = quiet(cfa, HS_MODEL, sub, meanstructure=True)
        for method in ("regression", "Bartlett"):
            a = conf.factor_scores(hs, method=method).loc[sub.index]
            b = one.factor_scores(sub, method=method)
            assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="method="):
        conf.factor_scores(hs, method="bartlett")


def test_listwise_deletion_is_noted():
    hs = data("HolzingerSwineford1939.csv").copy()
    hs.loc[[0, 5], "x2"] = np.nan
    fit = quiet(cfa, HS_MODEL, hs)
    assert fit.fit_measures["ntotal"] == 299 and fit.meta.options["nobs_dropped_listwise"] == 2
    assert fit.summary().as_text().count("2 of 301 rows (1%) have a missing value") == 1


@pytest.mark.parametrize("model,kw", [
    (STRUCT, {"meanstructure": True}),
    (HS_MODEL + "\n g =~ visual + textual + speed", {}),
    (HS_MODEL, {"ngroups": 2, "group_equal": ("loadings", "intercepts")}),
])
def test_factored_weight_equals_generic(model, kw):
    from instrument.sem.estimators.ml import MLObjective, factored_information, weighted_delta
    m, st, x = _setup(model, **kw)
    dmu = m.delta_mean(x) if m.meanstructure else [None] * len(m.group_K)
    for Dc, (fa, fb), imp, Dm in zip(m.delta_compact(x), m.delta_factors(x), m.implied(x), dmu):
        # the factors reproduce Delta ...
        dS = np.einsum("it,jt->tij", fa, fb)
        dS = dS + dS.transpose(0, 2, 1)
        off = m.p if m.meanstructure else 0
        assert_allclose(dS[:, m.vr, m.vc].T, Dc[off:], atol=1e-12)
        if Dm is not None:
            assert_allclose(Dm, Dc[:off], atol=1e-15)
        # ... and the information Delta' W Delta
        assert_allclose(factored_information(np.linalg.inv(imp.sigma), fa, fb, Dm),
                        Dc.T @ weighted_delta(m, imp.sigma, Dc), rtol=1e-12, atol=1e-12)
    # the factored gradient is Delta' dF/dm
    obj = MLObjective(m, st)
    g, _ = obj.gradient_and_information(x)
    assert_allclose(g, obj.gradient(x), rtol=1e-10, atol=1e-12)


def test_partable_round_trip():
    from instrument.sem.partable import ParTable
    pt = build_partable(HS_MODEL, ngroups=2, group_equal=("loadings",), group_labels=("a", "b"))
    back = ParTable.from_dict(json.loads(dumps(pt.to_dict())))
    pd.testing.assert_frame_equal(back.frame, pt.frame, check_dtype=False)
    assert back.group_labels == ("a", "b") and back.meanstructure and back.ov_names == pt.ov_names
    assert Model.from_partable(back).nx == Model.from_partable(pt).nx
