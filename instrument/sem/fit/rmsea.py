"""RMSEA, its confidence interval and the tests of close and not-close fit (lavaan 0.6-14
``lav_fit_rmsea.R``), each defined once.

``n`` is lavaan's ``lav_utils_get_ntotal``: the total N for normal-likelihood ML, N - G for
wishart, DWLS and ULS. ``ngroups`` applies Steiger's multiple-group correction sqrt(G). ``c`` is the
scaling factor of the robust RMSEA (Brosseau-Liard, Savalei & Li, 2012): the point estimate uses
``x2 - c df``; the interval and p-values take the scaled statistic and multiply the noncentrality
by ``c``.

References
----------
Steiger, J. H. (1998). A note on multiple sample extensions of the RMSEA fit index. SEM, 5(4),
411-419. https://doi.org/10.1080/10705519809540115
Browne, M. W., & Cudeck, R. (1993). Alternative ways of assessing model fit. In K. A. Bollen &
J. S. Long (Eds.), Testing structural equation models (pp. 136-162). Sage.
MacCallum, R. C., Browne, M. W., & Sugawara, H. M. (1996). Power analysis and determination of
sample size for covariance structure modeling. Psychological Methods, 1(2), 130-149.
https://doi.org/10.1037/1082-989X.1.2.130
Brosseau-Liard, P. E., Savalei, V., & Li, L. (2012). An investigation of the sample performance of
two nonnormality corrections for RMSEA. Multivariate Behavioral Research, 47(6), 904-930.
https://doi.org/10.1080/00273171.2012.715252
"""
from __future__ import annotations

import math

from scipy import optimize, special

from instrument.sem.fit.dist import ncx2_cdf, ncx2_sf

__all__ = ["rmsea", "rmsea_ci", "rmsea_pvalue", "rmsea_notclose_pvalue"]


def _finite(*values) -> bool:
    return all(math.isfinite(v) for v in values)


def rmsea(x2: float, df: float, n: float, *, ngroups: int = 1, c: float = 1.0) -> float:
    """sqrt(G) sqrt(max(x2/(n df) - c/n, 0)); 0 when df = 0."""
    if math.isnan(x2) or math.isnan(df) or math.isnan(c):
        return math.nan
    if not df > 0:
        return 0.0
    return math.sqrt(max(x2 / (n * df) - c / n, 0.0)) * math.sqrt(ngroups)


def rmsea_ci(x2: float, df: float, n: float, *, ngroups: int = 1, c: float = 1.0,
             level: float = 0.90) -> tuple[float, float]:
    """Confidence interval of RMSEA by inverting the noncentral chi-square.

    Notes
    -----
    P is the noncentral chi-square distribution function (``scipy.special.chndtr``, R's
    ``pchisq`` with ``ncp``), 0 at x2 <= 0 as in R (scipy's is NaN below 0). The lower bound
    solves P(x2; df, lambda) = (1 + level)/2 on [0, x2] (0 when df < 1 or P(x2; df, 0) is
    already below it, which includes every x2 below the df's lower quantile); the upper bound
    solves P(x2; df, lambda) = (1 - level)/2 on [0, max(n, 4 x2)] (0 when df < 1 or the root is
    not bracketed); each bound is sqrt(c lambda / (n df)) sqrt(G). Roots to 1e-12 (lavaan uses
    ``uniroot``'s default tolerance). Where lavaan's ``uniroot`` fails, or the bound is the
    square root of a negative number (a negative scaling factor ``c``), the bound is NaN, as
    lavaan 0.6-14 ``lav_fit_rmsea_ci`` gives NA.
    """
    if not _finite(x2, df, n, c):
        return math.nan, math.nan
    upper_p, lower_p = 1.0 - (1.0 - level) / 2.0, (1.0 - level) / 2.0

    def f(lam: float, target: float) -> float:
        if x2 <= 0:
            return -target
        cdf = special.chndtr(x2, df, lam) if lam > 0 else special.chdtr(df, x2)
        return float(cdf) - target

    def bound(hi: float, target: float) -> float:
        try:
            lam = optimize.brentq(f, 0.0, hi, args=(target,), xtol=1e-12, rtol=1e-14)
        except (ValueError, RuntimeError):
            return math.nan
        v = c * lam / (n * df)
        return math.sqrt(ngroups) * math.sqrt(v) if v >= 0 else math.nan

    if df < 1 or f(0.0, upper_p) < 0:
        lower = 0.0
    else:
        lower = bound(x2, upper_p)
    n_rmsea = max(n, 4.0 * x2)
    if df < 1 or f(n_rmsea, lower_p) > 0 or f(0.0, lower_p) < 0:
        upper = 0.0
    else:
        upper = bound(n_rmsea, lower_p)
    return lower, upper


def _ncp(df: float, n: float, ngroups: int, c: float, h0: float) -> float:
    return n * df * h0 ** 2 / (c * ngroups)


def rmsea_pvalue(x2: float, df: float, n: float, *, ngroups: int = 1, c: float = 1.0,
                 h0: float = 0.05) -> float:
    """Test of close fit, 1 - P(x2; df, ncp = n df h0^2 / (c G)) (Browne & Cudeck, 1993);
    NaN when df = 0."""
    if not _finite(x2, df, n, c) or not df > 0:
        return math.nan
    return ncx2_sf(x2, df, _ncp(df, n, ngroups, c, h0))


def rmsea_notclose_pvalue(x2: float, df: float, n: float, *, ngroups: int = 1, c: float = 1.0,
                          h0: float = 0.08) -> float:
    """Test of not-close fit, P(x2; df, ncp = n df h0^2 / (c G)) (MacCallum, Browne & Sugawara,
    1996); NaN when df = 0."""
    if not _finite(x2, df, n, c) or not df > 0:
        return math.nan
    return ncx2_cdf(x2, df, _ncp(df, n, ngroups, c, h0))
