"""Chi-square difference tests for nested models: plain LRT, Satorra-Bentler 2001 and 2010.

Formula-level functions of the models' test statistics, dfs and scaling factors, as lavaan
0.6-14's ``lavTestLRT`` (``lav_test_diff_SatorraBentler2001`` / ``...2010``), plus
`lrt_table`, which builds lavaan's successive-comparison table.

Notes
-----
Model 1 is the less restricted model (smaller df ``r1``), model 0 the more restricted one.

* plain LRT: ``T = T0 - T1`` on ``m = r0 - r1`` df;
* Satorra-Bentler (2001): ``cd = (r0 c0 - r1 c1) / m``, ``T = (T0 - T1) / cd`` computed from the
  **unscaled** statistics (``c1 = 1`` when ``r1 = 0``); a negative ``cd`` gives NaN and lavaan's
  warning "scaling factor is negative";
* Satorra-Bentler (2010): as 2001 but with ``c1`` replaced by ``c10``, the scaling factor of
  model M10 = model 1 evaluated at model 0's estimates (lavaan ``lav_test_diff_m10``), which is
  always non-negative in theory. lavaan checks the information matrix of M10 and warns
  "information matrix of the M10 model is not positive definite" when an eigenvalue is below
  ``-eps^(3/4)`` (it still reports the statistic; the HS MLR ladder triggers this warning).
  `satorra_bentler_2010_c10` computes ``c10`` from M10's ingredients with the Yuan-Bentler
  (Mplus) trace;
* lavaan's ``RMSEA`` column (RMSEA_D; unscaled tests only):
  ``sqrt(G) sqrt(max(dT/(N dm) - 1/N, 0))``.

References
----------
Satorra, A., & Bentler, P. M. (2001). A scaled difference chi-square test statistic for moment
structure analysis. Psychometrika, 66(4), 507-514. https://doi.org/10.1007/BF02296192
Satorra, A., & Bentler, P. M. (2010). Ensuring positiveness of the scaled difference chi-square
test statistic. Psychometrika, 75(2), 243-248. https://doi.org/10.1007/s11336-009-9135-y
Savalei, V., Brace, J. C., & Fouladi, R. T. (2023). We need to change how we compute RMSEA for
nested model comparisons in structural equation modeling. Psychological Methods.
https://doi.org/10.1037/met0000537
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from instrument.sem.fit.rmsea import rmsea as _rmsea

__all__ = ["DiffTest", "lrt", "satorra_bentler_2001", "satorra_bentler_2010",
           "satorra_bentler_2010_c10", "information_is_pd", "rmsea_d", "lrt_table"]

METHODS = ("default", "standard", "satorra.bentler.2001", "satorra.bentler.2010")


@dataclass(frozen=True)
class DiffTest:
    """One nested-model comparison (a row of lavaan's ``lavTestLRT`` table).

    Attributes
    ----------
    chisq_diff : the (scaled) difference statistic (lavaan ``Chisq diff``).
    df_diff : its df (``Df diff``).
    pvalue : upper-tail chi-square p-value (``Pr(>Chisq)``).
    scaling_factor : ``cd`` (NaN for the plain test).
    method : ``"standard"``, ``"satorra.bentler.2001"`` or ``"satorra.bentler.2010"``.
    chisq_diff_unscaled : ``T0 - T1``.
    """

    chisq_diff: float
    df_diff: int
    pvalue: float
    scaling_factor: float
    method: str
    chisq_diff_unscaled: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DiffTest":
        return cls(**d)

    def summary(self):
        from instrument.results import Table
        f = pd.DataFrame([{"Chisq diff": self.chisq_diff, "Df diff": self.df_diff,
                           "Pr(>Chisq)": self.pvalue, "scaling.factor": self.scaling_factor}])
        return Table(f"Chi-square difference test ({self.method})", f, digits=4)


def _check(T1: float, r1: int, T0: float, r0: int) -> int:
    if r0 < r1:
        raise ValueError(f"difference test: model 0 must be the more restricted model (larger df); "
                         f"got df0={r0} < df1={r1}.")
    return int(r0 - r1)


def _p(T: float, m: int) -> float:
    if not (math.isfinite(T)) or m <= 0:
        return float("nan")
    return float(stats.chi2.sf(T, m))


def lrt(T1: float, r1: int, T0: float, r0: int) -> DiffTest:
    """Plain likelihood-ratio (chi-square difference) test ``T0 - T1`` on ``r0 - r1`` df."""
    m = _check(T1, r1, T0, r0)
    d = T0 - T1
    return DiffTest(float(d), m, _p(d, m), float("nan"), "standard", float(d))


def satorra_bentler_2001(T1: float, r1: int, c1: float, T0: float, r0: int,
                         c0: float) -> DiffTest:
    """Satorra-Bentler (2001) scaled difference test from the unscaled statistics.

    Parameters
    ----------
    T1, r1, c1 : unscaled chi-square, df and scaling factor of the less restricted model.
    T0, r0, c0 : the same for the more restricted model.
    """
    m = _check(T1, r1, T0, r0)
    if r1 == 0:
        c1 = 1.0
    d = T0 - T1
    if m == 0:
        return DiffTest(float(d), 0, float("nan"), float("nan"), "satorra.bentler.2001", float(d))
    cd = (r0 * c0 - r1 * c1) / m
    if cd < 0:
        warnings.warn("lavaan WARNING: scaling factor is negative", RuntimeWarning, stacklevel=2)
        cd = float("nan")
    T = d / cd
    return DiffTest(float(T), m, _p(T, m), float(cd), "satorra.bentler.2001", float(d))


def satorra_bentler_2010(T1: float, r1: int, c10: float, T0: float, r0: int, c0: float,
                         *, m10_information: np.ndarray | None = None) -> DiffTest:
    """Satorra-Bentler (2010) scaled difference test, ``cd = (r0 c0 - r1 c10) / m``.

    Parameters
    ----------
    c10 : scaling factor of M10 (model 1 at model 0's estimates), see
        `satorra_bentler_2010_c10`.
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
    from instrument.sem.test.yuan_bentler import yuan_bentler_mplus
    E_inv = np.linalg.pinv(m10_information)
    res = yuan_bentler_mplus(0.0, df1, h1_traces=h1_traces,
                             h1_ndat=[1] * len(h1_traces), information_inv=E_inv,
                             B0_group=m10_B0_group, nobs=nobs)
    return float(res.trace_UGamma / df1)


def rmsea_d(chisq_diff: float, df_diff: int, ntotal: int, *, ngroups: int = 1) -> float:
    """RMSEA of a difference test (lavaan ``lavTestLRT`` column ``RMSEA``, 0.6-13+)."""
    return _rmsea(chisq_diff, df_diff, ntotal, ngroups=ngroups)


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
