"""Policy-level evidence: variance components vs lme4, rollups, band accuracy, convergence, change."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument import policy, rules

FIX = Path(__file__).parent / "fixtures" / "policy"
RTOL_VC = 1e-4  # REML optimum: statsmodels lbfgs vs lme4 bobyqa agree to ~3e-5 relative


class TestVarianceComponentsAgainstLme4:
    @classmethod
    def setup_class(cls):
        cls.ours = policy.variance_components(pd.read_csv(FIX / "threelevel.csv"), "y")
        cls.ref = json.loads((FIX / "threelevel_lme4.json").read_text())

    @pytest.mark.parametrize("key", ["tau_district", "tau_school", "sigma2"])
    def test_component(self, key):
        assert_allclose(getattr(self.ours, key), self.ref[key], rtol=RTOL_VC)

    def test_district_reliability_formula(self):
        v = self.ours
        m, k = 8, 20
        expected = v.tau_district / (v.tau_district + v.tau_school / m + v.sigma2 / (m * k))
        assert_allclose(v.district_reliability(m, k), expected, rtol=1e-12)
        assert v.district_reliability(2 * m, k) > v.district_reliability(m, k)

    def test_min_schools_reaches_target(self):
        m = self.ours.min_schools(rules.SCHOOL_MEAN_RELIABILITY, 20)
        assert m is not None
        assert self.ours.district_reliability(m, 20) >= 0.70 > self.ours.district_reliability(m - 1, 20)

    def test_roundtrip(self):
        d = json.loads(json.dumps(self.ours.to_dict()))
        assert policy.VarianceComponents.from_dict(d) == self.ours

    def test_recovers_truth(self):
        # true components .10, .20, 1.00 (make_threelevel.py); 30 districts give a rough tau_district
        assert abs(self.ours.sigma2 - 1.0) < 0.05
        assert abs(self.ours.tau_school - 0.20) < 0.06
        assert abs(self.ours.tau_district - 0.10) < 0.06


def test_variance_components_rejects_schools_in_two_districts():
    d = pd.DataFrame({"y": [1.0, 2, 3, 4], "school_id": ["a", "a", "b", "b"],
                      "district_id": ["x", "y", "x", "x"]})
    with pytest.raises(ValueError, match="more than one district"):
        policy.variance_components(d, "y")


def _scores(n_schools=12, seed=0, districts=("d1", "d2", "d3")):
    rng = np.random.default_rng(seed)
    mean = rng.normal(3.0, 0.4, n_schools)
    se = rng.uniform(0.05, 0.15, n_schools)
    return pd.DataFrame({
        "school_id": [f"s{i}" for i in range(n_schools)],
        "district_id": [districts[i % len(districts)] for i in range(n_schools)],
        "form": "teacher", "construct": "overall", "n": rng.integers(8, 30, n_schools),
        "mean": mean, "se": se, "reliability": 0.8,
        "score": 50 + 20 * (mean - 3.0) / 0.4, "suppressed": False, "suppression_reason": ""})


class TestRollup:
    def test_weighted_mean_and_se_by_hand(self):
        s = _scores()
        out = policy.rollup(s, level="district")
        g = s[s["district_id"] == "d1"]
        se_score = g["se"] * 20 / 0.4  # the 1-99 scale has 20 points per 0.4 raw units here
        row = out[out["unit"] == "d1"].iloc[0]
        assert_allclose(row["score"], g["score"].mean(), rtol=1e-12)
        assert_allclose(row["se"], np.sqrt(np.sum(se_score ** 2)) / len(g), rtol=1e-9)
        assert row["n_schools"] == len(g)

    def test_weights_from_outcomes(self):
        s = _scores()
        outc = pd.DataFrame({"school_id": s["school_id"], "enrollment": np.arange(1, 13) * 100})
        out = policy.rollup(s, outc, level="state", weight="enrollment")
        w = outc["enrollment"].to_numpy(float)
        assert_allclose(out["score"].iloc[0], np.sum(w * s["score"]) / w.sum(), rtol=1e-12)

    def test_suppressed_schools_do_not_count_and_small_districts_are_suppressed(self):
        s = _scores()
        s.loc[s["district_id"] == "d2", "suppressed"] = True
        s.loc[s["school_id"] == "s0", "suppressed"] = True   # d1 keeps 3 of 4 schools
        s.loc[s["suppressed"], ["score", "mean", "se"]] = np.nan
        out = policy.rollup(s, level="district").set_index("unit")
        assert out.loc["d1", "n_schools"] == 3 and not out.loc["d1", "suppressed"]
        assert out.loc["d2", "suppressed"] and np.isnan(out.loc["d2", "score"])
        assert "reported schools" in out.loc["d2", "suppression_reason"]

    def test_privacy_gate_on_respondents(self):
        s = _scores()
        s["n"] = 2  # 4 schools x 2 respondents < 10
        out = policy.rollup(s, level="district")
        assert out["suppressed"].all() and out["score"].isna().all()
        assert out["suppression_reason"].str.contains("respondents").all()

    def test_equity_gap_matches_welch(self):
        s = _scores(n_schools=40, seed=3)
        outc = pd.DataFrame({"school_id": s["school_id"], "poverty": np.linspace(0.05, 0.95, 40)})
        gaps = policy.equity_gaps(s, outc, by="poverty")
        gap = gaps[gaps["subgroup"].str.startswith("gap")].iloc[0]
        q1, q4 = s["score"].iloc[:10], s["score"].iloc[30:]
        assert_allclose(gap["score"], q4.mean() - q1.mean(), rtol=1e-12)
        assert gap["ci.lower"] < gap["score"] < gap["ci.upper"]


class TestClassificationAccuracy:
    def test_probabilities_sum_to_one(self):
        p = policy.band_probabilities(np.array([10.0, 50, 79.9]), np.array([5.0, 5, 5]))
        assert_allclose(p.sum(axis=1), 1.0)

    def test_matches_direct_simulation_of_band_assignment(self):
        # True scores and errors are drawn; the observed band is compared with the true band.
        # Rudner's expected accuracy, computed from observed scores and SEs only, must agree
        # with the realised share of correct assignments.
        rng = np.random.default_rng(11)
        n = 40000
        true = rng.normal(50, 20, n)
        se = rng.uniform(3, 9, n)
        obs = true + rng.normal(0, se)
        obs2 = true + rng.normal(0, se)  # a parallel measurement
        realised = np.mean(policy.band_of(obs) == policy.band_of(true))
        realised_c = np.mean(policy.band_of(obs) == policy.band_of(obs2))
        for method in ("bayes", "rudner"):
            res = policy.classification_accuracy(obs, se, method=method)
            assert abs(res.overall["accuracy"] - realised) < 0.015, method
            assert abs(res.overall["consistency"] - realised_c) < 0.015, method
        # per band, only the posterior (bayes) version is right in the extreme bands
        res = policy.classification_accuracy(obs, se)
        band_obs, band_true = policy.band_of(obs), policy.band_of(true)
        for k, row in res.by_band.iterrows():
            m = band_obs == k
            assert abs(row["accuracy"] - np.mean(band_true[m] == k)) < 0.02, row["band"]

    def test_flag_accuracy(self):
        rng = np.random.default_rng(5)
        true = rng.normal(50, 20, 30000)
        se = np.full(true.size, 6.0)
        obs = true + rng.normal(0, se)
        flagged = obs >= 75
        realised = np.mean(true[flagged] < 75)
        res = policy.flag_accuracy(obs, se, 75)
        assert abs(res["false_flag_rate"] - realised) < 0.02
        # Rudner's version ignores regression to the mean and understates false flags
        assert policy.flag_accuracy(obs, se, 75, method="rudner")["false_flag_rate"] < realised - 0.05

    def test_bad_se_rejected(self):
        with pytest.raises(ValueError, match="se must be positive"):
            policy.classification_accuracy(np.array([1.0]), np.array([np.nan]))

    def test_roundtrip(self):
        res = policy.classification_accuracy(np.array([10.0, 45, 90]), np.array([4.0, 4, 4]))
        back = policy.ClassificationAccuracy.from_dict(json.loads(json.dumps(res.to_dict())))
        assert back.overall == res.overall
        pd.testing.assert_frame_equal(back.by_band, res.by_band, check_dtype=False)
        assert "accuracy" in res.summary().as_text()


def test_convergence_recovers_disattenuated_correlation():
    rng = np.random.default_rng(2)
    n, rho, rel = 400, 0.6, 0.7
    t = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
    err_sd = np.sqrt(1 / rel - 1)  # reliability = 1 / (1 + err var)
    obs = t + rng.normal(0, err_sd, (n, 2))
    rows = []
    for j, form in enumerate(("teacher", "family")):
        rows.append(pd.DataFrame({"school_id": np.arange(n), "form": form, "construct": "overall",
                                  "mean": obs[:, j], "reliability": rel, "suppressed": False}))
    out = policy.convergence(pd.concat(rows)).iloc[0]
    assert out["n_schools"] == n
    assert abs(out["r"] - rho * rel) < 0.08
    assert abs(out["r_corrected"] - rho) < 0.08
    assert out["ci.lower"] < out["r"] < out["ci.upper"]


class TestChange:
    @classmethod
    def setup_class(cls):
        rng = np.random.default_rng(9)
        n = 3000
        level = rng.normal(50, 15, n)
        true_change = rng.normal(0, 4, n)
        true_change[:100] += 25   # planted improvers
        se = np.full(n, 3.0)
        frames = []
        for year, true in ((2025, level), (2026, level + true_change)):
            obs = true + rng.normal(0, se)
            frames.append(pd.DataFrame({"school_id": np.arange(n), "year": year, "form": "teacher",
                                        "construct": "overall", "n": 20, "score": obs,
                                        "score_se": se, "mean": obs, "se": se,
                                        "suppressed": False}))
        cls.var_true = np.var(true_change, ddof=1)
        cls.res = policy.change(pd.concat(frames))

    def test_reliability_of_change(self):
        row = self.res.summary_frame.iloc[0]
        expected = self.var_true / (self.var_true + 2 * 3.0 ** 2)
        assert abs(row["reliability_change"] - expected) < 0.03
        assert_allclose(row["error_var"], 18.0)

    def test_planted_improvers_detected(self):
        from scipy import stats
        flagged = self.res.by_school["beyond_error"].to_numpy()
        assert flagged[:100].mean() > 0.95      # 25 points vs SE 4.2: nearly all detected
        # others: observed change ~ N(0, 16 + 18); flagged when |change| >= 1.96 * sqrt(18)
        expected = 2 * stats.norm.sf(1.96 * np.sqrt(18) / np.sqrt(16 + 18))
        assert abs(flagged[100:].mean() - expected) < 0.025

    def test_needs_two_years(self):
        s = _scores().assign(year=2025)
        with pytest.raises(ValueError, match="at least two"):
            policy.change(s)

    def test_roundtrip(self):
        back = policy.ChangeResult.from_dict(json.loads(json.dumps(self.res.to_dict())))
        assert back.years == self.res.years
        assert "Jacobson" in self.res.summary().as_text()


def test_cli_rollup_and_change(tmp_path):
    from click.testing import CliRunner

    from instrument.cli import main

    s = _scores(n_schools=12)
    both = pd.concat([s.assign(year=2025), s.assign(year=2026, score=s["score"] + 5)])
    path = tmp_path / "scores.csv"
    both.to_csv(path, index=False)
    out = tmp_path / "rollup.csv"
    res = CliRunner().invoke(main, ["rollup", str(path), "--level", "state", "--out", str(out)])
    assert res.exit_code == 0, res.output
    roll = pd.read_csv(out)
    assert list(roll["year"]) == [2025, 2026]            # a panel is rolled up per year
    assert (roll["n_schools"] == 12).all()
    res = CliRunner().invoke(main, ["change", str(path)])
    assert res.exit_code == 0, res.output
    assert "School change 2025 to 2026" in res.output
    bad = CliRunner().invoke(main, ["rollup", str(tmp_path / "nope.json")])
    assert bad.exit_code != 0
