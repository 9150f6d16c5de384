"""The fit-measure assembler: lavaan's ``fitMeasures()`` test-based indices from test statistics.

Every estimator hands over its tests as lavaan stores them (``lavobject@test``): the standard test,
optionally a scaled test (Yuan-Bentler, Satorra-Bentler or scaled-shifted), the same for the
baseline model, and for the robust indices lavaan's ``XX3`` quantities. `fit_indices` returns the
chi-square, baseline, incremental (CFI ...) and RMSEA measures with lavaan 0.6-14's rules for which
statistic, df and scaling factor each variant uses (``lav_fit_cfi_lavobject`` and
``lav_fit_rmsea_lavobject``); the formulas are in `instrument.sem.fit.cfi` and
`instrument.sem.fit.rmsea`. `information_criteria` adds the likelihood-based measures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from instrument.sem.fit import cfi as _cfi
from instrument.sem.fit import info as _info
from instrument.sem.fit import rmsea as _rmsea
from instrument.sem.fit.chisq import chisq_pvalue

__all__ = ["TestStat", "RobustStat", "fit_indices", "fit_indices_scaled", "information_criteria",
           "scaled_test",
           "RMSEA_CI_LEVEL", "RMSEA_CLOSE_H0", "RMSEA_NOTCLOSE_H0"]

# lavaan 0.6-14 fitMeasures() defaults (rmsea.ci.level, rmsea.close.h0, rmsea.notclose.h0)
RMSEA_CI_LEVEL = 0.90
RMSEA_CLOSE_H0 = 0.05
RMSEA_NOTCLOSE_H0 = 0.08

_SCALED_TESTS = ("satorra.bentler", "yuan.bentler", "yuan.bentler.mplus", "scaled.shifted")


@dataclass(frozen=True)
class TestStat:
    """One test statistic, lavaan's ``lavobject@test[[i]]``.

    ``stat`` on ``df`` degrees of freedom; for a scaled test ``stat`` is the scaled statistic,
    ``scaling_factor`` its c (``stat = unscaled / c`` for Satorra-Bentler and Yuan-Bentler,
    ``unscaled / c + shift_parameter`` for scaled-shifted) and ``trace_ugamma`` = tr(UΓ).
    """

    stat: float
    df: float
    test: str = "standard"
    scaling_factor: float = 1.0
    shift_parameter: float = 0.0
    trace_ugamma: float = math.nan

    @property
    def pvalue(self) -> float:
        return chisq_pvalue(self.stat, self.df)

    @property
    def c_hat(self) -> float:
        """The scaling factor of the robust indices: c, or a (df - b) / df when shifted."""
        if self.test == "scaled.shifted":
            return self.scaling_factor * (self.df - self.shift_parameter) / self.df
        return self.scaling_factor


def scaled_test(standard: TestStat, scaling_factor: float, *, test: str = "yuan.bentler.mplus",
                shift_parameter: float = 0.0, trace_ugamma: float | None = None) -> TestStat:
    """The scaled version of ``standard``: stat / c (+ shift for ``"scaled.shifted"``).

    ``trace_ugamma`` defaults to ``c df``; pass the test's own trace where ``c`` is NA although
    the trace exists (a negative Yuan-Bentler trace: lavaan reports the scaling factor as NA and
    still takes ``rmsea.scaled`` on tr(UΓ) df)."""
    stat = standard.stat / scaling_factor + (shift_parameter if test == "scaled.shifted" else 0.0)
    tr = scaling_factor * standard.df if trace_ugamma is None else trace_ugamma
    return TestStat(stat, standard.df, test=test, scaling_factor=scaling_factor,
                    shift_parameter=shift_parameter, trace_ugamma=tr)


@dataclass(frozen=True)
class RobustStat:
    """What the robust CFI/TLI/RNI/RMSEA use (lavaan's ``XX3`` family).

    ``xx3`` on ``df3`` with scaling factor ``c_hat3`` gives the robust point estimates; the robust
    interval and p-values use ``xx3_scaled`` with ``c_hat``; the baseline's are ``xx3_null`` and
    ``c_hat_null``. Complete-data ML: the unscaled statistics and the test's own scaling factors
    (`from_tests`); FIML: lavaan's corrected statistics (Zhang & Savalei, 2023); categorical data:
    the catML statistics (Savalei, 2021).
    """

    xx3: float
    df3: float
    c_hat3: float
    c_hat: float
    xx3_scaled: float
    xx3_null: float
    c_hat_null: float

    @classmethod
    def from_tests(cls, standard: TestStat, scaled: TestStat, baseline: TestStat,
                   baseline_scaled: TestStat) -> "RobustStat":
        """Complete-data robust indices: the standard statistics with the scaled tests' factors."""
        return cls(xx3=standard.stat, df3=standard.df, c_hat3=scaled.c_hat,
                   c_hat=scaled.scaling_factor, xx3_scaled=scaled.stat, xx3_null=baseline.stat,
                   c_hat_null=baseline_scaled.c_hat)


def _incremental(x2, df, x2_b, df_b, suffix: str) -> dict:
    names = ("cfi", "tli", "nnfi", "rfi", "nfi", "pnfi", "ifi", "rni")
    return {f"{k}{suffix}": getattr(_cfi, k)(x2, df, x2_b, df_b) for k in names}


def _rmsea_block(x2, df, n, g, suffix: str, *, c: float = 1.0, x2_ci: float | None = None,
                 c_ci: float = 1.0) -> dict:
    """rmsea (from x2 with c), its interval and p-values (from x2_ci with c_ci)."""
    x2_ci = x2 if x2_ci is None else x2_ci
    lo, hi = _rmsea.rmsea_ci(x2_ci, df, n, ngroups=g, c=c_ci, level=RMSEA_CI_LEVEL)
    return {f"rmsea{suffix}": _rmsea.rmsea(x2, df, n, ngroups=g, c=c),
            f"rmsea.ci.lower{suffix}": lo, f"rmsea.ci.upper{suffix}": hi,
            f"rmsea.pvalue{suffix}": _rmsea.rmsea_pvalue(x2_ci, df, n, ngroups=g, c=c_ci,
                                                         h0=RMSEA_CLOSE_H0),
            f"rmsea.notclose.pvalue{suffix}": _rmsea.rmsea_notclose_pvalue(
                x2_ci, df, n, ngroups=g, c=c_ci, h0=RMSEA_NOTCLOSE_H0)}


def _baseline_measures(standard: TestStat, baseline: TestStat, scaled: TestStat | None,
                       baseline_scaled: TestStat | None, robust: RobustStat | None) -> dict:
    """``baseline.*`` and the incremental indices (lavaan ``lav_fit_cfi_lavobject``)."""
    x2, df, x2_b, df_b = standard.stat, standard.df, baseline.stat, baseline.df
    out = {"baseline.chisq": x2_b, "baseline.df": df_b, "baseline.pvalue": baseline.pvalue}
    if baseline_scaled is not None:
        out.update({"baseline.chisq.scaled": baseline_scaled.stat,
                    "baseline.df.scaled": baseline_scaled.df,
                    "baseline.pvalue.scaled": baseline_scaled.pvalue,
                    "baseline.chisq.scaling.factor": baseline_scaled.scaling_factor})
    if not all(math.isfinite(v) for v in (x2, df, x2_b, df_b)):
        # lavaan: every incremental index is NA when a statistic is not finite
        out.update({k: math.nan for k in _incremental(1.0, 1.0, 2.0, 1.0, "")})
        return out
    out.update(_incremental(x2, df, x2_b, df_b, ""))
    if scaled is not None and baseline_scaled is not None:
        out.update(_incremental(scaled.stat, scaled.df, baseline_scaled.stat,
                                baseline_scaled.df, ".scaled"))
    if robust is not None:
        r = robust
        kw = dict(c=r.c_hat3, c_b=r.c_hat_null)
        out.update({"cfi.robust": _cfi.cfi(r.xx3, df, r.xx3_null, df_b, **kw),
                    "tli.robust": _cfi.tli(r.xx3, df, r.xx3_null, df_b, **kw),
                    "nnfi.robust": _cfi.nnfi(r.xx3, df, r.xx3_null, df_b, **kw),
                    "rni.robust": _cfi.rni(r.xx3, df, r.xx3_null, df_b, **kw)})
    return out


def fit_indices(standard: TestStat, baseline: TestStat | None, *, n: float, ngroups: int,
                scaled: TestStat | None = None, baseline_scaled: TestStat | None = None,
                robust: RobustStat | None = None, likelihood: dict | None = None) -> dict:
    """Chi-square, baseline, incremental and RMSEA measures with lavaan's names, in lavaan's order.

    Parameters
    ----------
    standard, baseline : TestStat
        The model's and the baseline (independence) model's standard tests; without a baseline
        the baseline and incremental measures are left out.
    n : float
        N of RMSEA (lavaan's ``lav_utils_get_ntotal``: N, or N - G for wishart, DWLS and ULS).
    ngroups : int
    scaled, baseline_scaled : TestStat, optional
        Scaled tests: add ``*.scaled`` measures (scaled CFI/TLI and the rest from the scaled
        statistics; ``rmsea.scaled`` from the unscaled statistic on tr(UΓ) df for Satorra-Bentler
        and Yuan-Bentler, from the scaled statistic on df for scaled-shifted, as lavaan).
    robust : RobustStat, optional
        Adds ``cfi.robust``, ``tli.robust``, ``nnfi.robust``, ``rni.robust`` and ``rmsea.robust``
        with its interval and p-values.
    likelihood : dict, optional
        `information_criteria`, placed between the incremental indices and RMSEA as lavaan does.

    Returns
    -------
    dict
        ``chisq df pvalue [chisq.scaled df.scaled pvalue.scaled chisq.scaling.factor]
        baseline.chisq baseline.df baseline.pvalue [baseline.*.scaled
        baseline.chisq.scaling.factor] cfi tli nnfi rfi nfi pnfi ifi rni [*.scaled] [*.robust]
        rmsea rmsea.ci.lower rmsea.ci.upper rmsea.ci.level rmsea.pvalue rmsea.close.h0
        rmsea.notclose.pvalue rmsea.notclose.h0 [*.scaled] [*.robust]``.
    """
    x2, df, g = standard.stat, standard.df, ngroups
    out = {"chisq": x2, "df": df, "pvalue": standard.pvalue}
    if scaled is not None:
        out.update({"chisq.scaled": scaled.stat, "df.scaled": scaled.df,
                    "pvalue.scaled": scaled.pvalue, "chisq.scaling.factor": scaled.scaling_factor})
    if baseline is not None:
        out.update(_baseline_measures(standard, baseline, scaled, baseline_scaled, robust))
    out.update(likelihood or {})
    r = _rmsea_block(x2, df, n, g, "")
    out.update({"rmsea": r["rmsea"], "rmsea.ci.lower": r["rmsea.ci.lower"],
                "rmsea.ci.upper": r["rmsea.ci.upper"], "rmsea.ci.level": RMSEA_CI_LEVEL,
                "rmsea.pvalue": r["rmsea.pvalue"], "rmsea.close.h0": RMSEA_CLOSE_H0,
                "rmsea.notclose.pvalue": r["rmsea.notclose.pvalue"],
                "rmsea.notclose.h0": RMSEA_NOTCLOSE_H0})
    if scaled is not None:
        if scaled.test == "scaled.shifted":
            xx2, df2 = scaled.stat, scaled.df
        else:
            xx2, df2 = x2, scaled.trace_ugamma
            if not math.isfinite(df2) or df2 == 0:
                df2 = math.nan
        out.update(_rmsea_block(xx2, df2, n, g, ".scaled"))
    if robust is not None:
        out.update(_rmsea_block(robust.xx3, robust.df3, n, g, ".robust", c=robust.c_hat3,
                                x2_ci=robust.xx3_scaled, c_ci=robust.c_hat))
    return out


def fit_indices_scaled(chisq: float, df: float, baseline_chisq: float, baseline_df: float, *,
                       scaling_factor: float, baseline_scaling_factor: float, n: float,
                       ngroups: int = 1, test: str = "yuan.bentler.mplus",
                       trace_ugamma: float | None = None) -> dict:
    """`fit_indices` for complete data with a Satorra-Bentler or Yuan-Bentler scaled test:
    the scaled tests divide the statistics by their scaling factors and the robust indices use
    the unscaled statistics with those factors (`RobustStat.from_tests`)."""
    std, base = TestStat(chisq, df), TestStat(baseline_chisq, baseline_df)
    sc = scaled_test(std, scaling_factor, test=test, trace_ugamma=trace_ugamma)
    bsc = scaled_test(base, baseline_scaling_factor, test=test)
    return fit_indices(std, base, n=n, ngroups=ngroups, scaled=sc, baseline_scaled=bsc,
                       robust=RobustStat.from_tests(std, sc, base, bsc))


def information_criteria(logl: float, logl_h1: float, npar: int, ntotal: int) -> dict:
    """``logl unrestricted.logl aic bic ntotal bic2`` (lavaan ``lav_fit_aic.R``)."""
    return {"logl": logl, "unrestricted.logl": logl_h1, "aic": _info.aic(logl, npar),
            "bic": _info.bic(logl, npar, ntotal), "ntotal": ntotal,
            "bic2": _info.bic2(logl, npar, ntotal)}
