"""Distribution functions of the fit measures and tests, evaluated by the special functions that
`scipy.stats` itself evaluates (same values, without the per-call argument handling of
``scipy.stats``' distribution objects, which costs more than the function on scalars).

Each follows its ``scipy.stats`` counterpart at the edges: NaN for invalid parameters, the
support's bound value outside the support.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special, stats
from scipy.special import _ufuncs

__all__ = ["chi2_sf", "chi2_ppf", "ncx2_sf", "ncx2_cdf", "norm_sf", "Z975"]

# what scipy.stats.ncx2.sf evaluates (a private ufunc: fall back to stats when it moves)
_NCX2_SF = getattr(_ufuncs, "_ncx2_sf", None)

Z975 = float(special.ndtri(0.975))   # scipy.stats.norm.ppf(0.975)


def chi2_sf(x: float, df: float) -> float:
    """``scipy.stats.chi2.sf(x, df)``: 1 - P(X <= x) for X ~ chi2(df)."""
    if not df > 0 or math.isnan(x):
        return math.nan
    return 1.0 if x <= 0 else float(special.chdtrc(df, x))


def chi2_ppf(q: float, df: float) -> float:
    """``scipy.stats.chi2.ppf(q, df)`` for 0 < q < 1."""
    if not (df > 0 and 0 < q < 1):
        return float(stats.chi2.ppf(q, df))
    return float(2.0 * special.gammaincinv(df / 2.0, q))


def ncx2_sf(x: float, df: float, nc: float) -> float:
    """``scipy.stats.ncx2.sf(x, df, nc)``."""
    if not (df > 0 and nc >= 0) or math.isnan(x):
        return math.nan
    if x <= 0 or x == math.inf:
        return 1.0 if x <= 0 else 0.0
    if nc == 0:
        return chi2_sf(x, df)
    if _NCX2_SF is None:  # pragma: no cover - other scipy versions
        return float(stats.ncx2.sf(x, df, nc))
    return float(_NCX2_SF(x, df, nc))


def ncx2_cdf(x: float, df: float, nc: float) -> float:
    """``scipy.stats.ncx2.cdf(x, df, nc)``."""
    if not (df > 0 and nc >= 0) or math.isnan(x):
        return math.nan
    if x <= 0:
        return 0.0
    return float(special.chdtr(df, x) if nc == 0 else special.chndtr(x, df, nc))


def norm_sf(x) -> np.ndarray:
    """``scipy.stats.norm.sf(x)`` (arrays too)."""
    return special.ndtr(-np.asarray(x, float))
