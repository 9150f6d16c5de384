"""Cronbach's alpha and omega against psych 2.2.9 / semTools 0.5-6 (refs cases d and h)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument import alpha, bootstrap_ci, omega, omega_from_estimates, reliability, reverse_items
from instrument.reliability import AlphaResult, alpha_from_matrix, feldt_ci
from instrument.results import dumps

FIX = Path(__file__).parent / "fixtures" / "reliability"
# refs README "Suggested tolerances": by-hand formulas on R's own inputs agree to <= 1e-10 -> 1e-8.
ATOL_FORMULA = 1e-8
# omega from lavaan's printed estimates (15 significant digits) -> same formula tolerance.
ATOL_OMEGA = 1e-8
BFI_REVERSED = ["A1", "C4", "C5", "E1", "E2", "O2", "O5"]

D = json.loads((FIX / "d_bfi_reliability.json").read_text())
BFIR = pd.read_csv(FIX / "bfi_complete25_reversed.csv")
FACTORS = list(D["per_factor"])


class CheckAlpha:
    """Subclasses set ``ours`` (AlphaResult) and ``ref`` (one factor of d_bfi_reliability.json)."""

    ours: AlphaResult
    ref: dict

    def test_raw_alpha(self):
        assert_allclose(self.ours.raw_alpha, self.ref["raw_alpha"], atol=ATOL_FORMULA)

    def test_std_alpha(self):
        assert_allclose(self.ours.std_alpha, self.ref["std_alpha"], atol=ATOL_FORMULA)

    def test_total_row(self):
        t = self.ref["alpha_total"][0]
        for ours, key in [(self.ours.g6, "G6(smc)"), (self.ours.average_r, "average_r"),
                          (self.ours.ase, "ase"), (self.ours.mean, "mean"), (self.ours.sd, "sd")]:
            assert_allclose(ours, t[key], atol=ATOL_FORMULA, err_msg=key)

    def test_feldt_ci(self):
        assert_allclose(self.ours.feldt_ci, [self.ref["feldt_ci95"]["lower"],
                                             self.ref["feldt_ci95"]["upper"]], atol=ATOL_FORMULA)

    def test_duhachek_ci(self):
        assert_allclose(self.ours.duhachek_ci, [self.ref["duhachek_ci95"]["lower"],
                                                self.ref["duhachek_ci95"]["upper"]],
                        atol=ATOL_FORMULA)

    def test_item_stats(self):
        ref = pd.DataFrame(self.ref["item_stats"])
        assert list(self.ours.item_stats["item"]) == list(ref["item"])
        for col in ["n", "raw.r", "std.r", "r.cor", "r.drop", "mean", "sd"]:
            assert_allclose(self.ours.item_stats[col], ref[col], atol=ATOL_FORMULA, err_msg=col)

    def test_r_drop_hand(self):
        assert_allclose(self.ours.item_stats["r.drop"],
                        list(self.ref["r_drop_hand"].values()), atol=ATOL_FORMULA)

    def test_alpha_if_deleted(self):
        ref = pd.DataFrame(self.ref["alpha_if_deleted"])
        for ours, theirs in [("raw_alpha", "raw_alpha"), ("std.alpha", "std.alpha"),
                             ("G6(smc)", "G6.smc."), ("average_r", "average_r"),
                             ("S/N", "S.N"), ("alpha.se", "alpha.se")]:
            assert_allclose(self.ours.alpha_drop[ours], ref[theirs], atol=ATOL_FORMULA,
                            err_msg=ours)


def _make(factor):
    class _T(CheckAlpha):
        @classmethod
        def setup_class(cls):
            cls.ref = D["per_factor"][factor]
            cls.ours = alpha(BFIR[cls.ref["items"]])
    _T.__name__ = f"TestAlphaBfi{factor}"
    return _T


for _f in FACTORS:
    globals()[f"TestAlphaBfi{_f}"] = _make(_f)


@pytest.fixture(scope="module")
def bfi_all_reversed():
    raw = pd.read_csv(FIX / "bfi.csv")
    return reverse_items(raw, BFI_REVERSED, score_range=(1, 6))


@pytest.mark.parametrize("factor", FACTORS)
def test_psych_default_pairwise_on_all_rows(bfi_all_reversed, factor):
    p = D["per_factor"][factor]
    ref = p["psych_default_all_rows_pairwise"]
    a = alpha(bfi_all_reversed[p["items"]])
    assert a.n == ref["n_rows"] == 2800
    assert_allclose([a.raw_alpha, a.std_alpha], [ref["raw_alpha"], ref["std_alpha"]],
                    atol=ATOL_FORMULA)


def test_listwise_equals_alpha_on_complete_rows(bfi_all_reversed):
    items = D["per_factor"]["A"]["items"]
    lw = alpha(bfi_all_reversed[items], use="listwise")
    cc = alpha(bfi_all_reversed[items].dropna())
    assert lw.n == len(bfi_all_reversed[items].dropna()) < 2800
    assert_allclose([lw.raw_alpha, *lw.feldt_ci], [cc.raw_alpha, *cc.feldt_ci], atol=1e-14)
    # the Feldt CI uses the complete-case n (pingouin's listwise CI uses the pre-drop n: wrong)
    assert_allclose(lw.feldt_ci, feldt_ci(lw.raw_alpha, lw.n, 5), atol=1e-14)


def test_reliability_table_recodes_reverse_items():
    raw = BFIR.copy()
    for it in BFI_REVERSED:
        raw[it] = 7 - raw[it]
    scales = {f: D["per_factor"][f]["items"] for f in FACTORS}
    tab = reliability(raw, scales, reverse=BFI_REVERSED)  # observed range 1..6 (psych's rule)
    assert list(tab["construct"]) == FACTORS
    assert_allclose(tab["raw_alpha"], [D["per_factor"][f]["raw_alpha"] for f in FACTORS],
                    atol=ATOL_FORMULA)
    assert_allclose(tab["ci.lower"], [D["per_factor"][f]["feldt_ci95"]["lower"] for f in FACTORS],
                    atol=ATOL_FORMULA)
    # psych keys= on the raw data gives the same alpha
    assert_allclose(tab["raw_alpha"],
                    [D["per_factor"][f]["psych_keys_on_raw_data_raw_alpha"] for f in FACTORS],
                    atol=ATOL_FORMULA)
    # without reverse keying alpha is wrong (A: .44 instead of .72; C, E, O negative)
    wrong = reliability(raw, scales).set_index("construct")["raw_alpha"]
    right = tab.set_index("construct")["raw_alpha"]
    keyed = ["A", "C", "E", "O"]  # N has no reversed item
    assert (wrong[keyed] < right[keyed] - 0.25).all()
    assert wrong["N"] == right["N"]


def test_reverse_items_range_and_errors():
    df = pd.DataFrame({"a": [1.0, 2, 4, np.nan], "b": [2.0, 3, 3, 1]})
    out = reverse_items(df, ["a"], score_range=(1, 4))
    assert_allclose(out["a"], [4, 3, 1, np.nan])
    assert_allclose(out["b"], df["b"])
    with pytest.raises(ValueError, match=r"column 'a', row 2: value 4.0 is outside"):
        reverse_items(df, ["a"], score_range=(1, 3))


@pytest.mark.parametrize("factor", FACTORS)
def test_ordinal_alpha_formula_on_lavaan_polychorics(factor):
    p = D["per_factor"][factor]
    pc = pd.read_csv(FIX / "c_bfi_polychoric.csv", index_col="item")  # raw coding
    keys = np.array([-1.0 if it in BFI_REVERSED else 1.0 for it in p["items"]])
    block = pc.loc[p["items"], p["items"]] * np.outer(keys, keys)  # reversing flips the sign
    # lavCor on the reversed data (case d) vs on the raw data (case c): optimiser-level agreement
    assert_allclose(alpha_from_matrix(block), p["ordinal"]["alpha_from_lavaan_polychoric"],
                    atol=1e-8)
    assert_allclose(alpha_from_matrix(BFIR[p["items"]].corr()), p["std_alpha"], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# omega
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", FACTORS)
def test_omega_bfi_both_variants(factor):
    p = D["per_factor"][factor]
    o = p["omega_cfa"]
    lam = pd.Series(o["loadings"], name=factor)
    theta = pd.Series(o["residual_variances"])
    S_N = BFIR[p["items"]].cov(ddof=0)  # lavaan's sample covariance has divisor N
    assert_allclose(omega(lam, o["factor_variance"], theta, S_N)[factor],
                    o["compRelSEM_obs_var_TRUE"], atol=ATOL_OMEGA)
    assert_allclose(omega(lam, o["factor_variance"], theta)[factor],
                    o["compRelSEM_obs_var_FALSE"], atol=ATOL_OMEGA)
    assert_allclose(omega(lam, o["factor_variance"], theta, S_N, tau_eq=True)[factor],
                    o["compRelSEM_tau_eq_TRUE"], atol=ATOL_OMEGA)
    assert_allclose(o["compRelSEM_tau_eq_TRUE"], p["raw_alpha"], atol=1e-12)


def test_omega_wrong_without_reverse_keying():
    p = D["per_factor"]["A"]
    o = p["omega_cfa"]
    lam = pd.Series(o["loadings"], name="A")
    good = omega(lam, o["factor_variance"], pd.Series(o["residual_variances"]))["A"]
    flipped = lam.copy()
    flipped["A1"] = -flipped["A1"]  # what a CFA on raw coding returns for the reversed item
    bad = omega(flipped, o["factor_variance"], pd.Series(o["residual_variances"]))["A"]
    assert good == pytest.approx(0.7204, abs=1e-4)
    assert bad < good - 0.1


def _hs_parts():
    a = json.loads((FIX / "a_hs_cfa_ml_trimmed.json").read_text())["ml"]
    pe = pd.DataFrame(a["parameter_estimates"])
    items = [f"x{i}" for i in range(1, 10)]
    facs = ["visual", "textual", "speed"]
    L = pd.DataFrame(0.0, index=items, columns=facs)
    P = pd.DataFrame(0.0, index=facs, columns=facs)
    T = pd.DataFrame(0.0, index=items, columns=items)
    for r in pe.itertuples():
        if r.op == "=~":
            L.at[r.rhs, r.lhs] = r.est
        elif r.op == "~~" and r.lhs in facs:
            P.at[r.lhs, r.rhs] = P.at[r.rhs, r.lhs] = r.est
        elif r.op == "~~":
            T.at[r.lhs, r.rhs] = T.at[r.rhs, r.lhs] = r.est
    S = a["sample_cov_N"]
    S = pd.DataFrame(S["values"], index=S["rownames"], columns=S["colnames"])
    Sig = a["implied_cov"]
    Sig = pd.DataFrame(Sig["values"], index=Sig["rownames"], columns=Sig["colnames"])
    return L, P, T, S, Sig


def test_omega_hs_comprelsem():
    h = json.loads((FIX / "h_extras.json").read_text())
    L, P, T, S, Sig = _hs_parts()
    w = omega(L, P, T, S)
    assert_allclose(w[["visual", "textual", "speed"]],
                    [h["compRelSEM_omega"][f] for f in ["visual", "textual", "speed"]],
                    atol=ATOL_OMEGA)
    # model-implied variant equals omega computed with lavaan's implied covariance as "S"
    assert_allclose(omega(L, P, T), omega(L, P, T, Sig), atol=1e-6)


def test_omega_from_lavaan_parameter_table():
    h = json.loads((FIX / "h_extras.json").read_text())
    a = json.loads((FIX / "a_hs_cfa_ml_trimmed.json").read_text())["ml"]
    pe = pd.DataFrame(a["parameter_estimates"])
    L, P, T, S, _ = _hs_parts()
    w = omega_from_estimates(pe, S)
    assert list(w.index) == ["visual", "textual", "speed"]
    assert_allclose(w, [h["compRelSEM_omega"][f] for f in w.index], atol=ATOL_OMEGA)
    assert_allclose(omega_from_estimates(pe), omega(L, P, T), atol=1e-15)
    two = pd.concat([pe.assign(group=1), pe.assign(group=2)])
    with pytest.raises(ValueError, match="pass group="):
        omega_from_estimates(two)
    assert_allclose(omega_from_estimates(two, S, group=2), w, atol=1e-15)


def test_omega_correlated_residuals_enter_implied_denominator():
    L, P, T, S, _ = _hs_parts()
    T2 = T.copy()
    T2.loc["x7", "x8"] = T2.loc["x8", "x7"] = 0.2
    lam = L.loc[["x7", "x8", "x9"], "speed"]
    num = P.at["speed", "speed"] * lam.sum() ** 2
    hand = num / (num + T.loc[["x7", "x8", "x9"], ["x7", "x8", "x9"]].to_numpy().sum() + 2 * 0.2)
    assert_allclose(omega(L, P, T2)["speed"], hand, atol=1e-12)
    # the sample-variance variant does not depend on Theta
    assert_allclose(omega(L, P, T2, S)["speed"], omega(L, P, T, S)["speed"], atol=1e-15)


# ---------------------------------------------------------------------------------------------
# contracts
# ---------------------------------------------------------------------------------------------
def test_alpha_roundtrip_and_summary():
    a = alpha(BFIR[D["per_factor"]["N"]["items"]])
    b = AlphaResult.from_dict(json.loads(dumps(a)))
    assert dumps(a) == dumps(b)
    assert b.raw_alpha == a.raw_alpha
    pd.testing.assert_frame_equal(b.item_stats, a.item_stats)
    txt = a.summary().as_text()
    assert "raw alpha = " in txt and "N5" in txt and "alpha if deleted" in txt


def test_bad_options():
    x = BFIR[["A1", "A2", "A3"]]
    with pytest.raises(ValueError, match="use= must be one of 'pairwise', 'listwise'; got 'all'"):
        alpha(x, use="all")
    with pytest.raises(ValueError, match="level="):
        alpha(x, level=95)
    with pytest.raises(KeyError, match="no column"):
        reliability(BFIR, {"A": ["A1", "ZZ"]})
    with pytest.raises(ValueError, match="in no scale"):
        reliability(BFIR, {"A": ["A1", "A2"]}, reverse=["C4"])
    with pytest.raises(TypeError, match="not numeric"):
        alpha(pd.DataFrame({"a": ["x", "y", "z"], "b": [1, 2, 3]}))


def test_bootstrap_ci_is_seeded_and_covers_estimate():
    x = BFIR[D["per_factor"]["C"]["items"]].iloc[:400]
    stat = lambda d: {"alpha": alpha(d).raw_alpha}  # noqa: E731
    a = bootstrap_ci(x, stat, n_boot=60, seed=11)
    b = bootstrap_ci(x, stat, n_boot=60, seed=11)
    c = bootstrap_ci(x, stat, n_boot=60, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    row = a.iloc[0]
    assert row["ci.lower"] < row["est"] < row["ci.upper"]
    assert row["n_boot"] == 60 and row["n_failed"] == 0
    # the Feldt interval is of the same width order
    lo, hi = feldt_ci(row["est"], len(x), 5)
    assert 0.5 < (row["ci.upper"] - row["ci.lower"]) / (hi - lo) < 2


def test_bootstrap_ci_counts_failed_refits():
    x = BFIR[["A1", "A2", "A3"]].iloc[:50]
    calls = {"n": 0}

    def flaky(d):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("did not converge")
        return alpha(d).raw_alpha

    out = bootstrap_ci(x, flaky, n_boot=30, seed=1)
    assert out.iloc[0]["n_failed"] == 10 and out.iloc[0]["n_boot"] == 20
