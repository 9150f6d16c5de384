"""Satorra-Bentler (2010) scaled difference test and lavaan's ``lavTestLRT`` table from plain
numbers, checked against lavaan in ``tests/test_robust_teststat.py``.

The package's invariance ladder builds its comparison table from fitted results
(`instrument.invariance`); this table restates lavaan's rules (models sorted by df, adjacent pairs
compared, SB2001 for scaled tests) from dicts of statistics, using the package's test formulas.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from instrument.sem.test.satorra_bentler import (DiffTest, _check, _p, lrt, rmsea_d,
                                                  satorra_bentler_2001)
from instrument.sem.test.yuan_bentler import yuan_bentler_mplus

METHODS = ("default", "standard", "satorra.bentler.2001", "satorra.bentler.2010")


def satorra_bentler_2010(T1: float, r1: int, c10: float, T0: float, r0: int, c0: float,
                         *, m10_information: np.ndarray | None = None) -> DiffTest:
    """Satorra-Bentler (2010) scaled difference test, ``cd = (r0 c0 - r1 c10) / m``.

    Parameters
    ----------
    c10 : scaling factor of M10 (model 1 evaluated at model 0's estimates, lavaan
        ``lav_test_diff_m10``), see `satorra_bentler_2010_c10`.
    m10_information : optional unit information matrix of M10; when given and not positive
        definite, lavaan's warning is issued (the statistic is still returned, as lavaan does).
    """
    m = _check(T1, r1, T0, r0)
    if r1 == 0:
        c10 = 1.0
    d = T0 - T1
    if m == 0:
        return DiffTest(float(d), 0, float("nan"), float("nan"), "satorra.bentler.2010", float(d))
    if m10_information is not None and not information_is_pd(m10_information):
        warnings.warn("lavaan WARNING: information matrix of the M10 model is not positive "
                      "definite.", RuntimeWarning, stacklevel=2)
    cd = (r0 * c0 - r1 * c10) / m
    T = d / cd
    return DiffTest(float(T), m, _p(T, m), float(cd), "satorra.bentler.2010", float(d))


def information_is_pd(information: np.ndarray) -> bool:
    """lavaan's check: all eigenvalues >= ``-eps^(3/4)``."""
    ev = np.linalg.eigvalsh(0.5 * (information + information.T))
    return bool(np.all(ev >= -np.finfo(float).eps ** 0.75))


def satorra_bentler_2010_c10(*, h1_traces: Sequence[float], m10_information: np.ndarray,
                             m10_B0_group: Sequence[np.ndarray], nobs: Sequence[int],
                             df1: int) -> float:
    """Scaling factor of M10 (model 1 with model 0's parameter values), Yuan-Bentler Mplus trace.

    ``c10 = [sum_g tr(B1_g A1_g^-1) - sum_g (n_g/N) tr(B0_g^{M10} E_{M10}^-1)] / df1`` where the
    M10 matrices are model 1's observed information and first-order blocks evaluated at the
    parameter vector that reproduces model 0's estimates (build them with
    `instrument.sem.estimators.mlr.observed_information` / `firstorder_information` on model 1's
    Jacobian and implied moments at that point). The unstructured h1 traces are the data's and
    do not depend on the model.
    """
    E_inv = np.linalg.pinv(m10_information)
    res = yuan_bentler_mplus(0.0, df1, h1_traces=h1_traces,
                             h1_ndat=[1] * len(h1_traces), information_inv=E_inv,
                             B0_group=m10_B0_group, nobs=nobs)
    return float(res.trace_UGamma / df1)


def lrt_table(models: Sequence[dict], *, method: str = "default", ntotal: int | None = None,
              ngroups: int = 1, c10: Sequence[float] | None = None) -> pd.DataFrame:
    """lavaan's ``lavTestLRT`` table: models sorted by df, adjacent pairs compared.

    Parameters
    ----------
    models : sequence of dict
        Each with ``name``, ``chisq`` (unscaled), ``df`` and, for scaled tests,
        ``scaling_factor``; optional ``aic``, ``bic``.
    method : {"default", "standard", "satorra.bentler.2001", "satorra.bentler.2010"}
        ``"default"`` is SB2001 when every model has a scaling factor (MLR), else the plain LRT.
    ntotal, ngroups : for the ``RMSEA`` column (only for unscaled tests, as lavaan).
    c10 : for SB2010, the M10 scaling factor of each adjacent pair (in sorted order).

    Returns
    -------
    DataFrame
        Columns ``model Df AIC BIC Chisq "Chisq diff" RMSEA "Df diff" "Pr(>Chisq)"``.
    """
    if method not in METHODS:
        raise ValueError(f"method= must be one of {', '.join(map(repr, METHODS))}; got {method!r}.")
    mods = sorted(models, key=lambda d: d["df"])
    scaled = all(d.get("scaling_factor") is not None for d in mods)
    if method == "default":
        method = "satorra.bentler.2001" if scaled else "standard"
    if method != "standard" and not scaled:
        raise ValueError(f"method={method!r} needs a scaling_factor for every model.")
    if method == "satorra.bentler.2010" and (c10 is None or len(c10) != len(mods) - 1):
        raise ValueError("method='satorra.bentler.2010' needs c10= with one value per pair.")
    rows = []
    for i, d in enumerate(mods):
        row = {"model": d["name"], "Df": d["df"], "AIC": d.get("aic", float("nan")),
               "BIC": d.get("bic", float("nan")), "Chisq": d["chisq"], "Chisq diff": float("nan"),
               "RMSEA": float("nan"), "Df diff": float("nan"), "Pr(>Chisq)": float("nan")}
        if i > 0:
            a = mods[i - 1]
            if method == "standard":
                t = lrt(a["chisq"], a["df"], d["chisq"], d["df"])
                if ntotal is not None:
                    row["RMSEA"] = rmsea_d(t.chisq_diff, t.df_diff, ntotal, ngroups=ngroups)
            elif method == "satorra.bentler.2001":
                t = satorra_bentler_2001(a["chisq"], a["df"], a["scaling_factor"], d["chisq"],
                                         d["df"], d["scaling_factor"])
            else:
                t = satorra_bentler_2010(a["chisq"], a["df"], c10[i - 1], d["chisq"], d["df"],
                                         d["scaling_factor"])
            row.update({"Chisq diff": t.chisq_diff, "Df diff": t.df_diff, "Pr(>Chisq)": t.pvalue})
        rows.append(row)
    return pd.DataFrame(rows)
