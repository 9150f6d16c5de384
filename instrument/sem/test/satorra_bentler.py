"""Chi-square difference tests for nested models: plain LRT and Satorra-Bentler 2001.

Formula-level functions of the models' test statistics, dfs and scaling factors, as lavaan
0.6-14's ``lavTestLRT`` (``lav_test_diff_SatorraBentler2001``). The Satorra-Bentler (2010) test
and a dict-based ``lavTestLRT`` table live in ``tests/reference/lrt.py`` as checks against lavaan.

Notes
-----
Model 1 is the less restricted model (smaller df ``r1``), model 0 the more restricted one.

* plain LRT: ``T = T0 - T1`` on ``m = r0 - r1`` df;
* Satorra-Bentler (2001): ``cd = (r0 c0 - r1 c1) / m``, ``T = (T0 - T1) / cd`` computed from the
  **unscaled** statistics (``c1 = 1`` when ``r1 = 0``); a negative ``cd`` gives NaN and lavaan's
  warning "scaling factor is negative";
* lavaan's ``RMSEA`` column (RMSEA_D; unscaled tests only):
  ``sqrt(G) sqrt(max(dT/(N dm) - 1/N, 0))``.

References
----------
Satorra, A., & Bentler, P. M. (2001). A scaled difference chi-square test statistic for moment
structure analysis. Psychometrika, 66(4), 507-514. https://doi.org/10.1007/BF02296192
Savalei, V., Brace, J. C., & Fouladi, R. T. (2023). We need to change how we compute RMSEA for
nested model comparisons in structural equation modeling. Psychological Methods.
https://doi.org/10.1037/met0000537
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import pandas as pd
from scipy import stats

from instrument.sem.fit.rmsea import rmsea as _rmsea

__all__ = ["DiffTest", "lrt", "satorra_bentler_2001", "rmsea_d"]


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


def rmsea_d(chisq_diff: float, df_diff: int, ntotal: int, *, ngroups: int = 1) -> float:
    """RMSEA of a difference test (lavaan ``lavTestLRT`` column ``RMSEA``, 0.6-13+)."""
    return _rmsea(chisq_diff, df_diff, ntotal, ngroups=ngroups)
