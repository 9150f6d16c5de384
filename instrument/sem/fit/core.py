"""The fit measures every ML-type fit reports: χ², baseline comparisons, information criteria and
RMSEA, from a handful of numbers (lavaan 0.6-14 ``fitMeasures()`` names and definitions)."""
from __future__ import annotations

from instrument.sem.fit import cfi as _cfi
from instrument.sem.fit import chisq as _chisq
from instrument.sem.fit import info as _info
from instrument.sem.fit import rmsea as _rmsea


def core_measures(chisq: float, df: int, baseline_chisq: float, baseline_df: int, *,
                  logl: float, logl_h1: float, npar: int, ntotal: int, n_rmsea: float,
                  ngroups: int, fmin: float) -> dict:
    """``npar fmin chisq df pvalue baseline.* cfi tli nnfi rfi nfi pnfi ifi rni logl
    unrestricted.logl aic bic ntotal bic2 rmsea rmsea.ci.* rmsea.pvalue rmsea.notclose.*``.

    ``n_rmsea`` is the N of RMSEA and its interval (N, or N - G for wishart; refs convention 4);
    the formulas are those of `instrument.sem.fit.cfi`, `.rmsea`, `.info` and `.chisq`.
    """
    bl, df_b, G = baseline_chisq, baseline_df, ngroups
    lo, hi = _rmsea.rmsea_ci(chisq, df, n_rmsea, ngroups=G)
    return {
        "npar": npar, "fmin": fmin, "chisq": chisq, "df": df,
        "pvalue": _chisq.chisq_pvalue(chisq, df),
        "baseline.chisq": bl, "baseline.df": df_b,
        "baseline.pvalue": _chisq.chisq_pvalue(bl, df_b),
        "cfi": _cfi.cfi(chisq, df, bl, df_b), "tli": _cfi.tli(chisq, df, bl, df_b),
        "nnfi": _cfi.tli(chisq, df, bl, df_b), "rfi": _cfi.rfi(chisq, df, bl, df_b),
        "nfi": _cfi.nfi(chisq, df, bl, df_b), "pnfi": _cfi.pnfi(chisq, df, bl, df_b),
        "ifi": _cfi.ifi(chisq, df, bl, df_b), "rni": _cfi.rni(chisq, df, bl, df_b),
        "logl": logl, "unrestricted.logl": logl_h1,
        "aic": _info.aic(logl, npar), "bic": _info.bic(logl, npar, ntotal), "ntotal": ntotal,
        "bic2": _info.bic2(logl, npar, ntotal),
        "rmsea": _rmsea.rmsea(chisq, df, n_rmsea, ngroups=G),
        "rmsea.ci.lower": lo, "rmsea.ci.upper": hi, "rmsea.ci.level": 0.90,
        "rmsea.pvalue": _rmsea.rmsea_pvalue(chisq, df, n_rmsea, ngroups=G),
        "rmsea.close.h0": 0.05,
        "rmsea.notclose.pvalue": _rmsea.rmsea_notclose_pvalue(chisq, df, n_rmsea, ngroups=G),
        "rmsea.notclose.h0": 0.08,
    }
