"""Fit measures with lavaan's names and definitions (``fitMeasures()``, lavaan 0.6-14).

`FIT_MEASURE_NAMES` is the one list of accepted names (including the ``.scaled`` / ``.robust``
variants that the robust estimators fill); `check_names` rejects anything else.
"""
from __future__ import annotations

from typing import Iterable

__all__ = ["FIT_MEASURE_NAMES", "check_names", "in_lavaan_order"]

FIT_MEASURE_NAMES: tuple[str, ...] = (
    "npar", "fmin",
    "chisq", "df", "pvalue", "chisq.scaled", "df.scaled", "pvalue.scaled",
    "chisq.scaling.factor",
    "baseline.chisq", "baseline.df", "baseline.pvalue",
    "baseline.chisq.scaled", "baseline.df.scaled", "baseline.pvalue.scaled",
    "baseline.chisq.scaling.factor",
    "cfi", "tli", "cfi.scaled", "tli.scaled", "cfi.robust", "tli.robust",
    "nnfi", "rfi", "nfi", "pnfi", "ifi", "rni",
    "nnfi.scaled", "rfi.scaled", "nfi.scaled", "pnfi.scaled", "ifi.scaled", "rni.scaled",
    "nnfi.robust", "rni.robust",
    "logl", "unrestricted.logl", "aic", "bic", "ntotal", "bic2",
    "scaling.factor.h1", "scaling.factor.h0",
    "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.ci.level", "rmsea.pvalue",
    "rmsea.close.h0", "rmsea.notclose.pvalue", "rmsea.notclose.h0",
    "rmsea.scaled", "rmsea.ci.lower.scaled", "rmsea.ci.upper.scaled", "rmsea.pvalue.scaled",
    "rmsea.notclose.pvalue.scaled",
    "rmsea.robust", "rmsea.ci.lower.robust", "rmsea.ci.upper.robust", "rmsea.pvalue.robust",
    "rmsea.notclose.pvalue.robust",
    "rmr", "rmr_nomean", "srmr", "srmr_bentler", "srmr_bentler_nomean", "crmr", "crmr_nomean",
    "srmr_mplus", "srmr_mplus_nomean",
    "cn_05", "cn_01", "gfi", "agfi", "pgfi", "mfi", "ecvi", "wrmr",
)
_NAMES = frozenset(FIT_MEASURE_NAMES)


def check_names(names: Iterable[str]) -> list[str]:
    """Return ``names`` as a list, raising ValueError for any name lavaan does not use."""
    names = [names] if isinstance(names, str) else list(names)
    bad = [n for n in names if n not in _NAMES]
    if bad:
        raise ValueError(f"unknown fit measure(s) {bad}; names follow lavaan's fitMeasures() "
                         "(see instrument.sem.fit.FIT_MEASURE_NAMES)")
    return names


def in_lavaan_order(measures: dict) -> dict:
    """The same dict with keys in lavaan's ``fitMeasures()`` order; unknown keys raise."""
    check_names(measures)
    return {k: measures[k] for k in FIT_MEASURE_NAMES if k in measures}
