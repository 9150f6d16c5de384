"""Scaled and robust fit indices (lavaan's ``*.scaled`` and ``*.robust`` fit measures).

Bare formula functions of numbers (chi-square, df, scaling factors, N, G), as in lavaan
0.6-14's ``lav_fit_cfi.R`` and ``lav_fit_rmsea.R``, plus `robust_fit_measures`, which returns
the dict of lavaan ``fitMeasures()`` names for an MLR (Yuan-Bentler) fit.

Notes
-----
With ``c`` the model's and ``c_b`` the baseline's scaling factor:

* ``chisq.scaled = chisq / c``; ``cfi.scaled``, ``tli.scaled`` and ``rmsea.scaled`` are the usual
  formulas applied to the scaled statistics (the baseline scaled by its own ``c_b``);
* ``cfi.robust = 1 - max(chisq - c df, 0) / max(chisq - c df, chisq_b - c_b df_b, 0)``
  (Brosseau-Liard & Savalei 2014, eq. 15);
* ``tli.robust = 1 - [(chisq - c df) df_b] / [(chisq_b - c_b df_b) df]`` (lavaan >= 0.5-21
  form, not truncated);
* ``rmsea.robust = sqrt(G) sqrt(max(chisq/(N df) - c/N, 0))`` (Brosseau-Liard, Savalei & Li
  2012); its CI is the scaled RMSEA's CI times ``sqrt(c)``.

lavaan only uses the robust forms when both ``c != 1`` and ``c_b != 1``; otherwise the unscaled
formulas (c = 1) apply, and so here.

References
----------
Brosseau-Liard, P. E., & Savalei, V. (2014). Adjusting incremental fit indices for nonnormality.
Multivariate Behavioral Research, 49(5), 460-470. https://doi.org/10.1080/00273171.2014.933697
Brosseau-Liard, P. E., Savalei, V., & Li, L. (2012). An investigation of the sample performance of
two nonnormality corrections for RMSEA. Multivariate Behavioral Research, 47(6), 904-930.
https://doi.org/10.1080/00273171.2012.715252
"""
from __future__ import annotations

import math

from scipy import optimize, stats

__all__ = ["cfi", "tli", "rni", "rmsea", "rmsea_ci", "rmsea_pvalue", "robust_fit_measures"]


def _robust(df: float, c: float, c_b: float) -> bool:
    return df > 0 and c != 1 and c_b != 1


def cfi(chisq: float, df: float, chisq_b: float, df_b: float, *, c: float = 1.0,
        c_b: float = 1.0) -> float:
    """(Robust) comparative fit index; ``c = c_b = 1`` gives Bentler's CFI (``lav_fit_cfi``)."""
    if any(map(math.isnan, (chisq, df, chisq_b, df_b, c, c_b))):
        return float("nan")
    if not _robust(df, c, c_b):
        c = c_b = 1.0
    t1 = max(chisq - c * df, 0.0)
    t2 = max(chisq - c * df, chisq_b - c_b * df_b, 0.0)
    if math.isclose(t1, 0.0, abs_tol=1.5e-8) and math.isclose(t2, 0.0, abs_tol=1.5e-8):
        return 1.0
    return 1.0 - t1 / t2


def rni(chisq: float, df: float, chisq_b: float, df_b: float, *, c: float = 1.0,
        c_b: float = 1.0) -> float:
    """(Robust) relative noncentrality index: CFI without the max(., 0) (lavaan ``lav_fit_rni``)."""
    if not _robust(df, c, c_b):
        c = c_b = 1.0
    t1, t2 = chisq - c * df, chisq_b - c_b * df_b
    if math.isclose(t2, 0.0, abs_tol=1.5e-8):
        return float("nan")
    return 1.0 - t1 / t2


def tli(chisq: float, df: float, chisq_b: float, df_b: float, *, c: float = 1.0,
        c_b: float = 1.0) -> float:
    """(Robust) Tucker-Lewis index ``1 - [(chisq - c df) df_b] / [(chisq_b - c_b df_b) df]``."""
    if any(map(math.isnan, (chisq, df, chisq_b, df_b, c, c_b))):
        return float("nan")
    if not _robust(df, c, c_b):
        c = c_b = 1.0
    t1 = (chisq - c * df) * df_b
    t2 = (chisq_b - c_b * df_b) * df
    if df > 0 and abs(t2) > 0:
        return 1.0 - t1 / t2
    return 1.0


def rmsea(chisq: float, df: float, n: float, *, ngroups: int = 1, c: float = 1.0) -> float:
    """RMSEA ``sqrt(G) sqrt(max(chisq/(N df) - c/N, 0))``; ``c`` > 1 gives the robust RMSEA."""
    if df <= 0:
        return 0.0
    return math.sqrt(ngroups) * math.sqrt(max(chisq / (n * df) - c / n, 0.0))


def rmsea_ci(chisq: float, df: float, n: float, *, ngroups: int = 1, level: float = 0.90,
             c: float = 1.0) -> tuple[float, float]:
    """RMSEA confidence interval by inverting the noncentral chi-square (lavaan
    ``lav_fit_rmsea_ci``, its bracketing rules; roots to 1e-12 where lavaan uses ``uniroot``'s
    default tolerance). For the robust CI pass the *scaled* statistic and ``c``, which multiplies
    the bounds by ``sqrt(c)``."""
    if not (math.isfinite(chisq) and math.isfinite(df) and math.isfinite(n)):
        return float("nan"), float("nan")
    up_p, lo_p = 1 - (1 - level) / 2, (1 - level) / 2

    def f(lam: float, target: float) -> float:
        cdf = stats.ncx2.cdf(chisq, df, lam) if lam > 0 else stats.chi2.cdf(chisq, df)
        return float(cdf) - target

    k = math.sqrt(ngroups) * math.sqrt(c)
    # lavaan's rules: 0 when df < 1 or when the root is not bracketed
    if df < 1 or f(0.0, up_p) < 0:
        lower = 0.0
    else:
        lam = optimize.brentq(f, 0.0, chisq, args=(up_p,), xtol=1e-12, rtol=1e-14)
        lower = k * math.sqrt(lam / (n * df))
    n_rmsea = max(n, 4 * chisq)
    if df < 1 or f(n_rmsea, lo_p) > 0 or f(0.0, lo_p) < 0:
        upper = 0.0
    else:
        lam = optimize.brentq(f, 0.0, n_rmsea, args=(lo_p,), xtol=1e-12, rtol=1e-14)
        upper = k * math.sqrt(lam / (n * df))
    return lower, upper


def rmsea_pvalue(chisq: float, df: float, n: float, *, ngroups: int = 1, h0: float = 0.05,
                 close: bool = True, c: float = 1.0) -> float:
    """p-value of close fit ``P(X > chisq | ncp = N df h0^2 / (c G))`` (lavaan ``rmsea.pvalue``);
    ``close=False`` gives lavaan's not-close p-value ``P(X <= chisq | ncp with h0 = .08)``. For the
    robust versions pass the scaled statistic and ``c``."""
    if df <= 0:
        return float("nan")
    ncp = n * df * h0 ** 2 / (c * ngroups)
    cdf = float(stats.ncx2.cdf(chisq, df, ncp))
    return 1.0 - cdf if close else cdf


def robust_fit_measures(*, chisq: float, df: int, scaling_factor: float, baseline_chisq: float,
                        baseline_df: int, baseline_scaling_factor: float, ntotal: int,
                        ngroups: int = 1, level: float = 0.90) -> dict[str, float]:
    """The scaled/robust part of lavaan's ``fitMeasures()`` for an MLR fit.

    Returns
    -------
    dict
        Keys (lavaan's names): ``chisq.scaled``, ``df.scaled``, ``pvalue.scaled``,
        ``chisq.scaling.factor``, ``baseline.chisq.scaled``, ``baseline.df.scaled``,
        ``baseline.pvalue.scaled``, ``baseline.chisq.scaling.factor``, ``cfi.scaled``,
        ``tli.scaled``, ``nnfi.scaled``, ``rni.scaled``, ``cfi.robust``, ``tli.robust``,
        ``nnfi.robust``, ``rni.robust``, ``rmsea.scaled``, ``rmsea.ci.lower.scaled``,
        ``rmsea.ci.upper.scaled``, ``rmsea.pvalue.scaled``, ``rmsea.notclose.pvalue.scaled``,
        ``rmsea.robust``, ``rmsea.ci.lower.robust``, ``rmsea.ci.upper.robust``,
        ``rmsea.pvalue.robust``, ``rmsea.notclose.pvalue.robust``.
    """
    c, cb = scaling_factor, baseline_scaling_factor
    xs, xbs = chisq / c, baseline_chisq / cb
    # lavaan (yuan.bentler / satorra.bentler): the scaled RMSEA CI and p-values use the
    # *unscaled* chisq on df2 = trace(UGamma) = c * df (non-integer) degrees of freedom.
    df2 = c * df
    lo_s, up_s = rmsea_ci(chisq, df2, ntotal, ngroups=ngroups, level=level)
    lo_r, up_r = rmsea_ci(xs, df, ntotal, ngroups=ngroups, level=level, c=c)
    return {
        "chisq.scaled": xs, "df.scaled": float(df),
        "pvalue.scaled": float(stats.chi2.sf(xs, df)) if df > 0 else float("nan"),
        "chisq.scaling.factor": c,
        "baseline.chisq.scaled": xbs, "baseline.df.scaled": float(baseline_df),
        "baseline.pvalue.scaled": float(stats.chi2.sf(xbs, baseline_df)),
        "baseline.chisq.scaling.factor": cb,
        "cfi.scaled": cfi(xs, df, xbs, baseline_df), "tli.scaled": tli(xs, df, xbs, baseline_df),
        "nnfi.scaled": tli(xs, df, xbs, baseline_df), "rni.scaled": rni(xs, df, xbs, baseline_df),
        "cfi.robust": cfi(chisq, df, baseline_chisq, baseline_df, c=c, c_b=cb),
        "tli.robust": tli(chisq, df, baseline_chisq, baseline_df, c=c, c_b=cb),
        "nnfi.robust": tli(chisq, df, baseline_chisq, baseline_df, c=c, c_b=cb),
        "rni.robust": rni(chisq, df, baseline_chisq, baseline_df, c=c, c_b=cb),
        "rmsea.scaled": rmsea(xs, df, ntotal, ngroups=ngroups),
        "rmsea.ci.lower.scaled": lo_s, "rmsea.ci.upper.scaled": up_s,
        "rmsea.pvalue.scaled": rmsea_pvalue(chisq, df2, ntotal, ngroups=ngroups),
        "rmsea.notclose.pvalue.scaled": rmsea_pvalue(chisq, df2, ntotal, ngroups=ngroups, h0=0.08,
                                                     close=False),
        "rmsea.robust": rmsea(chisq, df, ntotal, ngroups=ngroups, c=c),
        "rmsea.ci.lower.robust": lo_r, "rmsea.ci.upper.robust": up_r,
        "rmsea.pvalue.robust": rmsea_pvalue(xs, df, ntotal, ngroups=ngroups, c=c),
        "rmsea.notclose.pvalue.robust": rmsea_pvalue(xs, df, ntotal, ngroups=ngroups, h0=0.08,
                                                     close=False, c=c),
    }
