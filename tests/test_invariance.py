"""The invariance ladder against lavaan 0.6-14 (refs cases b, e, h) and on simulated DIF data."""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.invariance import InvarianceResult, invariance, score_test_equality

FIX = Path(__file__).parent / "fixtures" / "invariance"
RTOL_CHISQ = 1e-6   # shared/refs/README.md, "Suggested tolerances": chi-square based
ATOL_EST = 1e-5     # estimates and standardized values
RTOL_SE = 1e-4      # standard errors
RTOL_SCORE = 1e-5   # score tests inherit the estimates' convergence error (~1e-6 relative)
ATOL_SCORE = 1e-4   # ... which for X2 near 1 is ~2e-5 absolute (x9~1: 1.497885 vs 1.497903)
ATOL_SRMR = 1e-6    # SRMR is a function of the estimates (atol 1e-5), not of chi-square
FIT_KEYS = ("chisq", "df", "cfi", "tli", "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "srmr",
            "aic", "bic")

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
BFI_MODEL = "\n".join(f"{f} =~ " + " + ".join(f"{f}{i}" for i in range(1, 6)) for f in "ACENO")
BFI_ITEMS = [f"{f}{i}" for f in "ACENO" for i in range(1, 6)]


def _hs():
    return pd.read_csv(FIX / "HolzingerSwineford1939.csv")


class CheckLadder:
    """Subclasses set ``ours`` (InvarianceResult), ``ref`` (lavaan's block) and ``steps``."""

    steps: tuple
    ours: InvarianceResult
    ref: dict

    @pytest.mark.parametrize("key", FIT_KEYS)
    def test_fit_measures(self, key):
        for step in self.steps:
            row = self.ours.table.set_index("step").loc[step]
            assert_allclose(row[key], self.ref["fit"][step][key], rtol=RTOL_CHISQ,
                            atol=ATOL_SRMR if key == "srmr" else 0, err_msg=f"{step} {key}")

    def test_lrt_table(self):
        ref = pd.DataFrame(self.ref["lrt_successive"])
        ours = self.ours.lrt
        assert list(ours["model"]) == list(ref["model"])
        for col in ("Df", "Chisq", "Chisq diff", "Df diff", "Pr(>Chisq)", "AIC", "BIC"):
            assert_allclose(ours[col].to_numpy(float), ref[col].to_numpy(float), rtol=RTOL_CHISQ,
                            err_msg=col)
        if "RMSEA" in ref:
            assert_allclose(ours["RMSEA"].to_numpy(float), ref["RMSEA"].to_numpy(float),
                            rtol=RTOL_CHISQ)

    def test_deltas(self):
        t = self.ours.table.set_index("step")
        for d in self.ref["delta"]:
            if d["to"] not in t.index or d["from"] not in t.index:
                continue
            for k in ("cfi", "tli", "rmsea", "srmr"):
                assert_allclose(t.loc[d["to"], k] - t.loc[d["from"], k], d[k], atol=ATOL_SRMR)

    def test_group_chisq_adds_up(self):
        for step in self.steps:
            total = self.ours.group_chisq.query("step == @step")["chisq"].sum()
            assert_allclose(total, self.ours.table.set_index("step").loc[step, "chisq"], rtol=1e-10)

    def test_latent_means_scalar(self):
        ref = [r for r in self.ref["latent_means_scalar_model"] if r["group"] == 2]
        ours = self.ours.latent_means("scalar").set_index("factor")
        for r in ref:
            assert_allclose(ours.loc[r["lhs"], "mean"], r["est"], atol=ATOL_EST)
            assert_allclose(ours.loc[r["lhs"], "se"], r["se"], rtol=RTOL_SE)


class TestHSLadder(CheckLadder):
    steps = ("configural", "metric", "scalar", "strict", "means")

    @classmethod
    def setup_class(cls):
        ref = json.loads((FIX / "b_hs_invariance.json").read_text())
        cls.ref = ref["ML"]
        cls.ours = invariance(HS_MODEL, _hs(), group="school", steps=cls.steps)

    def test_groups_in_order_of_appearance(self):
        assert self.ours.group_labels == ("Pasteur", "Grant-White")

    def test_verdicts(self):
        holds = dict(zip(self.ours.table["step"], self.ours.table["holds"]))
        assert holds["metric"] and not holds["scalar"]
        assert "Chen" in self.ours.table.set_index("step").loc["scalar", "verdict"]

    def test_roundtrip_and_summary(self):
        back = InvarianceResult.from_dict(json.loads(json.dumps(self.ours.to_dict())))
        pd.testing.assert_frame_equal(back.table, self.ours.table, check_dtype=False)
        assert "Measurement invariance ladder" in self.ours.summary().as_text()


class TestHSPartialAndScoreTests:
    @classmethod
    def setup_class(cls):
        cls.ref = json.loads((FIX / "b_hs_invariance.json").read_text())["ML"]
        cls.score_ref = json.loads((FIX / "h_extras_score_test.json").read_text())[
            "score_test_scalar_invariance"]
        cls.ladder = invariance(HS_MODEL, _hs(), group="school",
                                steps=("configural", "metric", "scalar"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls.partial = cls.ladder.partial("scalar")

    def test_total_score_test(self):
        t = score_test_equality(self.ladder.fits["scalar"])
        total = self.score_ref["total"][0]
        assert t.attrs["total"]["df"] == total["df"]
        assert_allclose(t.attrs["total"]["X2"], total["X2"], rtol=RTOL_SCORE)

    def test_univariate_score_tests(self):
        t = score_test_equality(self.ladder.fits["scalar"]).set_index(["lhs", "rhs"])
        for r in self.score_ref["univariate_sorted"]:
            assert_allclose(t.loc[(r["lhs"], r["rhs"]), "X2"], r["X2"], rtol=RTOL_SCORE, atol=ATOL_SCORE,
                            err_msg=r["lhs_param"])

    def test_partial_frees_x3_and_x7(self):
        assert list(self.partial.releases["parameter"]) == ["x3~1", "x7~1"]

    def test_partial_model_matches_lavaan(self):
        row = self.partial.table.set_index("step").loc["scalar (partial)"]
        ref = self.ref["fit"]["partial_scalar"]
        for k in ("chisq", "df", "cfi", "tli", "rmsea", "srmr"):
            assert_allclose(row[k], ref[k], rtol=RTOL_CHISQ, atol=ATOL_SRMR if k == "srmr" else 0,
                            err_msg=k)
        lrt = self.ref["lrt_metric_vs_partial_scalar"][1]
        assert_allclose(row["chisq.diff"], lrt["Chisq diff"], rtol=RTOL_CHISQ)
        assert_allclose(row["pvalue.diff"], lrt["Pr(>Chisq)"], rtol=1e-6)
        assert bool(row["holds"])

    def test_partial_estimates_match_lavaan(self):
        ours = self.partial.fits["scalar (partial)"].estimates
        for r in self.ref["parameter_estimates_partial_scalar"]:
            m = ours[(ours["lhs"] == r["lhs"]) & (ours["op"] == r["op"]) & (ours["rhs"] == r["rhs"])
                     & (ours["group"] == r["group"])]
            assert len(m) == 1, r
            assert_allclose(m["est"].iloc[0], r["est"], atol=ATOL_EST)
            if r["se"]:
                assert_allclose(m["se"].iloc[0], r["se"], rtol=RTOL_SE)


@pytest.mark.parametrize("by", ["gender", "education"])
def test_bfi_ladders(by):
    ref = json.loads((FIX / "e_bfi_invariance.json").read_text())[by]
    bfi = pd.read_csv(FIX / "bfi.csv").dropna(subset=BFI_ITEMS)
    if by == "gender":
        bfi["grp"] = np.where(bfi["gender"] == 1, "male", "female")
    else:
        bfi = bfi.dropna(subset=["education"])
        bfi["grp"] = np.where(bfi["education"] >= 4, "degree", "no_degree")
    ours = invariance(BFI_MODEL, bfi, group="grp", group_order=ref["groups"]["labels"])
    t = ours.table.set_index("step")
    for step in ("configural", "metric", "scalar", "strict"):
        for k in ("chisq", "df", "cfi", "tli", "rmsea", "srmr"):
            assert_allclose(t.loc[step, k], ref["fit"][step][k], rtol=RTOL_CHISQ,
                            atol=ATOL_SRMR if k == "srmr" else 0, err_msg=f"{by} {step} {k}")
    lrt = pd.DataFrame(ref["lrt_successive"])
    assert_allclose(ours.lrt["Chisq diff"].to_numpy(float), lrt["Chisq diff"].to_numpy(float),
                    rtol=RTOL_CHISQ)


def simulate_two_languages(n=1000, dif=True, seed=1):
    """Two factors x five items; with ``dif`` the Spanish group has the y3 intercept shifted by .5
    and the y8 loading halved (.75 -> .35). Latent means differ (a true group difference)."""
    rng = np.random.default_rng(seed)
    lam0 = np.array([.8, .7, .75, .65, .7, .8, .7, .75, .65, .7])
    frames = []
    for lang, kappa in (("en", [0, 0]), ("es", [0.2, -0.1])):
        lam, nu = lam0.copy(), np.zeros(10)
        if dif and lang == "es":
            nu[2] += 0.5
            lam[7] = 0.35
        eta = rng.multivariate_normal(kappa, [[1, .4], [.4, 1]], n)
        L = np.zeros((10, 2))
        L[:5, 0], L[5:, 1] = lam[:5], lam[5:]
        y = nu + eta @ L.T + rng.normal(0, np.sqrt(1 - lam0 ** 2), (n, 10))
        df = pd.DataFrame(y, columns=[f"y{i + 1}" for i in range(10)])
        df["language"] = lang
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


SIM_MODEL = "f1 =~ y1 + y2 + y3 + y4 + y5\nf2 =~ y6 + y7 + y8 + y9 + y10"


def test_simulated_dif_is_flagged_and_freed():
    res = invariance(SIM_MODEL, simulate_two_languages(), group="language")
    holds = dict(zip(res.table["step"], res.table["holds"]))
    assert not holds["metric"]          # the y8 loading differs
    part = res.partial()
    assert list(part.releases["parameter"]) == ["f2=~y8", "y3~1"]
    assert list(part.releases["step"]) == ["metric", "scalar"]
    # the fully constrained and the partial model side by side, both against the accepted step
    t = part.table.set_index("step")
    assert list(t.index) == ["configural", "metric", "metric (partial)", "scalar",
                             "scalar (partial)", "strict"]
    assert not t.loc["metric", "holds"] and not t.loc["scalar", "holds"]
    assert t.loc[["metric (partial)", "scalar (partial)", "strict"], "holds"].all()
    assert t.loc["scalar", "compared.with"] == t.loc["scalar (partial)", "compared.with"] \
        == "metric (partial)"
    assert (t.loc[["metric", "scalar"], "dmacs.max"] >= 0.20).all()


def test_fully_invariant_set_frees_nothing():
    res = invariance(SIM_MODEL, simulate_two_languages(dif=False), group="language")
    assert res.table["holds"].iloc[1:].all()
    assert res.partial().releases.empty


class TestErrors:
    def test_small_group(self):
        d = _hs()
        d.loc[d.index[:5], "school"] = "Tiny"
        with pytest.raises(ValueError, match="fewer than 10 respondents"):
            invariance(HS_MODEL, d, group="school")

    def test_constant_item_within_group(self):
        d = _hs()
        d.loc[d["school"] == "Pasteur", "x4"] = 3.0
        with pytest.raises(ValueError, match=r"constant within group 'Pasteur'"):
            invariance(HS_MODEL, d, group="school")

    def test_bad_step_and_rule_set(self):
        with pytest.raises(ValueError, match="steps= must be drawn from"):
            invariance(HS_MODEL, _hs(), group="school", steps=("configural", "weak"))
        with pytest.raises(ValueError, match="rule_set= must be one of"):
            invariance(HS_MODEL, _hs(), group="school", rule_set="hu")
        with pytest.raises(ValueError, match="is not a column"):
            invariance(HS_MODEL, _hs(), group="nope")


def test_cli_invariance(tmp_path):
    from click.testing import CliRunner

    from instrument.cli import main

    out = tmp_path / "inv.json"
    res = CliRunner().invoke(main, ["invariance", HS_MODEL, str(FIX / "HolzingerSwineford1939.csv"),
                                    "--group", "school", "--partial", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "scalar (partial)" in res.output
    back = InvarianceResult.from_dict(json.loads(out.read_text()))
    assert list(back.releases["parameter"]) == ["x3~1", "x7~1"]
    bad = CliRunner().invoke(main, ["invariance", HS_MODEL, str(FIX / "HolzingerSwineford1939.csv"),
                                    "--group", "nope"])
    assert bad.exit_code != 0 and "is not a column" in bad.output


def test_partial_warns_when_too_much_is_freed():
    # HS scalar: 2 of 9 intercept constraints (22%) are released, above Dimitrov's 20%
    ladder = invariance(HS_MODEL, _hs(), group="school", steps=("configural", "metric", "scalar"))
    with pytest.warns(UserWarning, match=r"frees 2 of the 9 constraints of the scalar step"):
        ladder.partial("scalar")


def test_mlr_ladder_uses_satorra_bentler_2001():
    # lavTestLRT's default for MLR fits (refs case b): metric 6.567 on 6 df, scalar 40.838 on 6
    ref = json.loads((FIX / "b_hs_invariance.json").read_text())["MLR"]
    res = invariance(HS_MODEL, _hs(), group="school", estimator="MLR",
                     steps=("configural", "metric", "scalar", "strict", "means"))
    want = pd.DataFrame(ref["lrt_successive_satorra_bentler_2001"])
    # the difference formula magnifies the 1e-6 agreement of the scaling factors (see
    # tests/test_cfa_mlrfiml.py), hence rtol 1e-4 on the scaled differences
    assert_allclose(res.lrt["Chisq diff"].to_numpy(float)[1:],
                    want["Chisq diff"].to_numpy(float)[1:], rtol=1e-4)
    assert res.lrt["RMSEA"].isna().all()          # lavaan gives no RMSEA column for scaled tests
    t = res.table.set_index("step")
    for step in ("configural", "metric", "scalar"):
        assert_allclose(t.loc[step, "cfi.robust"], ref["fit"][step]["cfi.robust"], rtol=1e-6)


def test_cli_invariance_missing_option(tmp_path):
    """--missing reaches every rung: FIML keeps the 145 incomplete rows of hs_mcar8."""
    from click.testing import CliRunner

    from instrument.cli import main

    out = tmp_path / "inv.json"
    data = Path(__file__).parent / "fixtures" / "mlrfiml" / "hs_mcar8.csv"
    res = CliRunner().invoke(main, ["invariance", HS_MODEL, str(data), "--group", "school",
                                    "--steps", "configural,metric", "--missing", "fiml",
                                    "--json", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    fits = d["fits"]
    first = fits[0] if isinstance(fits, list) else next(iter(fits.values()))
    assert first["meta"]["options"]["missing"] == "fiml"
    assert first["fit_measures"]["ntotal"] == 301
