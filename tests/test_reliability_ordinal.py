"""Categorical omega (Green & Yang 2009) and ordinal alpha against refs case d (semTools
compRelSEM on a WLSMV fit; psych polychoric alpha)."""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pytest
from numpy.testing import assert_allclose
from threadpoolctl import threadpool_limits

from instrument.sem.cfa import cfa
from instrument.sem.polychoric import ordinal_alpha
from instrument.reliability_ordinal import omega_categorical

FIX = Path(__file__).parent / "fixtures" / "wlsmv"


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Small dense algebra: BLAS threads only oversubscribe the shared cores."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
ITEMS = [f"{a}{i}" for a in "ACENO" for i in range(1, 6)]
MODEL = "\n".join(f"{a} =~ " + " + ".join(f"{a}{i}" for i in range(1, 6)) for a in "ACENO")
TOL_OMEGA = 1e-4     # the task's tolerance; observed agreement ~4e-7


@lru_cache(maxsize=None)
def ref():
    return json.loads((FIX / "d_bfi_reliability.json").read_text())


@lru_cache(maxsize=None)
def data():
    return pd.read_csv(FIX / "bfi_complete25_reversed.csv")


@lru_cache(maxsize=None)
def fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cfa(MODEL, data(), ordered=ITEMS)


def test_omega_categorical_green_yang():
    om = omega_categorical(fit())
    for f in "ACENO":
        assert_allclose(om[f], ref()["per_factor"][f]["ordinal"]["omega_categorical_green_yang"],
                        atol=TOL_OMEGA, err_msg=f)
    # README table values
    assert [round(om[f], 4) for f in "ACENO"] == [0.7175, 0.7628, 0.7689, 0.8639, 0.5545]


def test_omega_latent_response_scale():
    om = omega_categorical(fit(), ord_scale=False)
    for f in "ACENO":
        assert_allclose(om[f], ref()["per_factor"][f]["ordinal"]["omega_latent_response_scale"],
                        atol=TOL_OMEGA, err_msg=f)


def test_ordinal_alpha_matches_lavaan_polychorics():
    for f in "ACENO":
        a = ordinal_alpha(data()[[f"{f}{i}" for i in range(1, 6)]])
        r = ref()["per_factor"][f]["ordinal"]
        assert_allclose(a, r["alpha_from_lavaan_polychoric"], atol=1e-6)
        assert_allclose(a, r["alpha_from_psych_polychoric"], atol=1e-4)


def test_omega_categorical_needs_wlsmv_fit():
    d = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = cfa("A =~ A1 + A2 + A3 + A4 + A5", d)
    with pytest.raises(ValueError, match="ordered"):
        omega_categorical(ml)
    with pytest.raises(ValueError, match="not factors"):
        omega_categorical(fit(), factors=["Z"])
