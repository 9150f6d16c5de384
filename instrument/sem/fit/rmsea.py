"""RMSEA, its confidence interval and close-fit tests (lavaan ``lav_fit_rmsea.R``)."""
from __future__ import annotations

import math

from scipy import optimize, stats

__all__ = ["rmsea", "rmsea_ci", "rmsea_pvalue", "rmsea_notclose_pvalue"]


def rmsea(chisq: float, df: float, n: float, *, ngroups: int = 1) -> float:
    """Root mean square error of approximation (point estimate).

    Notes
    -----
    sqrt(G) * sqrt(max(0, chisq / (n * df) - 1 / n)); 0 when df == 0. ``n`` is the total N for
    normal-likelihood ML, N - G for wishart, ULS and DWLS (lavaan's ``lav_utils_get_ntotal``).
    Steiger's multiple-group correction sqrt(G).

    References
    ----------
    Steiger, J. H., & Lind, J. C. (1980). Statistically based tests for the number of common
    factors. Annual meeting of the Psychometric Society, Iowa City, IA.
    Steiger, J. H. (1998). A note on multiple sample extensions of the RMSEA fit index.
    SEM, 5(4), 411-419. https://doi.org/10.1080/10705519809540115
    """
    if df <= 0:
        return 0.0
    return math.sqrt(ngroups) * math.sqrt(max(0.0, chisq / (n * df) - 1.0 / n))


def rmsea_ci(chisq: float, df: float, n: float, *, ngroups: int = 1,
             level: float = 0.90) -> tuple[float, float]:
    """Confidence interval of RMSEA by inverting the noncentral chi-square.

    Notes
    -----
    lower: lambda_L solves P(X2; df, lambda) = (1 + level)/2 on [0, X2] (0 if P(X2; df, 0)
    is already below it); upper: lambda_U solves P(X2; df, lambda) = (1 - level)/2 on
    [0, max(N, 4 X2)] (0 if not bracketed). rmsea = sqrt(lambda / (N df)) sqrt(G)
    (lavaan 0.6-14 ``lav_fit_rmsea_ci``, which uses ``uniroot``).
    """
    if df <= 0:
        return 0.0, 0.0
    a = (1.0 + level) / 2.0
    b = (1.0 - level) / 2.0

    def cdf(lam):
        return stats.ncx2.cdf(chisq, df, lam) if lam > 0 else stats.chi2.cdf(chisq, df)

    if cdf(0.0) - a < 0:
        lo = 0.0
    else:
        lam = optimize.brentq(lambda l: cdf(l) - a, 0.0, chisq, xtol=1e-12, rtol=1e-14)
        lo = math.sqrt(lam / (n * df))
    nmax = max(n, 4.0 * chisq)
    if cdf(nmax) - b > 0 or cdf(0.0) - b < 0:
        hi = 0.0
    else:
        lam = optimize.brentq(lambda l: cdf(l) - b, 0.0, nmax, xtol=1e-12, rtol=1e-14)
        hi = math.sqrt(lam / (n * df))
    g = math.sqrt(ngroups)
    return lo * g, hi * g


def rmsea_pvalue(chisq: float, df: float, n: float, *, ngroups: int = 1,
                 h0: float = 0.05) -> float:
    """Test of close fit: 1 - P(X2; df, ncp = N df h0^2 / G) (Browne & Cudeck, 1993)."""
    if df <= 0:
        return math.nan
    return float(stats.ncx2.sf(chisq, df, n * df * h0 ** 2 / ngroups))


def rmsea_notclose_pvalue(chisq: float, df: float, n: float, *, ngroups: int = 1,
                          h0: float = 0.08) -> float:
    """Test of not-close fit: P(X2; df, ncp = N df h0^2 / G) (MacCallum et al., 1996)."""
    if df <= 0:
        return math.nan
    return float(stats.ncx2.cdf(chisq, df, n * df * h0 ** 2 / ngroups))
