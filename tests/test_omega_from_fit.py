"""ω from a fitted CFA (`omega_from_fit`) against semTools compRelSEM (refs case d) and the ω a
fit on the raw (not reverse-keyed) bfi gives: reverse keying must come first."""
import json
from pathlib import Path

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from instrument.sem.cfa import cfa
from instrument.reliability import omega_from_fit

FIX = Path(__file__).parent / "fixtures" / "reliability"
ATOL_OMEGA = 1e-5   # a function of the estimates (atol 1e-5 in shared/refs/README.md)
BFI_MODEL = "\n".join(f"{f} =~ " + " + ".join(f"{f}{i}" for i in range(1, 6)) for f in "ACENO")
REF = json.loads((FIX / "d_bfi_reliability.json").read_text())["per_factor"]


@pytest.fixture(scope="module")
def fit_reversed():
    return cfa(BFI_MODEL, pd.read_csv(FIX / "bfi_complete25_reversed.csv"))


@pytest.mark.parametrize("obs_var,key", [(True, "compRelSEM_obs_var_TRUE"),
                                         (False, "compRelSEM_obs_var_FALSE")])
def test_omega_matches_comprelsem(fit_reversed, obs_var, key):
    ours = omega_from_fit(fit_reversed, obs_var=obs_var)
    for f in "ACENO":
        assert_allclose(ours[f], REF[f]["omega_cfa"][key], atol=ATOL_OMEGA, err_msg=f)


def test_omega_is_wrong_without_reverse_keying():
    raw = pd.read_csv(FIX / "bfi.csv").dropna(subset=[f"{f}{i}" for f in "ACENO" for i in range(1, 6)])
    ours = omega_from_fit(cfa(BFI_MODEL, raw))
    # A1 is the reversed marker of A: the mixed-sign loadings make ω far from the keyed value
    assert abs(ours["A"] - REF["A"]["omega_cfa"]["compRelSEM_obs_var_TRUE"]) > 0.1
