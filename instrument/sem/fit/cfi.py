"""Incremental fit indices (lavaan 0.6-14 ``lav_fit_cfi.R``): cfi, tli/nnfi, rni, rfi, nfi, pnfi,
ifi, each defined once.

All take the model chi-square ``x2`` on ``df`` and the baseline ``x2_b`` on ``df_b``. The scaled
variants pass the scaled statistics. CFI, TLI and RNI also take the scaling factors ``c`` and
``c_b`` of the model and the baseline: when both are given, differ from 1 and ``df > 0``, the
noncentrality is estimated by ``x2 - c df`` (the robust indices of Brosseau-Liard & Savalei, 2014,
eq. 15; Savalei, 2018 for scaled-shifted tests, 2021 for categorical data; Zhang & Savalei, 2023
for FIML), otherwise by ``x2 - df``. Missing inputs (NaN) give NaN, as lavaan's NA.

References
----------
Bentler, P. M. (1990). Comparative fit indexes in structural models. Psychological Bulletin,
107(2), 238-246. https://doi.org/10.1037/0033-2909.107.2.238
Brosseau-Liard, P. E., & Savalei, V. (2014). Adjusting incremental fit indices for nonnormality.
Multivariate Behavioral Research, 49(5), 460-470. https://doi.org/10.1080/00273171.2014.933697
"""
from __future__ import annotations

import math

__all__ = ["cfi", "tli", "nnfi", "rni", "rfi", "nfi", "pnfi", "ifi"]


def _na(*values) -> bool:
    return any(v is not None and math.isnan(v) for v in values)


def _close_to_zero(v: float) -> bool:
    # R's isTRUE(all.equal(v, 0)): absolute difference below 1.5e-8 when the target is 0
    return abs(v) < 1.5e-8


def _noncentrality(x2, df, x2_b, df_b, c, c_b) -> tuple[float, float]:
    """``(x2 - c df, x2_b - c_b df_b)``, with c = c_b = 1 unless the robust form applies."""
    if not (df > 0 and c is not None and c_b is not None and c != 1 and c_b != 1):
        c = c_b = 1.0
    return x2 - c * df, x2_b - c_b * df_b


def cfi(x2: float, df: float, x2_b: float, df_b: float, *, c: float | None = None,
        c_b: float | None = None) -> float:
    """CFI = 1 - max(d, 0) / max(d, d_b, 0) with d = x2 - c df (Bentler, 1990); 1 when both
    maxima are 0."""
    if _na(x2, df, x2_b, df_b, c, c_b):
        return math.nan
    d, d_b = _noncentrality(x2, df, x2_b, df_b, c, c_b)
    t1, t2 = max(d, 0.0), max(d, d_b, 0.0)
    if _close_to_zero(t1) and _close_to_zero(t2):
        return 1.0
    return 1.0 - t1 / t2


def rni(x2: float, df: float, x2_b: float, df_b: float, *, c: float | None = None,
        c_b: float | None = None) -> float:
    """RNI = 1 - d / d_b, CFI without the truncation (McDonald & Marsh, 1990); NaN when d_b is 0."""
    if _na(x2, df, x2_b, df_b, c, c_b):
        return math.nan
    d, d_b = _noncentrality(x2, df, x2_b, df_b, c, c_b)
    if _close_to_zero(d_b) or not (math.isfinite(d) and math.isfinite(d_b)):
        return math.nan
    return 1.0 - d / d_b


def tli(x2: float, df: float, x2_b: float, df_b: float, *, c: float | None = None,
        c_b: float | None = None) -> float:
    """TLI = NNFI = 1 - (d df_b) / (d_b df), not truncated (Tucker & Lewis, 1973; lavaan's form
    since 0.5-21, which has a robust version); 1 when df = 0.

    References
    ----------
    Tucker, L. R., & Lewis, C. (1973). A reliability coefficient for maximum likelihood factor
    analysis. Psychometrika, 38, 1-10. https://doi.org/10.1007/BF02291170
    """
    if _na(x2, df, x2_b, df_b, c, c_b):
        return math.nan
    d, d_b = _noncentrality(x2, df, x2_b, df_b, c, c_b)
    t1, t2 = d * df_b, d_b * df
    if df > 0 and abs(t2) > 0:
        return 1.0 - t1 / t2
    if not (math.isfinite(t1) and math.isfinite(t2)):
        return math.nan
    return 1.0


nnfi = tli


def rfi(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """RFI = (x2_b/df_b - x2/df) / (x2_b/df_b), 1 when either term is negative (Bollen, 1986)."""
    if _na(x2, df, x2_b, df_b) or df > df_b:
        return math.nan
    if not (df > 0 and df_b > 0):
        return 1.0
    t1, t2 = x2_b / df_b - x2 / df, x2_b / df_b
    if not (math.isfinite(t1) and math.isfinite(t2)):
        return math.nan
    if t1 < 0 or t2 < 0:
        return 1.0
    return t1 / t2


def nfi(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """NFI = (x2_b - x2) / x2_b (Bentler & Bonett, 1980); 1 when df = 0."""
    if _na(x2, df, x2_b, df_b) or df > df_b or _close_to_zero(x2_b):
        return math.nan
    if df > 0:
        return (x2_b - x2) / x2_b
    return 1.0


def pnfi(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """PNFI = (df / df_b) (x2_b - x2) / x2_b (James, Mulaik & Brett, 1982)."""
    if _na(x2, df, x2_b, df_b) or not (df_b > 0 and x2_b > 0):
        return math.nan
    return (df / df_b) * ((x2_b - x2) / x2_b)


def ifi(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """IFI = (x2_b - x2) / (x2_b - df) (Bollen, 1989); 1 when x2_b < df."""
    if _na(x2, df, x2_b, df_b):
        return math.nan
    t1, t2 = x2_b - x2, x2_b - df
    if not (math.isfinite(t1) and math.isfinite(t2)):
        return math.nan
    if t2 < 0:
        return 1.0
    if _close_to_zero(t2):
        return math.nan
    return t1 / t2
