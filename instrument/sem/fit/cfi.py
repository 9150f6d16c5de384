"""Incremental fit indices (lavaan ``lav_fit_cfi.R``): cfi, tli/nnfi, rfi, nfi, pnfi, ifi, rni.

All take the model chi-square X2 and df and the baseline X2_b and df_b; the scaled and robust
variants reuse them with scaled statistics.
"""
from __future__ import annotations

import math

__all__ = ["cfi", "tli", "rfi", "nfi", "pnfi", "ifi", "rni"]


def cfi(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """CFI = 1 - max(X2 - df, 0) / max(X2 - df, X2_b - df_b, 0) (Bentler, 1990; 1 if both are 0).

    References
    ----------
    Bentler, P. M. (1990). Comparative fit indexes in structural models. Psychological
    Bulletin, 107(2), 238-246. https://doi.org/10.1037/0033-2909.107.2.238
    """
    t1 = max(x2 - df, 0.0)
    t2 = max(x2 - df, x2_b - df_b, 0.0)
    if t1 == 0 and t2 == 0:
        return 1.0
    return 1.0 - t1 / t2


def tli(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """TLI = NNFI = (X2_b/df_b - X2/df) / (X2_b/df_b - 1), not truncated (Tucker & Lewis, 1973).

    References
    ----------
    Tucker, L. R., & Lewis, C. (1973). A reliability coefficient for maximum likelihood factor
    analysis. Psychometrika, 38, 1-10. https://doi.org/10.1007/BF02291170
    """
    if df <= 0:
        return 1.0
    t1 = x2 / df
    t2 = x2_b / df_b
    return (t2 - t1) / (t2 - 1.0)


def rfi(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """RFI = (X2_b/df_b - X2/df) / (X2_b/df_b), truncated to [0, 1] (Bollen, 1986)."""
    if df <= 0:
        return 1.0
    t1, t2 = x2 / df, x2_b / df_b
    if t1 < 0 or t2 < 0:
        return 1.0
    return min(max((t2 - t1) / t2, 0.0), 1.0)


def nfi(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """NFI = (X2_b - X2) / X2_b (Bentler & Bonett, 1980)."""
    if df <= 0:
        return 1.0
    return (x2_b - x2) / x2_b


def pnfi(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """PNFI = (df / df_b) NFI (James, Mulaik & Brett, 1982)."""
    return (df / df_b) * nfi(x2, df, x2_b, df_b)


def ifi(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """IFI = (X2_b - X2) / (X2_b - df) (Bollen, 1989); 1 when X2_b < df."""
    if df <= 0:
        return 1.0
    t1, t2 = x2_b - x2, x2_b - df
    if t2 < 0:
        return 1.0
    return t1 / t2


def rni(x2: float, df: float, x2_b: float, df_b: float) -> float:
    """RNI = 1 - (X2 - df) / (X2_b - df_b), not truncated (McDonald & Marsh, 1990)."""
    if df <= 0:
        return 1.0
    t2 = x2_b - df_b
    return 1.0 - (x2 - df) / t2 if t2 != 0 else math.nan
