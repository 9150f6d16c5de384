"""DWLS information, robust vcov and scaled-shifted test against lavaan 0.6-14, fed with lavaan's
own Delta (``lavInspect(fit, "delta")``) and our sample statistics (fixtures: make_refs.R)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.sem.estimators.dwls import dwls_information, dwls_vcov_robust
from tests.reference.dwls import dwls_baseline, dwls_scaled_shifted
from instrument.sem.polychoric import dwls_fx, sample_stats_ordinal

FIX = Path(__file__).parent / "fixtures" / "polychoric"
REFS = json.loads((FIX / "polychoric_refs.json").read_text())
AC = [f"A{i}" for i in range(1, 6)] + [f"C{i}" for i in range(1, 6)]
BFI_AC = pd.read_csv(FIX / "bfi.csv").dropna(subset=AC)

RTOL_SE = 1e-4      # refs README "Suggested tolerances" (achieved 1.4e-8)
RTOL_VCOV = 1e-6    # with atol 1e-9 max|vcov| for near-zero covariances (6e-12 abs)
RTOL_CHISQ = 1e-6   # achieved 1e-9


class CheckDwls:
    key: str
    kw: dict

    @classmethod
    def setup_class(cls):
        cls.ref = REFS[cls.key]
        cls.rob = cls.ref["robust"]
        cls.stats = sample_stats_ordinal(BFI_AC, ov_names=AC, **cls.kw)
        dl = cls.rob["delta"]
        dl = list(dl.values()) if isinstance(dl, dict) else dl
        assert [d["rownames"] for d in dl] == [list(g.wls_obs_names) for g in cls.stats.ordinal]
        cls.delta = [np.array(d["values"], float) for d in dl]
        est = [np.array([g["wls_est"][k] for k in g["wls_obs_names"]]) for g in cls.ref["groups"]]
        cls.chisq = dwls_fx(cls.stats, est)["chisq"]

    def test_chisq(self):
        assert_allclose(self.chisq, self.rob["chisq"], rtol=RTOL_CHISQ)

    def test_se(self):
        se = np.sqrt(np.diag(dwls_vcov_robust(self.delta, self.stats)))
        assert_allclose(se, [p["se"] for p in self.rob["free"]], rtol=RTOL_SE)

    def test_vcov(self):
        ref = np.array(self.rob["vcov"]["values"], float)
        ours = dwls_vcov_robust(self.delta, self.stats)
        assert_allclose(ours, ref, rtol=RTOL_VCOV, atol=1e-9 * np.abs(ref).max())

    def test_scaled_shifted(self):
        out = dwls_scaled_shifted(self.chisq, self.rob["df"], self.delta, self.stats)
        ss = self.rob["scaled_shifted"]
        assert_allclose(out["trace.UGamma"], ss["trace.UGamma"], rtol=RTOL_CHISQ)
        assert_allclose(out["trace.UGamma2"], ss["trace.UGamma2"], rtol=RTOL_CHISQ)
        assert_allclose(out["chisq.scaling.factor"], ss["scaling.factor"], rtol=RTOL_CHISQ)
        assert_allclose(out["chisq.shift.parameters"], ss["shift.parameter"], rtol=RTOL_CHISQ)
        assert_allclose(out["chisq.scaled"], ss["stat"], rtol=RTOL_CHISQ)

    def test_baseline(self):
        out = dwls_baseline(self.stats)
        ref = self.rob["baseline"]
        assert out["baseline.df"] == ref["df"]
        assert_allclose(out["baseline.chisq"], ref["chisq"], rtol=RTOL_CHISQ)
        ss = ref["scaled_shifted"]
        assert_allclose(out["baseline.chisq.scaled"], ss["stat"], rtol=RTOL_CHISQ)
        assert_allclose(out["baseline.chisq.scaling.factor"], ss["scaling.factor"],
                        rtol=RTOL_CHISQ)
        assert_allclose(out["baseline.chisq.shift.parameters"], ss["shift.parameter"],
                        rtol=RTOL_CHISQ)
        assert_allclose(out["trace.UGamma2"], ss["trace.UGamma2"], rtol=RTOL_CHISQ)

    def test_information_is_symmetric_pd(self):
        E = dwls_information(self.delta, self.stats)
        assert_allclose(E, E.T, atol=0)
        assert np.linalg.eigvalsh(E).min() > 0


class TestSingleGroup(CheckDwls):
    key, kw = "ac_cc", {}


class TestTwoGroups(CheckDwls):
    key, kw = "ac_gender", {"group": "gender"}


def test_delta_shape_checked():
    stats = sample_stats_ordinal(BFI_AC, ov_names=AC)
    with pytest.raises(ValueError, match="must have 95 rows"):
        dwls_vcov_robust([np.zeros((10, 3))], stats)
    with pytest.raises(ValueError, match="delta= has 2 groups"):
        dwls_information([np.zeros((95, 3))] * 2, stats)
